"""Distill-L2S: shrinking/interpolation on hand-made inputs (cases beyond test_distill_text_losses),
text-state cache, the fine-tuning hook, speechkd-finetune's l2s section and the text-model CLI."""
from __future__ import annotations

import shutil

import pytest
import torch

from speechkd.distill.l2s import L2SLoss, interpolate_linear, interpolate_nearest, shrink
from speechkd.distill.l2s_train import (L2S_FINETUNE_DEFAULTS, TextStates, finetune_l2s, l2s_enabled,
                                        make_l2s_hook, student_dim)
from speechkd.utils.config import apply_overrides, load_yaml, save_config
from speechkd.utils.errors import ConfigError


def _logp(ids, V=6):
    return torch.nn.functional.one_hot(torch.tensor(ids), V).float().log_softmax(-1)


# ------------------------------------------------------------------------ shrinking by hand
def test_shrink_adjacent_labels_and_edges():
    # labels 2 2 5 | 0 | 5 5 | 0 0 : groups {0,1} {2} {4,5}; leading non-blank, trailing blanks dropped
    h = torch.tensor([[1.0, 10.0], [3.0, 30.0], [7.0, 70.0], [100.0, 0.0], [4.0, 2.0], [6.0, 4.0],
                      [9.0, 9.0], [9.0, 9.0]])[None]
    out, lens = shrink(h, _logp([2, 2, 5, 0, 5, 5, 0, 0])[None])
    assert lens.tolist() == [3]
    assert out[0].tolist() == [[2.0, 20.0], [7.0, 70.0], [5.0, 3.0]]


def test_shrink_gradient_is_one_over_group_size():
    h = torch.zeros(1, 5, 1, requires_grad=True)
    out, _ = shrink(h, _logp([1, 1, 1, 0, 2])[None])
    out.sum().backward()
    assert h.grad[0, :, 0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0, 1.0])


def test_shrink_uses_argmax_of_logits():
    logits = torch.tensor([[[0.1, 2.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 4.0]]])   # argmax 1 1 2
    out = shrink(torch.tensor([[[2.0], [4.0], [8.0]]]), logits, return_list=True)
    assert out[0][:, 0].tolist() == [3.0, 8.0]


