"""egs/TEMPLATE path.sh + cmd.sh + utils/parse_options.sh + the local runner, as a recipe uses them."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "egs" / "TEMPLATE"

RUN_SH = f"""#!/usr/bin/env bash
set -euo pipefail
. {TEMPLATE}/path.sh
. ./cmd.sh
nj=3
stage=1
. utils/parse_options.sh
echo "backend=$cmd_backend train_cmd=$train_cmd cuda_cmd=$cuda_cmd LC_ALL=$LC_ALL"
if [ $stage -le 1 ]; then
  ${{train_cmd}} JOB=1:$nj exp/log/stage1.JOB.log echo part JOB of $nj
fi
"""


def make_recipe(tmp_path):
    (tmp_path / "utils").symlink_to(ROOT / "utils")
    (tmp_path / "cmd.sh").write_text((TEMPLATE / "cmd.sh").read_text())
    (tmp_path / "run.sh").write_text(RUN_SH)
    (tmp_path / "run.sh").chmod(0o755)


def run(tmp_path, *args, **env):
    return subprocess.run(["./run.sh", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_recipe_runs_local_jobs(tmp_path):
    make_recipe(tmp_path)
    r = run(tmp_path, "--nj", "2")
    assert r.returncode == 0, r.stderr
    assert "backend=local train_cmd=utils/run.py cuda_cmd=utils/run.py LC_ALL=C" in r.stdout
    assert sorted(p.name for p in (tmp_path / "exp/log").glob("stage1.*.log")) == ["stage1.1.log", "stage1.2.log"]
    assert "part 2 of 2" in (tmp_path / "exp/log/stage1.2.log").read_text().splitlines()


def test_slurm_backend_selected_by_env(tmp_path):
    make_recipe(tmp_path)
    r = run(tmp_path, "--stage", "2", cmd_backend="slurm")
    assert r.returncode == 0, r.stderr
    assert "train_cmd=utils/slurm.py --config conf/slurm.conf" in r.stdout
    r = run(tmp_path, cmd_backend="pbs")
    assert r.returncode != 0 and "unknown cmd_backend 'pbs'" in r.stderr
