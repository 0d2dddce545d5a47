"""End to end on a tiny data dir: HuBERT iteration 1 (fbank and waveform front-ends) then CTC fine-tuning."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from speechkd.utils.config import load_config

CONF = Path(__file__).resolve().parents[1] / "egs" / "mini_espeak" / "asr" / "conf"

TINY_MODEL = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.ffn_dim=64",
              "model.pos_conv_kernel=8", "model.pos_conv_groups=4", "model.final_dim=16"]
QUIET = ["train.progress=false", "train.tensorboard=false"]


def _log_values(exp, key, prefix="[train]"):
    vals = []
    for line in (exp / "train.log").read_text().splitlines():
        if prefix in line:
            parts = line.split()
            vals.append(float(parts[parts.index(key) + 1]))
    return vals


@pytest.fixture
def fbank_datadir(tiny_datadir, tmp_path):
    from speechkd.features.extract import extract_features

    scp = extract_features(tiny_datadir, tmp_path / "fbank", kind="fbank", progress=False)
    shutil.copyfile(scp, tiny_datadir / "feats.scp")
    return tiny_datadir


def test_pretrain_then_finetune_fbank(fbank_datadir, tmp_path):
    from speechkd.asr.tokenizer import build_tokenizer
    from speechkd.bin.finetune import main as finetune_main
    from speechkd.data.datadir import DataDir
    from speechkd.models.checkpoint import load_checkpoint
    from speechkd.models.kmeans import KMeans
    from speechkd.models.ssl import SSLModel
    from speechkd.train.hubert import PRETRAIN_DEFAULTS, pretrain_hubert

    data = fbank_datadir
    cfg = load_config(CONF / "pretrain_smoke.yaml", TINY_MODEL + QUIET + [
        "kmeans.n_clusters=8", "train.max_steps=40", "train.log_interval=5", "train.valid_interval=20",
        "train.save_interval=20", "optim.lr=5e-3", "data.batch_seconds=3"], defaults=PRETRAIN_DEFAULTS)
    exp = tmp_path / "teacher"
    model_dir = pretrain_hubert(cfg, data, data, exp)
    losses = _log_values(exp, "loss_m")
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.95 * sum(losses[:2]) / 2, losses
    acc = _log_values(exp, "acc_m", "[valid]")
    assert acc[-1] > 1.2 / 8, acc  # masked accuracy above chance over 8 classes
    model, config = load_checkpoint(model_dir)
    assert isinstance(model, SSLModel) and model.head is not None and config["model"]["num_labels"] == 8
    assert KMeans.load(model_dir / "kmeans.pt").centroids.shape == (8, 39)
    assert (model_dir / "cmvn.npz").exists() and (exp / "model_best" / "model.pt").exists()

    tok_dir = tmp_path / "token_char"
    build_tokenizer("char", DataDir(data).read("text").values(), tok_dir)
    ft = tmp_path / "ft"
    argv = ["--config", str(CONF / "finetune_smoke.yaml"), "--init", str(model_dir), "--train-data", str(data),
            "--valid-data", str(data), "--token-dir", str(tok_dir), "--exp", str(ft),
            "--train.max_steps", "40", "--train.log_interval", "5", "--train.valid_interval", "20",
            "--train.save_interval", "20", "--optim.lr", "5e-3", "--data.batch_seconds", "3",
            "--finetune.freeze_encoder_steps", "5", "--train.progress", "false", "--train.tensorboard", "false"]
    with pytest.raises(SystemExit) as e:
        finetune_main(argv)
    assert e.value.code == 0
    ctc = _log_values(ft, "ctc")
    assert sum(ctc[-2:]) / 2 < 0.7 * sum(ctc[:2]) / 2, ctc
    ctc_model, ctc_cfg = load_checkpoint(ft / "model")
    assert ctc_cfg["model"]["type"] == "ctc" and ctc_cfg["model"]["encoder"]["d_model"] == 32
    # the encoder started from the teacher; the front-end stayed frozen
    torch.testing.assert_close(ctc_model.encoder.feature_extractor.state_dict(),
                               model.feature_extractor.state_dict())
    assert (ft / "model" / "tokenizer" / "tokenizer.yaml").exists()
    ter = _log_values(ft, "ter", "[valid]")
    assert len(ter) == 2 and ter[-1] < 100.0


def test_pretrain_waveform_frontend_cli(tiny_datadir, tmp_path):
    from speechkd.bin.pretrain import main as pretrain_main
    from speechkd.models.checkpoint import load_checkpoint

    exp = tmp_path / "teacher_cnn"
    argv = ["--config", str(CONF / "pretrain_smoke.yaml"), "--train-data", str(tiny_datadir),
            "--exp", str(exp), "--model.frontend", "cnn",
            "--model.conv_layers", "[[16,10,5],[16,3,2],[16,3,2],[16,3,2],[16,2,2],[16,2,2]]",
            "--kmeans.n_clusters", "6", "--train.max_steps", "6", "--train.save_interval", "3",
            "--data.batch_seconds", "2"] + [f"--{o.replace('=', ' ', 1).split()[0]}={o.split('=', 1)[1]}"
                                            for o in TINY_MODEL + QUIET]
    with pytest.raises(SystemExit) as e:
        pretrain_main(argv)
    assert e.value.code == 0
    model, cfg = load_checkpoint(exp / "model")
    assert cfg["model"]["frontend"] == "cnn"
    out = model(torch.zeros(1, 16000), mask=False)
    assert out.last_hidden_state.shape[-1] == 32
    # bad override -> one-line error, exit 1
    with pytest.raises(SystemExit) as e:
        pretrain_main(["--train-data", str(tiny_datadir), "--exp", str(exp), "--optim.lrr", "1"])
    assert e.value.code == 1