# -------------------------------------------------------------------- interpolation by hand
def test_nearest_identity_repeat_and_downsample():
    x = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]])
    same = interpolate_nearest(x, torch.tensor([5]), torch.tensor([5]))
    assert same[0, :, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    down = interpolate_nearest(x, torch.tensor([5]), torch.tensor([2]))      # floor(j*5/2) = 0, 2
    assert down[0, :, 0].tolist() == [1.0, 3.0]
    up = interpolate_nearest(x, torch.tensor([1]), torch.tensor([3]))        # one text state → 3 copies
    assert up[0, :, 0].tolist() == [1.0, 1.0, 1.0]
    up2 = interpolate_nearest(x, torch.tensor([2]), torch.tensor([5]))       # floor(j*2/5) = 0 0 0 1 1
    assert up2[0, :, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0]
    # agrees with torch's own nearest mode
    ref = torch.nn.functional.interpolate(x[:, :4].transpose(1, 2), size=7, mode="nearest")[0, 0]
    assert interpolate_nearest(x, torch.tensor([4]), torch.tensor([7]))[0, :, 0].tolist() == ref.tolist()


def test_linear_by_hand_and_zero_target():
    x = torch.tensor([[[0.0, 10.0], [3.0, 40.0]]])
    lin = interpolate_linear(x, torch.tensor([2]), torch.tensor([4]))        # end points kept, thirds between
    assert lin[0, :, 0].tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert lin[0, :, 1].tolist() == pytest.approx([10.0, 20.0, 30.0, 40.0])
    one = interpolate_linear(x, torch.tensor([1]), torch.tensor([3]))
    assert one[0, :, 1].tolist() == [10.0, 10.0, 10.0]
    assert interpolate_nearest(x, torch.tensor([2]), torch.tensor([0])).shape == (1, 0, 2)


# ------------------------------------------------------------------------ text-state cache
class FakeEncoder:
    """Text 'model': one state per word, value = word length (and a counter of encode calls)."""
    dim = 2

    def __init__(self):
        self.calls = 0

    def encode(self, texts, layer=None, batch_size=32, max_length=512):
        self.calls += 1
        return [torch.tensor([[float(len(w)), float(layer or 0)] for w in t.split()]) for t in texts]


def test_text_states_precompute_cache_and_on_the_fly(tmp_path):
    texts = {"u1": "ab cde", "u2": "x", "u3": "four word a here"}
    enc = FakeEncoder()
    cache = tmp_path / "c.pt"
    ts = TextStates(enc, texts, layer=3, cache_path=cache, cache_key="k1", batch_size=2)
    assert enc.calls == 2 and cache.exists()
    states, lens = ts.get(["u2", "u1"])
    assert lens.tolist() == [1, 2] and states.shape == (2, 2, 2)
    assert states[0].tolist() == [[1.0, 3.0], [0.0, 0.0]] and states[1, :, 0].tolist() == [2.0, 3.0]
    enc2 = FakeEncoder()
    TextStates(enc2, texts, layer=3, cache_path=cache, cache_key="k1")
    assert enc2.calls == 0                                   # loaded from the cache
    TextStates(enc2, texts, layer=3, cache_path=cache, cache_key="k2")
    assert enc2.calls == 1                                   # other key → recomputed
    fly = TextStates(FakeEncoder(), texts, precompute=False)
    s2, l2 = fly.get(["u3"])
    assert l2.tolist() == [4] and s2[0, :, 0].tolist() == [4.0, 4.0, 1.0, 4.0]
    with pytest.raises(ConfigError, match="u9"):
        fly.get(["u9"])


def test_text_states_target_norm_standardizes_collinear_states():
    from speechkd.distill.pad import mean_pairwise_cosine

    class Collinear(FakeEncoder):   # every token state ~ the same direction: a constant output fits them
        def encode(self, texts, layer=-1, batch_size=32, max_length=512):
            self.calls += 1
            g = torch.Generator().manual_seed(len(texts))
            return [torch.tensor([10.0, 10.0]) + 0.01 * torch.randn(len(t.split()), 2, generator=g) for t in texts]

    texts = {"u1": "ab cde fg", "u2": "x y", "u3": "four word a here"}
    raw = TextStates(Collinear(), texts)
    std = TextStates(Collinear(), texts, target_norm="standardize")
    assert raw.mean_cosine["raw"] > 0.999 and std.mean_cosine["raw"] == pytest.approx(raw.mean_cosine["raw"])
    assert abs(std.mean_cosine["standardize"]) < 0.5
    rows = torch.cat(list(std.states.values()))
    assert torch.allclose(rows.mean(0), torch.zeros(2), atol=1e-3)        # fp32: 10 +- 0.01 around its mean
    assert torch.allclose(rows.std(0, unbiased=False), torch.ones(2), atol=1e-3)
    s, lens = std.get(["u2"])
    assert torch.equal(s[0, :2], std.states["u2"]) and lens.tolist() == [2]
    assert mean_pairwise_cosine([torch.tensor([[1.0, 0.0], [0.0, 1.0]])]) == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="target_norm"):
        TextStates(Collinear(), texts, target_norm="whiten")
    with pytest.raises(ConfigError, match="precompute"):
        TextStates(Collinear(), texts, precompute=False, target_norm="center")


def test_hook_adds_weighted_l2s_loss():
    torch.manual_seed(0)
    ts = TextStates(FakeEncoder(), {"a": "hello to you", "b": "hi"})
    loss_fn = L2SLoss(4, 2)

    class Out:
        last_hidden_state = torch.randn(2, 6, 4)

    class Task:
        extra = loss_fn

    lp = torch.stack([_logp([0, 1, 1, 0, 2, 3]), _logp([4, 0, 0, 0, 0, 0])])
    lens = torch.tensor([6, 3])
    term, stats = make_l2s_hook(0.25, loss_fn, ts)(Task(), {"utts": ["a", "b"]}, (lp, lens, Out()))
    text, tl = ts.get(["a", "b"])
    ref = loss_fn(Out.last_hidden_state, lp, lens, text, tl)
    assert term.item() == pytest.approx(0.25 * ref.item()) and stats["l2s"] == pytest.approx(ref.item())


