"""Several GPUs / nodes through the job runners (issue 15): ``--gpu N`` (N > 1) starts the command under
torchrun with N processes, ``--nodes M`` asks Slurm for M nodes with one torchrun each (c10d rendezvous).
On this CPU machine the N processes train with gloo: the same code path a GPU node takes, minus nccl."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

UTILS = Path(__file__).resolve().parents[1] / "utils"
sys.path.insert(0, str(UTILS))
from jobs_common import (DDP_ENTRY_POINTS, UsageError, parse_command_line,  # noqa: E402
                         torchrun_command)
from slurm import SlurmConfig, SlurmRunner  # noqa: E402

BIN = str(Path(sys.executable).parent)   # torchrun and the speechkd-* entry points of this environment
# one write() per rank: the ranks share the job's log, and print's pieces interleaved there once
# ("rankrank 0 of 2 / 1 of 2" under the one-node Slurm cluster)
RANKS = "import os; os.write(1, ('rank %s of %s\\n' % (os.environ['RANK'], os.environ['WORLD_SIZE'])).encode())"


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return {**env, **extra}


def test_torchrun_command_wraps_one_program(monkeypatch):
    monkeypatch.setenv("PATH", BIN + os.pathsep + os.environ.get("PATH", ""))
    assert torchrun_command("speechkd-finetune --config c.yaml --x \"$A\"", 4) == (
        "torchrun --standalone --nnodes 1 --nproc_per_node 4 --no-python speechkd-finetune --config c.yaml "
        "--x \"$A\"")
    assert torchrun_command("CUDA_LAUNCH_BLOCKING=1 speechkd-distill --a b", 2).startswith(
        "CUDA_LAUNCH_BLOCKING=1 torchrun --standalone")
    multi = torchrun_command("speechkd-pretrain --config p.yaml", 8, 2, "slurm")
    assert multi.startswith("srun --nodes 2 --ntasks-per-node 1 --kill-on-bad-exit=1 torchrun --nnodes 2 "
                            "--nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint ")
    assert '$SLURM_JOB_NODELIST' in multi and multi.endswith("--no-python speechkd-pretrain --config p.yaml")
    for bad, why in (("speechkd-decode --model m", "does not train under torchrun"),
                     ("speechkd-finetune --x | tee log", "shell line"),
                     ("a=1; speechkd-finetune", "shell line"),
                     ('A="1 2" speechkd-finetune', "without quotes"),
                     ("A=1", "no program")):
        with pytest.raises(UsageError, match=why):
            torchrun_command(bad, 2)
    with pytest.raises(UsageError, match="need a cluster"):
        torchrun_command("speechkd-finetune", 2, 2, "standalone")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="torchrun not found"):
        torchrun_command("speechkd-finetune", 2)


def test_ddp_entry_points_are_installed():
    """Every name in DDP_ENTRY_POINTS is a speechkd.bin verb installed as an entry point (a renamed verb
    would otherwise be refused under --gpu N)."""
    root = UTILS.parent / "speechkd"
    for name in DDP_ENTRY_POINTS:
        verb = name[len("speechkd-"):].replace("-", "_")
        assert (root / "bin" / f"{verb}.py").exists(), name
        assert shutil.which(name, path=BIN), name


def test_run_py_gpu_two_starts_two_ranks(tmp_path):
    r = subprocess.run([str(UTILS / "run.py"), "--gpu", "2", "log/ranks.log", "python3", "-c", RANKS],
                       capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "log/ranks.log").read_text()
    assert log.splitlines()[0].startswith("# torchrun --standalone --nnodes 1 --nproc_per_node 2 --no-python")
    assert "rank 0 of 2" in log and "rank 1 of 2" in log
    # a command torchrun cannot copy: refused before anything runs, naming the reason
    r = subprocess.run([str(UTILS / "run.py"), "--gpu", "2", "log/bad.log", "echo a | cat"],
                       capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=60)
    assert r.returncode == 1 and "shell line" in r.stderr and not (tmp_path / "log/bad.log").exists()
    r = subprocess.run([str(UTILS / "run.py"), "--nodes", "2", "log/bad.log", "python3", "-c", RANKS],
                       capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=60)
    assert r.returncode == 1 and "cmd_backend=slurm" in r.stderr


TINY = ["--model.encoder.frontend", "fbank", "--model.encoder.d_model", "32", "--model.encoder.n_layers", "2",
        "--model.encoder.n_heads", "2", "--model.encoder.ffn_dim", "64", "--model.encoder.pos_conv_kernel", "8",
        "--model.encoder.pos_conv_groups", "4", "--train.max_steps", "6", "--train.save_interval", "3",
        "--train.log_interval", "1", "--train.progress", "false", "--train.tensorboard", "false",
        "--train.seed", "3", "--data.text_file", "text", "--data.batch_seconds", "1.5", "--optim.lr", "3e-3"]


def test_finetune_through_run_py_on_two_processes(tiny_datadir, tmp_path):
    """speechkd-finetune started by ``utils/run.py --gpu 2``: two DDP ranks (gloo here), one log, one model."""
    from speechkd.asr.tokenizer import build_tokenizer
    from speechkd.data.datadir import DataDir
    from speechkd.features.extract import extract_features

    scp = extract_features(tiny_datadir, tmp_path / "fbank", progress=False)
    shutil.copyfile(scp, tiny_datadir / "feats.scp")
    build_tokenizer("char", list(DataDir(tiny_datadir).read("text").values()), tmp_path / "tok")
    exp = tmp_path / "exp/ft"
    r = subprocess.run([str(UTILS / "run.py"), "--gpu", "2", str(exp / "run.log"), "speechkd-finetune",
                        "--train-data", str(tiny_datadir), "--token-dir", str(tmp_path / "tok"), "--exp", str(exp),
                        *TINY], capture_output=True, text=True, cwd=tmp_path, env=_env(OMP_NUM_THREADS="1"),
                       timeout=300)
    assert r.returncode == 0, r.stderr + (exp / "run.log").read_text()[-3000:]
    assert "2 processes (DDP)" in (exp / "run.log").read_text()
    train_log = (exp / "train.log").read_text().splitlines()
    assert len([ln for ln in train_log if "[train]" in ln]) == 6      # one line per step: rank 0 alone writes
    assert (exp / "model/model.pt").exists()
    state = torch.load(exp / "checkpoints/step_6/train_state.pt", map_location="cpu", weights_only=False)
    assert state["world_size"] == 2


def test_sbatch_asks_for_nodes_and_the_task_runs_srun_torchrun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", BIN + os.pathsep + os.environ.get("PATH", ""))
    spec = parse_command_line(["--gpu", "4", "--nodes", "2", "exp/log/distill.log", "speechkd-distill", "--a", "b"])
    spec.command = torchrun_command(spec.command, 4, 2, "slurm")
    runner = SlurmRunner(spec, SlurmConfig.load(None), {"gpu": "4"}, max_jobs=None)
    cmd = runner.prepare()
    assert "--gres=gpu:4" in cmd and "--nodes=2" in cmd and "--ntasks-per-node=1" in cmd
    script = Path(runner.script).read_text()
    assert "srun --nodes 2 --ntasks-per-node 1" in script and "--nproc_per_node 4" in script


def test_slurm_gpu_two_runs_two_ranks(slurm_env, tmp_path):
    """Through the one-node local cluster: ``--gpu 2`` becomes ``srun torchrun`` with two ranks (the config
    maps gpu to a comment: the loopback node has no GPUs, the ranks run on its CPU)."""
    conf = tmp_path / "slurm.conf"
    conf.write_text("command sbatch --export=ALL\noption gpu=* --comment gpus=$0\noption gpu=0\ndefault gpu=0\n")
    env = dict(slurm_env, PATH=BIN + os.pathsep + slurm_env.get("PATH", ""))
    r = subprocess.run([str(UTILS / "slurm.py"), "--config", str(conf), "--poll-interval", "1", "--gpu", "2",
                        "log/ranks.log", "python3", "-c", RANKS], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=300)
    log = (tmp_path / "log/ranks.log").read_text() if (tmp_path / "log/ranks.log").exists() else ""
    assert r.returncode == 0, r.stderr + log[-3000:]
    assert "rank 0 of 2" in log and "rank 1 of 2" in log


def test_real_recipes_and_steps_pass_ngpu_to_every_training_job():
    """The real-corpus recipes and the shared steps give every training job ``--gpu "$ngpu" --nodes
    "$nnodes"`` (a hard-coded ``--gpu 1`` would keep a stage on one GPU), and take --ngpu/--nnodes."""
    egs = UTILS.parent / "egs"
    files = sorted((egs / "TEMPLATE/steps").glob("*.sh")) + [
        egs / r / "run.sh" for r in ("librispeech/hubert_kd", "librispeech/distilxlsr", "commonvoice/distilxlsr",
                                     "commonvoice/distill_l2s", "mls/pathways", "slurp/pad", "fsc/pad")]
    for f in files:
        text = f.read_text()
        gpu_lines = [ln for ln in text.splitlines() if "--gpu" in ln and not ln.lstrip().startswith("#")]
        for line in gpu_lines:
            assert '--gpu "$ngpu" --nodes "$nnodes"' in line, (f, line)
        passes_on = "--ngpu \"$ngpu\" --nnodes \"$nnodes\"" in text
        if gpu_lines or passes_on:
            assert "\nngpu=1" in text and "\nnnodes=1" in text, f
    assert sum("--gpu" in f.read_text() for f in files) >= 7   # 4 steps, 3 recipes call the runner directly
