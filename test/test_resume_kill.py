"""Resume after SIGKILL (issue 8): a training CLI killed at a random checkpoint and re-run with the same
command reaches the same final weights as an uninterrupted run; a killed feature extraction leaves no
ark/scp under the final names that a later stage could read."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from speechkd.data.datadir import DataDir, write_datadir

TINY = ["--model.encoder.frontend", "fbank", "--model.encoder.d_model", "32", "--model.encoder.n_layers", "2",
        "--model.encoder.n_heads", "2", "--model.encoder.ffn_dim", "64", "--model.encoder.pos_conv_kernel", "8",
        "--model.encoder.pos_conv_groups", "4", "--model.encoder.dropout", "0.1",
        "--model.encoder.mask_time_prob", "0.1", "--model.encoder.mask_time_length", "3",
        "--train.max_steps", "24", "--train.save_interval", "4", "--train.keep_last", "2",
        "--train.log_interval", "4", "--train.progress", "false", "--train.tensorboard", "false",
        "--train.seed", "3", "--data.text_file", "text", "--data.batch_seconds", "1.5", "--optim.lr", "3e-3"]


@pytest.fixture
def fbank_data(tiny_datadir, tmp_path):
    from speechkd.asr.tokenizer import build_tokenizer
    from speechkd.features.extract import extract_features

    scp = extract_features(tiny_datadir, tmp_path / "fbank", progress=False)
    shutil.copyfile(scp, tiny_datadir / "feats.scp")
    build_tokenizer("char", list(DataDir(tiny_datadir).read("text").values()), tmp_path / "tok")
    return tiny_datadir


def _finetune_cmd(data, tok, exp):
    return [sys.executable, "-m", "speechkd.bin.finetune", "--train-data", str(data), "--token-dir", str(tok),
            "--exp", str(exp), *TINY]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_sigkill_then_rerun_reaches_same_weights(fbank_data, tmp_path):
    tok = tmp_path / "tok"
    ref = subprocess.run(_finetune_cmd(fbank_data, tok, tmp_path / "ref"), env=_env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]

    kill_after = random.Random(os.getpid()).choice([4, 8, 12, 16])  # a random checkpoint
    exp = tmp_path / "killed"
    proc = subprocess.Popen(_finetune_cmd(fbank_data, tok, exp), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (exp / "checkpoints" / f"step_{kill_after}" / "train_state.pt").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (exp / "model").exists()

    again = subprocess.run(_finetune_cmd(fbank_data, tok, exp), env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resum" in again.stderr.lower(), again.stderr[-2000:]
    a = torch.load(tmp_path / "ref" / "model" / "model.pt", map_location="cpu")
    b = torch.load(exp / "model" / "model.pt", map_location="cpu")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), (kill_after, k)


def test_sigkill_feature_extraction_leaves_no_partial_files(tiny_datadir, tmp_path):
    d = DataDir(tiny_datadir)
    wavs, texts = d.read("wav.scp"), d.read("text")
    big = {"wav.scp": {}, "text": {}, "utt2spk": {}}
    for i in range(400):  # enough work that the kill lands mid-way
        for utt, path in wavs.items():
            key = f"{utt}-{i:04d}"
            big["wav.scp"][key], big["text"][key], big["utt2spk"][key] = path, texts[utt], utt.split("-")[0]
    data = tmp_path / "big"
    write_datadir(data, big)
    out = tmp_path / "fbank"
    cmd = [sys.executable, "-m", "speechkd.bin.compute_fbank", "--data", str(data), "--out", str(out), "--job", "1"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not any(p.name.endswith(".tmp.ark") or ".tmp" in p.name for p in (out.iterdir() if out.exists() else [])):
        assert proc.poll() is None, "extraction ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finals = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    assert not [n for n in finals if n.endswith((".ark", ".scp"))], finals
    merge = subprocess.run([sys.executable, "-m", "speechkd.bin.compute_fbank", "--merge", "--data", str(data),
                            "--out", str(out)], capture_output=True, text=True)
    assert merge.returncode == 1 and "no feature scp files" in merge.stderr
    assert not (data / "feats.scp").exists()