def test_student_dim_and_enabled(tmp_path):
    save_config({"model": {"type": "ssl", "d_model": 48}}, tmp_path / "ssl" / "config.yaml")
    save_config({"model": {"type": "ctc", "encoder": {"d_model": 40}}}, tmp_path / "ctc" / "config.yaml")
    assert student_dim(L2S_FINETUNE_DEFAULTS, tmp_path / "ssl") == 48
    assert student_dim(L2S_FINETUNE_DEFAULTS, tmp_path / "ctc") == 40
    assert student_dim(apply_overrides(L2S_FINETUNE_DEFAULTS, ["model.encoder.d_model=24"])) == 24
    assert not l2s_enabled(L2S_FINETUNE_DEFAULTS) and not l2s_enabled({})
    assert l2s_enabled(apply_overrides(L2S_FINETUNE_DEFAULTS, ["l2s.weight=0.5"]))
    with pytest.raises(ConfigError, match="text_model"):
        finetune_l2s(apply_overrides(L2S_FINETUNE_DEFAULTS, ["l2s.weight=0.5"]), tmp_path, None,
                     tmp_path / "x", token_dir=tmp_path)


# ------------------------------------------------------------------ end to end (tiny model)
TINY = ["--model.encoder.frontend", "fbank", "--model.encoder.d_model", "32", "--model.encoder.n_layers", "1",
        "--model.encoder.n_heads", "2", "--model.encoder.ffn_dim", "64", "--model.encoder.pos_conv_kernel", "8",
        "--model.encoder.pos_conv_groups", "4", "--train.max_steps", "8", "--train.progress", "false",
        "--train.tensorboard", "false", "--train.log_interval", "2", "--data.batch_seconds", "3",
        "--optim.warmup_steps", "0", "--optim.lr", "3e-3"]


def test_text_model_cli_and_finetune_cli_with_l2s(tiny_datadir, tmp_path):
    from speechkd.asr.tokenizer import build_tokenizer
    from speechkd.bin.finetune import main as finetune_main
    from speechkd.bin.train_text_model import main as text_main
    from speechkd.data.datadir import DataDir
    from speechkd.features.extract import extract_features
    from speechkd.models.checkpoint import load_checkpoint
    from speechkd.models.text import TextEncoder

    scp = extract_features(tiny_datadir, tmp_path / "fbank", kind="fbank", progress=False)
    shutil.copyfile(scp, tiny_datadir / "feats.scp")
    tok_dir = tmp_path / "tok"
    build_tokenizer("char", DataDir(tiny_datadir).read("text").values(), tok_dir)

    lm = tmp_path / "text_lm"
    with pytest.raises(SystemExit) as e:
        text_main(["--text", str(tiny_datadir / "text"), "--out", str(lm), "--no-progress",
                   "--text_lm.steps", "3", "--text_lm.d_model", "16", "--text_lm.ffn_dim", "32",
                   "--text_lm.vocab_size", "30", "--text_lm.batch_size", "4"])
    assert e.value.code == 0
    enc = TextEncoder(lm)
    assert enc.dim == 16 and len(load_yaml(lm / "train_config.yaml")["text_lm"]) > 5

    # plain: no l2s section in the saved config
    with pytest.raises(SystemExit) as e:
        finetune_main(["--train-data", str(tiny_datadir), "--token-dir", str(tok_dir),
                       "--exp", str(tmp_path / "plain")] + TINY)
    assert e.value.code == 0
    assert "l2s" not in load_yaml(tmp_path / "plain" / "config.yaml")
    assert "l2s" not in (tmp_path / "plain" / "train.log").read_text()

    # L2S: the term is logged, the text states cached, the projection saved in train_state.pt
    exp = tmp_path / "l2s"
    with pytest.raises(SystemExit) as e:
        finetune_main(["--train-data", str(tiny_datadir), "--token-dir", str(tok_dir), "--exp", str(exp),
                       "--l2s.weight", "0.5", "--l2s.text_model", str(lm), "--l2s.layer", "1",
                       "--l2s.interpolation", "linear"] + TINY)
    assert e.value.code == 0
    cfg = load_yaml(exp / "config.yaml")
    assert cfg["l2s"]["weight"] == 0.5 and cfg["l2s"]["interpolation"] == "linear"
    assert "l2s" in (exp / "train.log").read_text()
    blob = torch.load(exp / "l2s_text_states.pt", weights_only=True)
    assert set(blob["states"]) == set(DataDir(tiny_datadir).read("text"))
    assert all(v.shape[1] == 16 for v in blob["states"].values())
    st = torch.load(exp / "checkpoints" / "step_8" / "train_state.pt", weights_only=False)
    assert st["full_model"]["extra.proj.weight"].shape == (16, 32)
    model, _ = load_checkpoint(exp / "model")                     # a plain CTC checkpoint
    assert model.vocab_size > 2
