"""Trainer: convergence, gradient accumulation, exact resume, NaN handling, atomic checkpoints, freezing."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from speechkd.data.sampler import BucketBatchSampler
from speechkd.models.checkpoint import link_checkpoint_dir, write_checkpoint_dir
from speechkd.train.optim import lr_lambda_factory
from speechkd.train.trainer import Trainer, list_checkpoints
from speechkd.utils.errors import SpeechkdError

W_TRUE = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=20, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ W_TRUE + 0.01 * torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"utt": f"u{i}", "x": self.x[i], "y": self.y[i]}


def toy_collate(items):
    return {"utts": [it["utt"] for it in items], "x": torch.stack([it["x"] for it in items]),
            "y": torch.stack([it["y"] for it in items])}


class Toy(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        torch.manual_seed(123)
        self.frontend = nn.Linear(4, 8)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.drop(self.frontend(x)))


def mse_step(model, batch):
    loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
    return loss, {"mse": loss.item()}


def loader(ds, batch_frames=4, seed=0, shuffle=True):
    sampler = BucketBatchSampler([1] * len(ds), max_frames=batch_frames, seed=seed, shuffle=shuffle)
    return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=toy_collate)


def cfg(**train):
    base = {"max_steps": 20, "log_interval": 5, "tensorboard": False, "progress": False, "grad_clip": None}
    base.update(train)
    return {"model": {"type": "toy"}, "train": base}


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_decreases_and_outputs(tmp_path):
    ds = ToyData(32)
    model = Toy()
    tr = Trainer(model, mse_step, {"lr": 0.05, "warmup_steps": 2}, tmp_path / "exp",
                 cfg(max_steps=60, valid_interval=20, save_interval=20, keep_last=2, tensorboard=True))
    first = tr.validate(loader(ds, 8, shuffle=False))["loss"]
    metrics = tr.fit(loader(ds, 8), loader(ds, 8, shuffle=False))
    assert metrics["loss"] < 0.1 * first
    exp = tmp_path / "exp"
    assert [p.name for p in list_checkpoints(exp)] == ["step_40", "step_60"]  # keep_last 2
    for d in ("model", "model_best"):
        assert (exp / d / "model.pt").exists() and (exp / d / "config.yaml").exists()
    log = (exp / "train.log").read_text()
    assert "[train]" in log and "[valid]" in log and "mse" in log
    assert any((exp / "tensorboard").iterdir())
    final = torch.load(exp / "model" / "model.pt")
    assert torch.equal(final["head.weight"], model.head.weight.detach())


def test_final_model_links_best_and_final_state_dropped(tmp_path):
    """Last step = best validation: model/ is a second name of model_best/'s files (no second copy on
    disk); ``keep_final_state: false`` leaves no checkpoints/ (optimizer state) once model/ is written."""
    ds = ToyData(32)
    tr = Trainer(Toy(), mse_step, {"lr": 0.05, "warmup_steps": 2}, tmp_path / "exp",
                 cfg(max_steps=30, valid_interval=10, save_interval=10, keep_final_state=False))
    tr.fit(loader(ds, 8), loader(ds, 8, shuffle=False))
    exp = tmp_path / "exp"
    assert not (exp / "checkpoints").exists() and list_checkpoints(exp) == []
    best, final = (exp / d / "model.pt" for d in ("model_best", "model"))
    assert best.stat().st_ino == final.stat().st_ino              # the loss still falls at step 30: best = last
    assert torch.equal(torch.load(final)["head.weight"], tr.model.head.weight.detach())
    # best earlier than the end: model/ is written on its own
    tr2 = Trainer(Toy(), mse_step, {"lr": 0.0, "warmup_steps": 0}, tmp_path / "exp2",
                  cfg(max_steps=4, valid_interval=2, best_metric="loss"))
    tr2.fit(loader(ds, 8), loader(ds, 8, shuffle=False))
    exp2 = tmp_path / "exp2"
    assert list_checkpoints(exp2)                                  # default: the final state is kept
    assert (exp2 / "model" / "model.pt").stat().st_ino != (exp2 / "model_best" / "model.pt").stat().st_ino


def test_link_checkpoint_dir_keeps_subdirectories(tmp_path):
    """A checkpoint dir's sub-directories (a transducer saves its tokenizer/ next to model.pt) are linked too:
    the pathways recipes load model/tokenizer after the final model was linked to model_best."""
    src = tmp_path / "model_best"
    (src / "tokenizer").mkdir(parents=True)
    (src / "model.pt").write_bytes(b"w")
    (src / "tokenizer" / "tok.model").write_bytes(b"t")
    dst = link_checkpoint_dir(src, tmp_path / "model")
    assert (dst / "tokenizer" / "tok.model").read_bytes() == b"t"
    assert (dst / "model.pt").stat().st_ino == (src / "model.pt").stat().st_ino


def test_grad_accumulation_equals_big_batch(tmp_path):
    ds = ToyData(16)
    full = [toy_collate([ds[i] for i in range(j, j + 8)]) for j in (0, 8)]
    half = [toy_collate([ds[i] for i in range(j, j + 4)]) for j in range(0, 16, 4)]
    m1, m2 = Toy(), Toy()
    Trainer(m1, mse_step, {"lr": 0.01}, tmp_path / "a", cfg(max_steps=2)).fit(full)
    Trainer(m2, mse_step, {"lr": 0.01}, tmp_path / "b", cfg(max_steps=2, accum_grad=2)).fit(half)
    w0 = weights(Toy())
    for k, v in weights(m1).items():
        assert not torch.allclose(v, w0[k])  # it did train
        torch.testing.assert_close(weights(m2)[k], v, rtol=1e-5, atol=1e-6)


def _run(exp, max_steps, fail_at=None, **train):
    ds = ToyData(20)
    model = Toy(dropout=0.3)  # dropout: the torch RNG stream must be restored too
    calls = {"n": 0}

    def step(model, batch):
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at:
            raise KeyboardInterrupt("simulated kill")
        return mse_step(model, batch)

    opt = {"lr": 0.02, "warmup_steps": 3, "scheduler": "constant"}
    tr = Trainer(model, step, opt, exp, cfg(max_steps=max_steps, save_interval=3, accum_grad=2, **train))
    tr.fit(loader(ds, 4, seed=7))
    return model, tr


def test_resume_after_max_steps_equals_uninterrupted(tmp_path):
    ref, _ = _run(tmp_path / "ref", 12)  # 5 batches/epoch, accum 2 -> crosses epoch boundaries
    _run(tmp_path / "re", 5)
    assert [p.name for p in list_checkpoints(tmp_path / "re")] == ["step_3", "step_5"]
    resumed, tr = _run(tmp_path / "re", 12)
    assert tr.step == 12
    for k, v in weights(ref).items():
        assert torch.equal(weights(resumed)[k], v), k


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    ref, _ = _run(tmp_path / "ref", 12)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "re", 12, fail_at=16)  # dies in micro-batch 16 (step 8); last checkpoint step 6
    assert list_checkpoints(tmp_path / "re")[-1].name == "step_6"
    assert not (tmp_path / "re" / "model").exists()
    resumed, _ = _run(tmp_path / "re", 12)
    for k, v in weights(ref).items():
        assert torch.equal(weights(resumed)[k], v), k
    # a finished run re-run is a no-op that keeps the same final model
    again, tr = _run(tmp_path / "re", 12)
    assert tr.step == 12
    for k, v in weights(ref).items():
        assert torch.equal(weights(again)[k], v), k


def _nan_step(model, batch):
    loss, stats = mse_step(model, batch)
    if "u3" in batch["utts"]:
        loss = loss * float("nan")
    return loss, stats


def test_nan_loss_names_step_and_utts(tmp_path):
    ds = ToyData(8)
    tr = Trainer(Toy(), _nan_step, {"lr": 0.01}, tmp_path / "e", cfg(max_steps=4))
    with pytest.raises(SpeechkdError) as e:
        tr.fit(loader(ds, 2, shuffle=False))
    msg = str(e.value)
    assert "non-finite loss" in msg and "u3" in msg and "step 2" in msg  # batches [u0 u1] [u2 u3]


def test_nan_loss_skipped_when_asked(tmp_path):
    ds = ToyData(8)
    tr = Trainer(Toy(), _nan_step, {"lr": 0.01}, tmp_path / "e", cfg(max_steps=8, skip_nan=True))
    tr.fit(loader(ds, 2, shuffle=False))
    assert tr.nan_skipped == 2  # 4 batches/epoch, 2 epochs
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())


def test_checkpoint_complete_or_absent(tmp_path, monkeypatch):
    real_save = torch.save

    def failing_save(obj, path, *a, **k):
        if str(path).endswith("train_state.pt"):
            raise OSError("disk full")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        write_checkpoint_dir(tmp_path / "checkpoints" / "step_5", {"a": 1}, {"w": torch.ones(2)}, {"step": 5})
    assert list((tmp_path / "checkpoints").iterdir()) == []  # temp dir removed, nothing under final name
    monkeypatch.setattr(torch, "save", real_save)
    # a dir missing train_state.pt (e.g. killed mid-copy by hand) is not taken as a checkpoint
    half = tmp_path / "checkpoints" / "step_9"
    half.mkdir()
    (half / "model.pt").write_bytes(b"")
    write_checkpoint_dir(tmp_path / "checkpoints" / "step_5", {"a": 1}, {"w": torch.ones(2)}, {"step": 5})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_5"]


def test_freeze_and_timed_freeze(tmp_path):
    ds = ToyData(16)
    model = Toy()
    w0 = weights(model)
    tr = Trainer(model, mse_step, {"lr": 0.05}, tmp_path / "e", cfg(max_steps=3, freeze=["head."]))
    tr.fit(loader(ds, 4))
    assert torch.equal(model.head.weight, w0["head.weight"])
    assert not torch.equal(model.frontend.weight, w0["frontend.weight"])

    model = Toy()
    tr = Trainer(model, mse_step, {"lr": 0.05}, tmp_path / "f", cfg(max_steps=2, freeze_steps={"frontend": 2}))
    tr.fit(loader(ds, 4))
    assert torch.equal(model.frontend.weight, w0["frontend.weight"])  # frozen for steps 1-2
    tr = Trainer(model, mse_step, {"lr": 0.05}, tmp_path / "f", cfg(max_steps=3, freeze_steps={"frontend": 2}))
    tr.fit(loader(ds, 4))
    assert not torch.equal(model.frontend.weight, w0["frontend.weight"])  # step 3 trains it
    with pytest.raises(SpeechkdError, match="matches no parameter"):
        Trainer(Toy(), mse_step, {}, tmp_path / "g", cfg(freeze=["encoder."]))


def test_lr_schedule_values():
    lin = lr_lambda_factory(warmup=4, total=14, kind="linear", min_ratio=0.0)
    assert [lin(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lin(9) == pytest.approx(0.5) and lin(14) == 0.0
    cos = lr_lambda_factory(warmup=0, total=10, kind="cosine", min_ratio=0.1)
    assert cos(0) == pytest.approx(1.0) and cos(5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert cos(10) == pytest.approx(0.1)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cpu_trains(tmp_path, amp):
    ds = ToyData(32)
    model = Toy()
    tr = Trainer(model, mse_step, {"lr": 0.05}, tmp_path / "e", cfg(max_steps=30, amp=amp))
    assert tr.amp_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    first = tr.validate(loader(ds, 8, shuffle=False))["loss"]
    metrics = tr.fit(loader(ds, 8), loader(ds, 8, shuffle=False))
    assert metrics["loss"] < 0.3 * first
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
