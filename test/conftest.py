"""Shared pytest fixtures: tiny synthetic data dirs that need no espeak-ng."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

CLUSTER = Path(__file__).resolve().parents[1] / "utils" / "slurm_local_cluster.sh"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# exact-equality tests (accumulation, resume, DDP) need fp32; bf16 is tested where asked for explicitly
os.environ.setdefault("SPEECHKD_PRECISION", "fp32")


def _tone(sr: int, seconds: float, freq: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


@pytest.fixture
def tiny_datadir(tmp_path):
    """A 6-utterance data dir of noisy tones (16 kHz wav), 2 speakers, text of 2-3 words each."""
    from speechkd.data.audio import write_wav
    from speechkd.data.datadir import write_datadir

    rng = np.random.default_rng(0)
    wav_dir = tmp_path / "wav"
    words = ["alpha", "beta", "gamma", "delta"]
    entries = {"wav.scp": {}, "text": {}, "utt2spk": {}, "utt2lang": {}}
    for i in range(6):
        spk = f"spk{i % 2}"
        utt = f"{spk}-utt{i}"
        path = wav_dir / f"{utt}.wav"
        write_wav(path, _tone(16000, 0.5 + 0.1 * i, 200 + 50 * i, rng), 16000)
        entries["wav.scp"][utt] = str(path)
        entries["text"][utt] = " ".join(words[(i + j) % 4] for j in range(2 + i % 2))
        entries["utt2spk"][utt] = spk
        entries["utt2lang"][utt] = "en"
    write_datadir(tmp_path / "data", entries)
    return tmp_path / "data"


# --------------------------------------------------------------------------- one-node Slurm cluster
def _skip_reason():
    if os.environ.get("SPEECHKD_SKIP_SLURM") == "1":
        return "SPEECHKD_SKIP_SLURM=1"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to run slurmd/munged"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "Slurm not installed and no apt-get to install it"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    cluster_dir = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURM_LOCAL_CTLD_PORT=str(_free_port()), SLURM_LOCAL_SLURMD_PORT=str(_free_port()))
    try:
        r = subprocess.run(["bash", str(CLUSTER), "start", str(cluster_dir)], capture_output=True, text=True,
                           timeout=600, env=env)
    except subprocess.TimeoutExpired:
        subprocess.run(["bash", str(CLUSTER), "stop", str(cluster_dir)], timeout=120, env=env)
        pytest.fail("local Slurm cluster did not start within 600 s")
    if r.returncode != 0:
        subprocess.run(["bash", str(CLUSTER), "stop", str(cluster_dir)], timeout=120, env=env)
        pytest.fail(f"could not start the local Slurm cluster:\n{r.stderr[-3000:]}")
    env["SLURM_CONF"] = str(cluster_dir / "slurm.conf")
    yield env
    subprocess.run(["bash", str(CLUSTER), "stop", str(cluster_dir)], timeout=120, env=env,
                   capture_output=True)




@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory):
    """The smoke-size teacher zoo (egs/mini_espeak/ssl --conf_tag smoke, stages 1-10), built once per test
    session in a scratch copy of the recipe; returns its zoo dir (ssl_ml, ssl_en_cnn, text_ml). Recipe
    tests pass it to their run.sh as SPEECHKD_ZOO so that no test trains a private teacher."""
    from recipe_runner import copy_recipe, run_recipe

    rdir = copy_recipe("mini_espeak/ssl", tmp_path_factory.mktemp("zoo"))
    run_recipe(rdir, "--conf_tag", "smoke", "--stop_stage", "10")
    return rdir / "exp_smoke" / "zoo"
