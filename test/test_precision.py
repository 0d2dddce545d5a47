"""train.precision: detection and fallback, the deprecated amp alias, and a bf16 run that tracks fp32."""
from __future__ import annotations

import logging

import pytest
import torch

from speechkd.train import precision as P


def test_normalize_and_errors():
    assert P.normalize_precision("none") == "fp32" and P.normalize_precision("BF16") == "bf16"
    assert P.normalize_precision(None) == "auto"
    with pytest.raises(ValueError, match="precision must be one of"):
        P.normalize_precision("int8")


def test_auto_follows_cpu_flags_and_env(monkeypatch, caplog):
    monkeypatch.delenv("SPEECHKD_PRECISION", raising=False)
    monkeypatch.setattr(P, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    with caplog.at_level(logging.INFO, logger="speechkd"):
        assert P.resolve_precision("auto", torch.device("cpu")) == ("bf16", torch.bfloat16)
    assert "bf16 (CPU has avx512_bf16)" in caplog.text
    monkeypatch.setattr(P, "cpu_bf16_flags", lambda: ())
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="speechkd"):
        assert P.resolve_precision("auto", torch.device("cpu")) == ("fp32", None)
    assert "no bf16 matrix units" in caplog.text           # the fallback says so in the log
    with caplog.at_level(logging.WARNING, logger="speechkd"):
        assert P.resolve_precision("bf16", torch.device("cpu"))[0] == "bf16"   # explicit: runs, warns
    assert "emulated" in caplog.text
    monkeypatch.setenv("SPEECHKD_PRECISION", "fp32")
    monkeypatch.setattr(P, "cpu_bf16_flags", lambda: ("amx_bf16",))
    assert P.resolve_precision("auto", torch.device("cpu")) == ("fp32", None)   # env wins over auto
    assert P.resolve_precision("bf16", torch.device("cpu"))[0] == "bf16"        # not over an explicit value


def test_trainer_precision_key_and_amp_alias(tmp_path):
    from speechkd.train.trainer import Trainer
    from speechkd.utils.errors import ConfigError

    def step(model, batch):
        return model(batch).pow(2).mean(), {}

    def make(**train):
        return Trainer(torch.nn.Linear(4, 1), step, {"lr": 0.01}, tmp_path / "e",
                       {"train": {"max_steps": 1, "tensorboard": False, "progress": False, **train}})

    assert make(precision="bf16").amp_dtype == torch.bfloat16
    assert make(precision="fp32").amp_dtype is None
    assert make(amp="none", precision="bf16").amp_dtype is None       # the old key still wins when set
    assert make(amp="bf16").precision == "bf16"
    with pytest.raises(ConfigError, match="train.precision"):
        make(precision="fp8")


def _curve(precision, seed=0, steps=40):
    """Loss per step of a small pre-LN transformer CTC-like regression trained with the given precision."""
    from speechkd.models.ssl import SSLConfig, SSLModel
    from speechkd.train.precision import autocast, resolve_precision

    torch.manual_seed(seed)
    model = SSLModel(SSLConfig(frontend="fbank", d_model=64, n_layers=2, n_heads=2, ffn_dim=128,
                               pos_conv_kernel=8, pos_conv_groups=4, layer_norm_first=True, dropout=0.0,
                               attention_dropout=0.0, proj_dropout=0.0, mask_time_prob=0.0))
    head = torch.nn.Linear(64, 10)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 120, 80, generator=g)
    y = torch.randint(0, 10, (8, 60), generator=g)
    _, dtype = resolve_precision(precision, torch.device("cpu"), quiet=True)
    losses = []
    for _ in range(steps):
        with autocast(torch.device("cpu"), dtype):
            h = model(x).last_hidden_state
            logits = head(h)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 10), y[:, : logits.shape[1]].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_bf16_loss_curve_tracks_fp32():
    """Tolerance: every step's bf16 loss within 5 % of fp32's, and both fall by the same factor +- 10 %."""
    a, b = _curve("fp32"), _curve("bf16")
    assert a[-1] < 0.8 * a[0]                             # it learns (memorises the batch)
    rel = max(abs(x - y) / x for x, y in zip(a, b))
    assert rel < 0.05, rel
    assert abs(b[-1] / b[0] - a[-1] / a[0]) < 0.10 * (a[-1] / a[0]) + 0.02
