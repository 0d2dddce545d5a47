"""Pathways training glue: language-homogeneous sampler, plain state dicts, dense/masked/pathways training of
a tiny transducer on a fake Fbank data dir, iterative pruning, per-language export and decoding CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speechkd.asr.tokenizer import build_tokenizer
from speechkd.data.datadir import read_kv, write_kv
from speechkd.models.checkpoint import load_checkpoint
from speechkd.models.transducer import TransducerModel
from speechkd.prune.magnitude import magnitude_masks
from speechkd.prune.masks import apply_masks, prunable_names
from speechkd.prune.pathways import load_pathway_masks
from speechkd.prune.train import prune_transducer
from speechkd.train.transducer import LanguageBatchSampler, count_params, plain_state_dict, train_transducer
from speechkd.utils.errors import ConfigError

TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "ffn_dim": 32, "dropout": 0.0, "subsampling_channels": 4,
        "chunk_size": 4, "left_chunks": 2, "pred_embed_dim": 8, "pred_dim": 16, "joint_dim": 16}


def _cfg(steps=6, **train):
    return {"model": dict(TINY), "data": {"batch_seconds": 3.0},
            "optim": {"lr": 3e-3, "warmup_steps": 0},
            "train": {"max_steps": steps, "log_interval": 2, "progress": False, "tensorboard": False, **train},
            "prune": {"target": 0.5, "rounds": 2, "round_steps": 2}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Fake data dir: 2 languages x 6 utterances of random Fbank (60-100 frames), letters text."""
    import kaldiio

    root = tmp_path_factory.mktemp("pwdata")
    d = root / "train"
    d.mkdir()
    rng = np.random.default_rng(0)
    text, u2l, u2s = {}, {}, {}
    words = {"en": ["ab", "ba", "aab"], "de": ["cd", "dc", "ccd"]}
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for lang in ("de", "en"):
            for i in range(6):
                utt = f"{lang}_s{i % 2}_{i:03d}"
                w(utt, rng.standard_normal((60 + 8 * i, 80)).astype(np.float32))
                text[utt] = " ".join(rng.choice(words[lang], size=2))
                u2l[utt], u2s[utt] = lang, f"{lang}_s{i % 2}"
    write_kv(d / "text", text)
    write_kv(d / "utt2lang", u2l)
    write_kv(d / "utt2spk", u2s)
    tok = build_tokenizer("char", list(text.values()), root / "tok")
    return {"data": d, "tok": root / "tok", "vocab": tok.vocab_size}


# ------------------------------------------------------------------------------------------- sampler
def test_language_batch_sampler_homogeneous_complete_deterministic():
    rng = np.random.default_rng(1)
    lengths = rng.integers(10, 100, size=40).tolist()
    langs = ["en", "de", "it", "es"] * 10
    s = LanguageBatchSampler(lengths, langs, max_frames=250, seed=3)
    b0 = list(s)
    assert sorted(i for b in b0 for i in b) == list(range(40))
    for b in b0:
        assert len({langs[i] for i in b}) == 1
        assert max(lengths[i] for i in b) * len(b) <= 250 or len(b) == 1
    assert list(LanguageBatchSampler(lengths, langs, 250, seed=3)) == b0      # pure function of (seed, epoch)
    s.set_epoch(1)
    b1 = list(s)
    assert b1 != b0 and sorted(i for b in b1 for i in b) == list(range(40))
    s.set_epoch(1)
    s.set_position(3)
    assert list(s) == b1[3:]
    assert len(s) == len(b0)


def test_language_batch_sampler_doc_example():
    s = LanguageBatchSampler([5, 3, 4, 10], ["en", "de", "en", "de"], max_frames=10, shuffle=False)
    assert list(s) == [[1], [3], [2, 0]]


