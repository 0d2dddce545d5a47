"""utils/slurm.py against a real one-node Slurm cluster started on loopback (utils/slurm_local_cluster.sh;
the session fixture ``slurm_env`` lives in conftest.py).

Needs root and either Slurm already installed or apt-get (Debian ``slurm-wlm munge`` are installed on first
use, ~10 s). Skipped otherwise, or when ``SPEECHKD_SKIP_SLURM=1``. The cluster starts once per session.
"""
import subprocess
import sys
from pathlib import Path


UTILS = Path(__file__).resolve().parents[1] / "utils"
SLURM = UTILS / "slurm.py"
TEMPLATE_CONF = UTILS.parent / "egs" / "TEMPLATE" / "conf" / "slurm.conf"
sys.path.insert(0, str(UTILS))
from slurm import DEFAULT_CONFIG, SlurmConfig  # noqa: E402


def run_slurm(env, cwd, *args):
    return subprocess.run([str(SLURM), "--poll-interval", "1", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=180)


def test_config_maps_options_to_sbatch_arguments(tmp_path):
    cfg = SlurmConfig.parse(DEFAULT_CONFIG)
    assert cfg.sbatch_args({"mem": "4G", "gpu": "2", "time": "1:00:00"}) == [
        "sbatch", "--export=ALL", "--gres=gpu:2", "--mem", "4G", "--time", "1:00:00"]
    assert cfg.sbatch_args({}) == ["sbatch", "--export=ALL"]  # default gpu=0 adds nothing
    conf = tmp_path / "slurm.conf"
    conf.write_text("command sbatch --export=PATH\noption gpu=* -p gpu --gres=gpu:$0\noption gpu=0 -p cpu\n"
                    "default gpu=0\n")
    cfg = SlurmConfig.load(str(conf))
    assert cfg.sbatch_args({}) == ["sbatch", "--export=PATH", "-p", "cpu"]
    assert cfg.sbatch_args({"gpu": "1"}) == ["sbatch", "--export=PATH", "-p", "gpu", "--gres=gpu:1"]
    cfg = SlurmConfig.load(str(TEMPLATE_CONF))
    assert cfg.sbatch_args({"gpu": "1", "mem": "8G", "num_threads": "4"}) == [
        "sbatch", "--export=ALL", "--gres=gpu:1", "--mem", "8G", "--cpus-per-task", "4"]
    assert cfg.sbatch_args({"mem": "0", "num_threads": "1"}) == ["sbatch", "--export=ALL", "--cpus-per-task", "1"]
    r = subprocess.run([str(SLURM), "--config", str(conf), "--mem", "1G", "log.log", "true"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert r.returncode == 1 and "--mem" in r.stderr and "slurm.conf" in r.stderr


def test_array_job_writes_every_log(slurm_env, tmp_path):
    r = run_slurm(slurm_env, tmp_path, "--config", str(TEMPLATE_CONF), "--mem", "50M", "JOB=1:3", "exp/log/echo.JOB.log", "echo", "task", "JOB")
    assert r.returncode == 0, r.stderr
    for j in (1, 2, 3):
        lines = (tmp_path / f"exp/log/echo.{j}.log").read_text().splitlines()
        assert lines[0] == f"# echo task {j}"
        assert f"task {j}" in lines
        assert lines[-2].startswith("# Accounting: time=")
        assert lines[-1].startswith("# Ended (code 0)")
    assert (tmp_path / "exp/log/q/echo.sh").exists()


def test_failing_task_is_named(slurm_env, tmp_path):
    r = run_slurm(slurm_env, tmp_path, "--max-jobs-run", "2", "JOB=1:3", "log/f.JOB.log",
                  "echo JOB; [ JOB -ne 2 ]")
    assert r.returncode == 1
    assert "1 / 3 failed, log is in log/f.2.log" in r.stderr
    assert (tmp_path / "log/f.2.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")
    assert (tmp_path / "log/f.3.log").read_text().splitlines()[-1].startswith("# Ended (code 0)")


def test_task_killed_without_status_counts_as_failed(slurm_env, tmp_path):
    # the task's batch script is killed: it cannot write its exit status
    r = run_slurm(slurm_env, tmp_path, "log/k.log", "kill -9 $PPID")
    assert r.returncode == 1
    assert "no exit status from task 1" in r.stderr and "log is in log/k.log" in r.stderr
