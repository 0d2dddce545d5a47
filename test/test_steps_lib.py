"""egs/TEMPLATE/steps/lib.sh: the shell helpers every run.sh and step sources (job pool, conf suffix,
corpus languages, numeric test)."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "mini_espeak" / "asr"   # any recipe: steps/ and utils/ are links into the template


def _bash(script: str, cwd: Path = RECIPE):
    return subprocess.run(["bash", "-c", "set -euo pipefail; . steps/lib.sh\n" + script], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def test_run_pool_runs_every_spec_and_names_the_failed_ones(tmp_path):
    p = _bash(f"""
job() {{ echo "$1 $2" > {tmp_path}/$1.done; [ "$1" != b ] && [ "$1" != d ]; }}
run_pool 2 job "a 1" "b 2" "c 3" "d 4" "e 5"
""")
    assert p.returncode == 1, p.stderr
    assert sorted(f.name for f in tmp_path.glob("*.done")) == ["a.done", "b.done", "c.done", "d.done", "e.done"]
    assert (tmp_path / "c.done").read_text().split() == ["c", "3"]      # a spec is split into arguments
    assert "2 job job(s) failed: b 2 d 4" in p.stderr


def test_run_pool_keeps_at_most_max_jobs_running(tmp_path):
    # each job counts the jobs running beside it (marker files) and records the most it saw
    p = _bash(f"""
job() {{
  touch {tmp_path}/run.$1
  ls {tmp_path} | grep -c '^run\\.' >> {tmp_path}/seen
  sleep 0.2
  rm {tmp_path}/run.$1
}}
run_pool 2 job 1 2 3 4 5 6
""")
    assert p.returncode == 0, p.stderr
    seen = [int(x) for x in (tmp_path / "seen").read_text().split()]
    assert len(seen) == 6 and max(seen) <= 2


def test_run_pool_fills_a_slot_as_soon_as_any_job_ends(tmp_path):
    # a long first job must not hold the pool: the short ones start (and end) while it still runs
    # (the first pool waited for its oldest job and left the other slot idle meanwhile)
    p = _bash(f"""
job() {{
  if [ "$1" = long ]; then
    until [ -f {tmp_path}/short.3 ]; do sleep 0.1; done; touch {tmp_path}/long.done
  else
    [ -f {tmp_path}/long.done ] && echo late >> {tmp_path}/order; touch {tmp_path}/short.$1
  fi
}}
run_pool 2 job long 1 2 3
""")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "long.done").exists() and not (tmp_path / "order").exists()


def test_best_model_prefers_the_kept_best_checkpoint(tmp_path):
    (tmp_path / "model").mkdir()
    p = _bash(f"best_model {tmp_path}")
    assert p.stdout.strip() == f"{tmp_path}/model"                  # none kept: the last one
    (tmp_path / "model_best").mkdir()
    assert _bash(f"best_model {tmp_path}").stdout.strip() == f"{tmp_path}/model"   # an empty dir is not one
    (tmp_path / "model_best" / "model.pt").write_bytes(b"x")
    assert _bash(f"best_model {tmp_path}").stdout.strip() == f"{tmp_path}/model_best"


def test_run_pool_with_no_specs_succeeds():
    assert _bash("specs=(); run_pool 2 false \"${specs[@]}\"").returncode == 0


def test_nonzero_conf_suffix_and_corpus_languages():
    p = _bash("""
for x in 0 0.0 -0 0.25 1e-3 -1; do if nonzero "$x"; then echo "$x:y"; else echo "$x:n"; fi; done
echo "[$(conf_suffix default)] [$(conf_suffix smoke)]"
corpus_languages ../conf/corpus_smoke.yaml
""")
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n")
    assert out[:6] == ["0:n", "0.0:n", "-0:n", "0.25:y", "1e-3:y", "-1:y"]
    assert out[6] == "[] [_smoke]"
    assert out[7].split() and all(len(code) == 2 for code in out[7].split())


def test_every_recipe_sources_lib_and_has_no_private_log_or_pool():
    for run in sorted(ROOT.glob("egs/*/*/run.sh")):
        text = run.read_text()
        assert ". steps/lib.sh" in text, run
        assert "log() {" not in text and "wait_all" not in text and "run_bg" not in text, run
        assert "['corpus']['languages']" not in text, run     # corpus_languages does that


def test_no_inline_python_in_recipes_or_steps():
    """Programs live in local/*.py, utils/*.py or CLIs, where they can be read, tested and linted."""
    for f in sorted(ROOT.glob("egs/*/*/run.sh")) + sorted(ROOT.glob("egs/TEMPLATE/steps/*.sh")):
        text = f.read_text()
        assert "python -c" not in text and "python3 -c" not in text, f