# ------------------------------------------------------------------------------------------- state dicts
def test_plain_state_dict_bakes_masks_and_loads_into_plain_model():
    torch.manual_seed(0)
    m = TransducerModel(7, **TINY)
    masks = magnitude_masks(m, 0.6)
    apply_masks(m, masks)
    sd = plain_state_dict(m, bake=True)
    fresh = TransducerModel(7, **TINY)
    assert set(sd) == set(fresh.state_dict())
    fresh.load_state_dict(sd)
    for n, mk in masks.items():
        w = dict(fresh.named_parameters())[n]
        assert int((w[~mk] != 0).sum()) == 0
    x, xl = torch.randn(2, 40, 80), torch.tensor([40, 33])
    tk, tl = torch.tensor([[1, 2, 3], [4, 5, -1]]), torch.tensor([3, 2])
    m.eval(), fresh.eval()
    assert torch.allclose(m(x, xl, tk, tl), fresh(x, xl, tk, tl), atol=1e-5)
    raw = plain_state_dict(m, bake=False)
    n = prunable_names(m)[0]
    assert int((raw[n] != 0).sum()) > int(masks[n].sum())       # stored weights kept under the mask
    c = count_params(m)
    assert abs(c["sparsity"] - 0.6) < 1e-3 and c["params_nonzero"] < c["params_total"]


# ------------------------------------------------------------------------------------------- training
def test_dense_masked_pathways_training(corpus, tmp_path):
    data, tok = corpus["data"], corpus["tok"]
    dense = train_transducer(_cfg(steps=12), data, data, tmp_path / "dense", token_dir=tok)
    log = (tmp_path / "dense" / "train.log").read_text().splitlines()
    losses = [float(ln.split(" loss ")[1].split()[0]) for ln in log if "[train]" in ln]
    assert losses[-1] < losses[0]
    m0, cfg0 = load_checkpoint(dense)
    assert cfg0["model"]["type"] == "transducer" and (dense / "tokenizer").is_dir() and (dense / "cmvn.npz").exists()

    # pathways: two languages with different masks; weights outside the union never change,
    # weights only in mask_de change (de batches run), every export has zeros outside its mask
    base = {n: p.detach().clone() for n, p in m0.named_parameters()}
    torch.manual_seed(1)
    m_de = magnitude_masks(m0, 0.5)
    m_en = {n: torch.rand(v.shape) > 0.5 for n, v in m_de.items()}
    torch.save({"de": m_de, "en": m_en}, tmp_path / "masks_in.pt")
    out = tmp_path / "pw"
    train_transducer(_cfg(steps=6), data, data, out, init=dense, mode="pathways",
                     pathway_masks={"de": m_de, "en": m_en})
    shared, _ = load_checkpoint(out / "model")
    after = dict(shared.named_parameters())
    changed_any = False
    for n in m_de:
        outside = ~(m_de[n] | m_en[n])
        assert torch.equal(after[n][outside], base[n][outside]), n
        changed_any |= bool((after[n][m_de[n] & ~m_en[n]] != base[n][m_de[n] & ~m_en[n]]).any())
    assert changed_any
    info = json.loads((out / "params.json").read_text())
    for lang, mk in (("de", m_de), ("en", m_en)):
        exp_m, _ = load_checkpoint(out / "export" / lang)
        ps = dict(exp_m.named_parameters())
        for n in mk:
            assert int((ps[n][~mk[n]] != 0).sum()) == 0
        n_masked = sum(v.numel() for v in mk.values())
        total = sum(p.numel() for p in exp_m.parameters())
        assert info[f"params_{lang}"] == total - n_masked + sum(int(v.sum()) for v in mk.values())
    assert (out / "overlap.png").stat().st_size > 1000
    assert set(load_pathway_masks(out / "masks.pt")) == {"de", "en"}
    assert "| IoU | de | en |" in (out / "overlap.md").read_text()
    lr_lines = [ln for ln in (out / "train.log").read_text().splitlines() if "[train]" in ln]
    assert len(lr_lines) == 3 and " lr 0 " not in lr_lines[0]          # scheduler still steps the lr

    with pytest.raises(ConfigError, match="homogeneous"):
        c = _cfg(steps=2)
        c["data"]["homogeneous"] = False
        train_transducer(c, data, None, tmp_path / "bad", init=dense, mode="pathways",
                         pathway_masks={"de": m_de, "en": m_en})


