"""utils/run.py: Kaldi run.pl-style local job runner."""
import subprocess
import sys
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[1] / "utils"
RUN = UTILS / "run.py"
sys.path.insert(0, str(UTILS))
from jobs_common import UsageError, join_command, parse_command_line  # noqa: E402


def run(tmp_path, *args, timeout=60):
    return subprocess.run([str(RUN), *args], capture_output=True, text=True, cwd=tmp_path, timeout=timeout)


def test_parse_command_line_and_job_substitution():
    spec = parse_command_line(["--mem", "4G", "--num-threads=2", "JOB=2:4", "log/x.JOB.log", "echo", "a b",
                               "JOB", "|", "cat"])
    assert spec.options == {"mem": "4G", "num_threads": "2"}
    assert spec.jobs == [2, 3, 4]
    assert spec.log_for(3) == "log/x.3.log"
    assert spec.command_for(3) == "echo 'a b' 3 | cat"
    single = parse_command_line(["log/one.log", "echo JOB | wc -c"])
    assert single.jobs == [1] and single.command_for(1) == "echo JOB | wc -c"
    assert join_command(["a", "b c"]) == "a 'b c'"
    with pytest.raises(UsageError, match="does not contain JOB"):
        parse_command_line(["JOB=1:2", "log/same.log", "true"])
    with pytest.raises(UsageError, match="needs a value"):
        parse_command_line(["--mem"])


def test_runs_all_jobs_with_logs(tmp_path):
    r = run(tmp_path, "--mem", "1G", "--gpu", "0", "JOB=1:4", "exp/log/feats.JOB.log", "echo", "job", "JOB",
            "|", "tr", "a-z", "A-Z")
    assert r.returncode == 0, r.stderr
    for j in range(1, 5):
        lines = (tmp_path / f"exp/log/feats.{j}.log").read_text().splitlines()
        assert lines[0] == f"# echo job {j} | tr a-z A-Z"
        assert f"JOB {j}" in lines
        assert lines[-2].startswith("# Accounting: time=")
        assert lines[-1].startswith("# Ended (code 0)")


def test_failure_names_the_failing_log(tmp_path):
    r = run(tmp_path, "JOB=1:4", "exp/log/feats.JOB.log", "echo JOB; [ JOB -ne 3 ]")
    assert r.returncode == 1
    assert "1 / 4 failed, log is in exp/log/feats.3.log" in r.stderr
    assert (tmp_path / "exp/log/feats.3.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")
    assert (tmp_path / "exp/log/feats.4.log").read_text().splitlines()[-1].startswith("# Ended (code 0)")


def test_single_job_without_range(tmp_path):
    r = run(tmp_path, "log/one.log", "exit 7")
    assert r.returncode == 1 and "1 / 1 failed, log is in log/one.log" in r.stderr
    assert "# Ended (code 7)" in (tmp_path / "log/one.log").read_text()


# A job that holds a lock directory while it runs: with several jobs at once, one finds the lock taken.
_EXCLUSIVE = "mkdir lock.d || exit 9; sleep 0.2; rmdir lock.d"
# A barrier: every job waits (at most 20 s) until all 3 have started, so it passes only if they overlap.
_BARRIER = ("touch started.JOB; for i in $(seq 200); do [ $(ls started.* | wc -l) -ge 3 ] && exit 0; "
            "sleep 0.1; done; exit 5")


def test_max_jobs_run_one_never_overlaps(tmp_path):
    r = run(tmp_path, "--max-jobs-run", "1", "JOB=1:4", "log/x.JOB.log", _EXCLUSIVE)
    assert r.returncode == 0, r.stderr


def test_jobs_run_in_parallel(tmp_path):
    r = run(tmp_path, "--max-jobs-run", "3", "JOB=1:3", "log/b.JOB.log", _BARRIER)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("started.*")) == ["started.1", "started.2", "started.3"]


def test_bad_usage_exits_1(tmp_path):
    r = run(tmp_path, "JOB=1:2")
    assert r.returncode == 1 and "usage:" in r.stderr
    r = run(tmp_path, "--max-jobs-run", "0", "log/x.log", "true")
    assert r.returncode == 1 and "at least 1" in r.stderr


# ---- thread defaults: jobs x threads <= cores unless the user chose
_SHOW_THREADS = "echo OMP=${OMP_NUM_THREADS:-unset} MKL=${MKL_NUM_THREADS:-unset}"


def _clean_env(**extra):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(extra)
    return env


def run_env(tmp_path, env, *args):
    return subprocess.run([str(RUN), *args], capture_output=True, text=True, cwd=tmp_path, timeout=60, env=env)


def _shown(tmp_path, pattern, jobs):
    return [next(ln for ln in (tmp_path / pattern.format(j)).read_text().splitlines() if ln.startswith("OMP="))
            for j in jobs]


def test_parallel_jobs_default_to_one_thread_each(tmp_path):
    r = run_env(tmp_path, _clean_env(), "--max-jobs-run", "2", "JOB=1:3", "log/t.JOB.log", _SHOW_THREADS)
    assert r.returncode == 0, r.stderr
    assert _shown(tmp_path, "log/t.{}.log", [1, 2, 3]) == ["OMP=1 MKL=1"] * 3
    assert "# Accounting: time=" in (tmp_path / "log/t.1.log").read_text()
    assert "threads=1" in (tmp_path / "log/t.1.log").read_text()


def test_lone_job_keeps_library_default(tmp_path):
    # one job at a time (a single job, or --max-jobs-run 1): it may use every core
    r = run_env(tmp_path, _clean_env(), "log/one.log", _SHOW_THREADS)
    assert r.returncode == 0, r.stderr
    r = run_env(tmp_path, _clean_env(), "--max-jobs-run", "1", "JOB=1:2", "log/s.JOB.log", _SHOW_THREADS)
    assert r.returncode == 0, r.stderr
    assert _shown(tmp_path, "log/{}.log", ["one"]) + _shown(tmp_path, "log/s.{}.log", [1, 2]) == \
        ["OMP=unset MKL=unset"] * 3


def test_explicit_num_threads_wins(tmp_path):
    r = run_env(tmp_path, _clean_env(), "--max-jobs-run", "2", "--num-threads", "3", "JOB=1:2", "log/n.JOB.log",
                _SHOW_THREADS)
    assert r.returncode == 0, r.stderr
    assert _shown(tmp_path, "log/n.{}.log", [1, 2]) == ["OMP=3 MKL=3"] * 2


def test_user_exported_omp_num_threads_wins(tmp_path):
    env = _clean_env(OMP_NUM_THREADS="2")
    for opts, name in (([], "u"), (["--num-threads", "4"], "v")):
        r = run_env(tmp_path, env, "--max-jobs-run", "2", *opts, "JOB=1:2", f"log/{name}.JOB.log", _SHOW_THREADS)
        assert r.returncode == 0, r.stderr
        assert _shown(tmp_path, f"log/{name}.{{}}.log", [1, 2]) == ["OMP=2 MKL=unset"] * 2
