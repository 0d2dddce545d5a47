"""CTC fine-tuning library: greedy decoding/token errors by hand, extra-loss hook with trainable extras."""
from __future__ import annotations

import shutil

import torch
from torch import nn

from speechkd.asr.ctc_search import ctc_greedy
from speechkd.train.ctc import FINETUNE_DEFAULTS, finetune_ctc, token_errors
from speechkd.utils.config import apply_overrides


def test_token_errors_and_greedy():
    assert token_errors([[1, 2, 3]], [[1, 3]]) == (1, 3)
    assert token_errors([[]], [[4, 4]]) == (2, 0)
    assert token_errors([[1, 2, 3, 4], [5]], [[2, 1, 3, 5], [5]]) == (3, 5)
    path = torch.tensor([[0, 3, 3, 0, 3, 2, 2, 0], [1, 1, 0, 1, 0, 0, 0, 0]])
    lp = torch.nn.functional.one_hot(path, 4).float().log()
    assert ctc_greedy(lp, torch.tensor([8, 3])) == [[3, 3, 2], [1]]


def test_finetune_with_extra_loss(tiny_datadir, tmp_path):
    from speechkd.asr.tokenizer import build_tokenizer
    from speechkd.data.datadir import DataDir
    from speechkd.features.extract import extract_features
    from speechkd.models.checkpoint import load_checkpoint

    scp = extract_features(tiny_datadir, tmp_path / "fbank", kind="fbank", progress=False)
    shutil.copyfile(scp, tiny_datadir / "feats.scp")
    tok_dir = tmp_path / "tok"
    build_tokenizer("char", DataDir(tiny_datadir).read("text").values(), tok_dir)
    cfg = apply_overrides(FINETUNE_DEFAULTS, [
        "model.encoder.frontend=fbank", "model.encoder.d_model=32", "model.encoder.n_layers=1",
        "model.encoder.n_heads=2", "model.encoder.ffn_dim=64", "model.encoder.pos_conv_kernel=8",
        "model.encoder.pos_conv_groups=4", "train.max_steps=6", "train.progress=false",
        "train.tensorboard=false", "train.log_interval=3", "data.batch_seconds=3", "optim.warmup_steps=0"])
    proj = nn.Linear(32, 8)
    w0 = proj.weight.detach().clone()
    seen = {}

    def extra_loss(task, batch, ctc_out):
        log_probs, out_lengths, ssl_out = ctc_out
        seen["shape"] = (log_probs.shape[0], ssl_out.last_hidden_state.shape[-1])
        term = task.extra(ssl_out.last_hidden_state).pow(2).mean()
        return 0.1 * term, {"aux": float(term.detach())}

    out = finetune_ctc(cfg, tiny_datadir, None, tmp_path / "ft", token_dir=tok_dir, extra_loss=extra_loss,
                       extra_modules=proj)
    assert seen["shape"][1] == 32
    assert not torch.equal(proj.weight.detach(), w0)  # the extra module is trained
    assert "aux" in (tmp_path / "ft" / "train.log").read_text()
    model, cfg2 = load_checkpoint(out)  # model.pt holds the CTC model only
    assert cfg2["model"]["vocab_size"] == model.vocab_size
    st = torch.load(tmp_path / "ft" / "checkpoints" / "step_6" / "train_state.pt", weights_only=False)
    assert any(k.startswith("extra.") for k in st["full_model"])