def test_prune_transducer_monolingual(corpus, tmp_path):
    data, tok = corpus["data"], corpus["tok"]
    dense = train_transducer(_cfg(steps=2), data, None, tmp_path / "dense", token_dir=tok)
    model_dir = prune_transducer(_cfg(), data, None, tmp_path / "mono_en", init=dense, languages=["en"])
    masks = load_pathway_masks(tmp_path / "mono_en" / "masks.pt")
    assert list(masks) == ["en"]
    kept = sum(int(v.sum()) for v in masks["en"].values())
    total = sum(v.numel() for v in masks["en"].values())
    assert total - kept == round(0.5 * total)                       # exact global target sparsity
    m, cfg = load_checkpoint(model_dir)
    ps = dict(m.named_parameters())
    for n, mk in masks["en"].items():
        assert int((ps[n][~mk] != 0).sum()) == 0
    assert (tmp_path / "mono_en" / "round2" / "model").is_dir()
    # only English utterances were used by the retraining rounds
    cfg_r = (tmp_path / "mono_en" / "round1" / "config.yaml").read_text()
    assert "- en" in cfg_r and "- de" not in cfg_r
    assert abs(json.loads((tmp_path / "mono_en" / "params.json").read_text())["sparsity"] - 0.5) < 0.01


# ------------------------------------------------------------------------------------------- decoding
def test_decode_cli_routes_languages_and_streams(corpus, tmp_path):
    from speechkd.bin import decode_transducer as dt

    data, tok = corpus["data"], corpus["tok"]
    dense = train_transducer(_cfg(steps=4), data, None, tmp_path / "dense", token_dir=tok)
    m, _ = load_checkpoint(dense)
    _, _, cmvn = dt.load_transducer_dir(dense)
    import kaldiio

    scp = read_kv(Path(data) / "feats.scp")
    x = cmvn(torch.from_numpy(kaldiio.load_mat(next(iter(scp.values()))).copy()))
    full = dt.decode_utterance(m, x, "greedy", piece_frames=0)
    assert dt.decode_utterance(m, x, "greedy", piece_frames=13) == full     # chunked == full (chunk mask)
    beam = dt.decode_utterance(m, x, "beam", beam=3, piece_frames=32)
    assert isinstance(beam, list)

    out = tmp_path / "dec"
    with pytest.raises(SystemExit) as e:
        dt.main(["--ckpt", f"en={dense}", "--ckpt", f"de={dense}", "--data", str(data), "--out", str(out),
                 "--no-progress"])
    assert e.value.code == 0
    assert torch.is_grad_enabled()                                  # the CLI leaves global state alone
    hyps = read_kv(out / "text", allow_empty_value=True)
    assert set(hyps) == set(scp)
    assert set(read_kv(out / "en" / "text", allow_empty_value=True)) == {u for u in scp if u.startswith("en")}
    p = json.loads((out / "params.json").read_text())
    n = sum(int((q != 0).sum()) for q in m.parameters()) / 1000.0
    assert p["params_en"] == p["params_de"] == pytest.approx(n) and p["params_unique"] == pytest.approx(n)
    assert p["sparsity"] == pytest.approx(0.0, abs=1e-6)


def test_params_summary_counts_distinct_models_separately():
    from speechkd.bin.decode_transducer import params_summary

    torch.manual_seed(0)
    a, b = TransducerModel(5, **TINY), TransducerModel(5, **TINY)
    nz = lambda m: sum(int((p != 0).sum()) for p in m.parameters())
    same = sum(int(((p == q) & (p != 0)).sum()) for p, q in zip(a.parameters(), b.parameters()))  # LayerNorm 1s
    assert same > 0
    s = params_summary({"x": a, "y": b})
    assert s["params_unique"] == pytest.approx((nz(a) + nz(b) - same) / 1000.0, abs=1e-9)
    s1 = params_summary({"x": a, "y": a})
    assert s1["params_unique"] == pytest.approx(nz(a) / 1000.0, abs=1e-9)
