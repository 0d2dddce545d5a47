"""utils/parse_options.sh: every variable defined before it becomes an option (run through real bash)."""
import subprocess
from pathlib import Path

import pytest

PARSE_OPTIONS = Path(__file__).resolve().parents[1] / "utils" / "parse_options.sh"

SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
stage=1
stop_stage=100
nj=4
use_gpu=false
train_set="train clean"
help_message="Usage: $0 [options] <data-dir>"
. {PARSE_OPTIONS}
echo "stage=$stage stop_stage=$stop_stage nj=$nj use_gpu=$use_gpu train_set=$train_set args=$*"
"""


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "run.sh"
    p.write_text(SCRIPT)
    p.chmod(0o755)
    return p


def run(script, *args):
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30,
                          cwd=script.parent)


def test_flags_set_variables_and_dashes_map_to_underscores(script):
    r = run(script, "--stage", "3", "--stop-stage", "6", "--nj=8", "--use_gpu", "true",
            "--train-set", "dev other", "data/x", "--not-an-option-after-positional")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("stage=3 stop_stage=6 nj=8 use_gpu=true train_set=dev other "
                                "args=data/x --not-an-option-after-positional")


def test_defaults_untouched_without_options(script):
    r = run(script)
    assert r.stdout.strip() == "stage=1 stop_stage=100 nj=4 use_gpu=false train_set=train clean args="


def test_unknown_option_is_an_error_naming_it(script):
    r = run(script, "--stage", "2", "--no-such-thing", "1")
    assert r.returncode == 1
    assert "--no-such-thing" in r.stderr and r.stdout == ""
    # environment/shell variables are not options either
    r = run(script, "--PATH", "/x")
    assert r.returncode == 1 and "--PATH" in r.stderr


def test_boolean_and_missing_value_checks(script):
    r = run(script, "--use-gpu", "yes")
    assert r.returncode == 1 and "true or false" in r.stderr
    r = run(script, "--nj")
    assert r.returncode == 1 and "needs a value" in r.stderr


def test_config_file_is_sourced_and_later_flags_win(script, tmp_path):
    (tmp_path / "opts.sh").write_text("nj=11\nstage=2\n")
    r = run(script, "--config", "opts.sh", "--stage", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("stage=5 stop_stage=100 nj=11 ")
    r = run(script, "--config", "missing.sh")
    assert r.returncode == 1 and "missing.sh" in r.stderr


def test_help_prints_usage_and_defaults(script):
    r = run(script, "--nj", "7", "--help")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].endswith("run.sh [options] <data-dir>")
    opts = {ln.split()[0]: ln.split(None, 1)[1] if len(ln.split()) > 1 else "" for ln in lines
            if ln.startswith("  --")}
    assert opts == {"--stage": "1", "--stop_stage": "100", "--nj": "7", "--use_gpu": "false",
                    "--train_set": "train clean"}
    # listed in the order the script defines them
    assert [k for k in opts] == ["--stage", "--stop_stage", "--nj", "--use_gpu", "--train_set"]
