"""SSL encoder components: masking, front-ends, layer drop, attention masks, heads, checkpoints."""
from __future__ import annotations

import math

import pytest
import torch

from speechkd.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from speechkd.models.components import (FbankFrontend, SelfAttention, TransformerEncoder, build_attention_mask,
                                        lengths_to_padding_mask)
from speechkd.models.masking import compute_mask_indices
from speechkd.models.ctc import CTCModel
from speechkd.models.heads import IntentHead, masked_mean
from speechkd.models.ssl import SSLConfig, SSLModel, hubert_base, mini_ssl, wav2vec2_base, xlsr_large
from speechkd.utils.errors import ConfigError


def _small(**kw):
    base = dict(n_layers=2, d_model=32, n_heads=4, ffn_dim=64, pos_conv_kernel=8, pos_conv_groups=4,
                conv_layers=[[16, 10, 5], [16, 3, 2], [16, 2, 2]], dropout=0.0, attention_dropout=0.0,
                proj_dropout=0.0, layerdrop=0.0)
    base.update(kw)
    return mini_ssl(**base)


# ------------------------------------------------------------------------------------------ masking
def test_mask_length_one_gives_requested_proportion():
    g = torch.Generator().manual_seed(0)
    m = compute_mask_indices((4, 200), 0.3, 1, min_masks=0, generator=g)
    # int(0.3 * 200 / 1 + u) with u in [0, 1) is 60 for every utterance (no overlap at span length 1)
    assert m.sum(1).tolist() == [60, 60, 60, 60]


def test_span_mask_proportion_and_spans():
    g = torch.Generator().manual_seed(0)
    t, p, span = 1000, 0.5, 10
    lengths = torch.tensor([1000] * 7 + [600])
    m = compute_mask_indices((8, t), p, span, lengths=lengths, min_masks=0, generator=g)
    assert not m[7, 600:].any()                       # padding never masked
    # 50 starts out of 991 positions, each frame covered w.p. ~ 1 - (1 - 50/991)^10 = 0.404
    frac = m[:7].float().mean().item()
    expect = 1 - (1 - (p * t / span) / (t - span + 1)) ** span
    assert abs(frac - expect) < 0.04, (frac, expect)
    for row in m[:7]:                                  # every masked run is at least one whole span
        runs, cur = [], 0
        for v in row.tolist() + [False]:
            if v:
                cur += 1
            elif cur:
                runs.append(cur)
                cur = 0
        assert min(runs) >= span
    again = compute_mask_indices((8, t), p, span, lengths=lengths, min_masks=0,
                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, again)


def test_min_masks_and_short_input():
    m = compute_mask_indices((2, 30), 0.01, 10, min_masks=2, generator=torch.Generator().manual_seed(1))
    assert (m.sum(1) >= 10).all()
    assert not compute_mask_indices((1, 5), 0.9, 10).any()  # shorter than one span: nothing masked


def test_model_masking_uses_embedding_and_channel_zeroing():
    model = _small(mask_time_prob=0.5, mask_time_length=2, mask_channel_prob=0.5, mask_channel_length=4).train()
    x = torch.randn(2, 30, 32)
    y, tm = model.masking(x, torch.tensor([30, 20]), torch.Generator().manual_seed(0))
    emb = model.masking.masked_spec_embed
    assert tm.any() and not tm[1, 20:].any()
    zeroed = (y == 0).all(dim=1)                       # (B, D) channels zeroed over all frames
    assert zeroed.any()
    keep = ~zeroed[0]
    assert torch.allclose(y[0][tm[0]][:, keep], emb[keep].expand(int(tm[0].sum()), -1))
    assert torch.equal(y[0][~tm[0]][:, keep], x[0][~tm[0]][:, keep])
    out = model(torch.randn(2, 4000), torch.tensor([4000, 3000]), mask=True, generator=torch.Generator().manual_seed(0))
    assert out.mask_indices is not None and out.mask_indices.shape == out.padding_mask.shape
    assert model(torch.randn(2, 4000), mask=False).mask_indices is None


# ----------------------------------------------------------------------------------------- front-ends
def test_fbank_frontend_lengths_and_padding_invariance():
    fe = FbankFrontend(80, 16)
    for t in [1, 2, 3, 99, 100, 101]:
        y, yl = fe(torch.randn(1, t, 80), torch.tensor([t]))
        assert y.shape[1] == yl.item() == math.ceil(t / 2)
    model = _small(frontend="fbank").eval()
    x = torch.randn(2, 101, 80)
    lengths = torch.tensor([101, 67])
    with torch.no_grad():
        batch = model(x, lengths)
        alone = model(x[1:, :67])
    assert batch.lengths.tolist() == [51, 34] and alone.last_hidden_state.shape[1] == 34
    for a, b in zip(batch.hidden_states, alone.hidden_states):
        assert (a[1, :34] - b[0]).abs().max().item() < 1e-5


def test_cnn_lengths_and_padding_invariance_layer_norm_cnn():
    model = _small(conv_norm="layer_norm", layer_norm_first=True).eval()
    # 3 conv layers (10,5), (3,2), (2,2): L -> (L-10)//5+1 -> (.-3)//2+1 -> (.-2)//2+1
    for s in [400, 1000, 1234]:
        a = (s - 10) // 5 + 1
        a = (a - 3) // 2 + 1
        a = (a - 2) // 2 + 1
        assert model.output_lengths(torch.tensor([s])).item() == a
    x = torch.randn(2, 4000)
    with torch.no_grad():
        batch = model(x, torch.tensor([4000, 2700]))
        alone = model(x[1:, :2700])
    n = alone.last_hidden_state.shape[1]
    assert batch.lengths[1].item() == n and batch.padding_mask[1, n:].all() and not batch.padding_mask[1, :n].any()
    assert (batch.last_hidden_state[1, :n] - alone.last_hidden_state[0]).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------------ encoder
def test_layerdrop_only_in_training():
    enc = TransformerEncoder(16, 3, 2, 32, dropout=0.0, attention_dropout=0.0, pos_conv_kernel=4,
                             pos_conv_groups=2, layerdrop=1.0)
    x = torch.randn(2, 7, 16)
    hs = enc.train()(x)
    assert len(hs) == 4 and all(torch.equal(h, hs[0]) for h in hs)   # every layer dropped
    hs = enc.eval()(x)
    assert not torch.allclose(hs[1], hs[0]) and not torch.allclose(hs[3], hs[2])
    enc.layerdrop = 0.5
    a = enc.train()(x, generator=torch.Generator().manual_seed(3))
    b = enc.train()(x, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_attention_matches_manual_with_masks():
    torch.manual_seed(0)
    att = SelfAttention(16, 4).eval()
    x = torch.randn(2, 6, 16)
    pad = lengths_to_padding_mask(torch.tensor([6, 4]), 6)
    chunk = (torch.arange(6)[None, :] // 2) <= (torch.arange(6)[:, None] // 2)   # chunk size 2, no look-ahead
    q = att.q_proj(x).view(2, 6, 4, 4).transpose(1, 2)
    k = att.k_proj(x).view(2, 6, 4, 4).transpose(1, 2)
    v = att.v_proj(x).view(2, 6, 4, 4).transpose(1, 2)
    for extra in (chunk, None):
        y = att(x, build_attention_mask(pad, extra, 2, 6))
        allowed = ~pad[:, None, None, :] if extra is None else extra[None, None] & ~pad[:, None, None, :]
        scores = (q @ k.transpose(-1, -2) / 2.0).masked_fill(~allowed, float("-inf"))
        ref = att.out_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 16))
        assert (y - ref).abs().max().item() < 1e-5
    assert build_attention_mask(None, None, 2, 6) is None


def test_chunk_mask_streaming_no_future_leak_no_nan():
    enc = TransformerEncoder(16, 2, 2, 32, dropout=0.0, attention_dropout=0.0, pos_conv_kernel=0).eval()
    t, c = 8, 4
    chunk = (torch.arange(t)[None, :] // c) <= (torch.arange(t)[:, None] // c)
    x = torch.randn(2, t, 16)
    x2 = x.clone()
    x2[:, c:] = torch.randn(2, t - c, 16)                  # change the second chunk only
    pad = lengths_to_padding_mask(torch.tensor([8, 3]), t)  # utt 2: frames 4.. padded: rows see nothing
    a = enc(x, pad, chunk)[-1]
    b = enc(x2, pad, chunk)[-1]
    assert torch.isfinite(a).all()
    assert torch.allclose(a[:, :c], b[:, :c], atol=1e-6)
    assert not torch.allclose(a[0, c:], b[0, c:])


# -------------------------------------------------------------------------------------- model configs
def test_factories_match_hf_parameter_counts():
    transformers = pytest.importorskip("transformers")
    from speechkd.models.convert.export_huggingface import ssl_config_to_hf
    with torch.device("meta"):
        for factory, cls, cfg_cls in [(wav2vec2_base, "Wav2Vec2Model", "Wav2Vec2Config"),
                                      (xlsr_large, "Wav2Vec2Model", "Wav2Vec2Config"),
                                      (hubert_base, "HubertModel", "HubertConfig")]:
            ours = factory()
            hf = getattr(transformers, cls)(getattr(transformers, cfg_cls)(**ssl_config_to_hf(ours.cfg)))
            n_head = sum(p.numel() for p in ours.head.parameters()) if ours.head is not None else 0
            n_ours = sum(p.numel() for p in ours.parameters()) - n_head
            assert n_ours == sum(p.numel() for p in hf.parameters()), factory.__name__


def test_mini_ssl_is_thin_and_config_round_trip():
    m = mini_ssl()
    assert max(c[0] for c in m.cfg.conv_layers) <= 64
    d = m.cfg.to_dict()
    assert SSLConfig.from_dict(d) == m.cfg
    assert SSLConfig.from_dict({"type": "ssl", **d}) == m.cfg
    with pytest.raises(ConfigError, match="d_modle"):
        SSLConfig.from_dict({"d_modle": 3})
    out = m.eval()(torch.randn(1, 16000))
    assert len(out.hidden_states) == m.cfg.n_layers + 1 and out.last_hidden_state is out.hidden_states[-1]
    assert out.last_hidden_state.shape == (1, 49, 192) and out.frontend_out.shape == (1, 49, 192)


# -------------------------------------------------------------------------------------------- heads
def test_heads():
    x = torch.randn(2, 5, 8)
    pad = lengths_to_padding_mask(torch.tensor([5, 2]), 5)
    pooled = masked_mean(x, pad)
    assert torch.allclose(pooled[1], x[1, :2].mean(0)) and torch.allclose(pooled[0], x[0].mean(0))
    head = IntentHead(8, 3, hidden_dim=4).eval()
    assert head(x, pad).shape == (2, 3)
    model = CTCModel(_small().cfg, vocab_size=7, freeze_frontend=True).train()
    lp, lens, out = model(torch.randn(2, 4000), torch.tensor([4000, 2000]))
    assert lp.shape == (2, lens.max().item(), 7)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, lp.size(1)), atol=1e-5)
    assert out.mask_indices is not None                      # training: SpecAugment-style masking
    assert not model.encoder.feature_extractor.training
    assert not any(p.requires_grad for p in model.encoder.feature_extractor.parameters())
    lp.sum().backward()


# --------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_mismatch(tmp_path):
    model = CTCModel(_small().cfg, vocab_size=7).eval()
    save_checkpoint(tmp_path / "ck", model, {"optim": {"lr": 1e-3}}, train_state={"step": 5})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.yaml", "model.pt", "train_state.pt"]
    loaded, config = load_checkpoint(tmp_path / "ck")
    assert config["optim"]["lr"] == 1e-3 and config["model"]["type"] == "ctc"
    x = torch.randn(1, 3000)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])
    assert isinstance(build_model({"type": "ssl", **_small().cfg.to_dict()}), SSLModel)
    # a config that no longer matches the weights: one-line error naming the dir and the first bad key
    other = _small(n_layers=3)
    save_checkpoint(tmp_path / "bad", other)
    torch.save(_small().state_dict(), tmp_path / "bad" / "model.pt")
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "bad")
    msg = str(e.value)
    assert "bad" in msg and "missing key 'encoder.layers.2." in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="unknown model type 'nope'"):
        build_model({"type": "nope"})
    with pytest.raises(ConfigError, match="no config.yaml"):
        load_checkpoint(tmp_path)


def test_registry_providers_import_and_build_every_type():
    import importlib
    import importlib.util

    from speechkd.models import checkpoint as ck
    from speechkd.models.transducer import TransducerConfig

    for mod in ck._PROVIDERS:
        assert importlib.util.find_spec(mod) is not None, mod
        importlib.import_module(mod)
    ck._import_providers()
    assert {cls.__module__ for cls in ck.MODEL_REGISTRY.values()} <= set(ck._PROVIDERS)
    enc = mini_ssl().cfg.to_dict()
    # each registered type from its default config (plus the sizes it requires)
    configs = {
        "ssl": {"type": "ssl", **SSLConfig.from_dict(enc).to_dict()},
        "ctc": {"type": "ctc", "encoder": enc, "vocab_size": 7},
        "transducer": {"type": "transducer", **TransducerConfig(vocab_size=7).__dict__},
        "intent": {"type": "intent", "encoder": enc, "intents": ["a", "b", "c"]},
    }
    assert set(ck.MODEL_REGISTRY) == set(configs), "a registered type has no build check here"
    for name, cfg in configs.items():
        model = build_model(cfg)
        assert type(model) is ck.MODEL_REGISTRY[name] and sum(p.numel() for p in model.parameters()) > 0
        if hasattr(model, "model_config"):
            assert model.model_config()["type"] == name
            assert type(build_model(model.model_config())) is type(model)


def test_save_checkpoint_is_one_atomic_dir_and_keeps_extra_files(tmp_path, monkeypatch):
    """save_checkpoint and the trainer share one writer: the dir is replaced whole (a failed write leaves the
    previous checkpoint intact, no temp dirs), and files a caller put there (codebook, CMVN) stay."""
    import speechkd.models.checkpoint as ck

    model = SSLModel(SSLConfig(frontend="fbank", d_model=32, n_layers=1, n_heads=2, ffn_dim=64,
                               pos_conv_kernel=8, pos_conv_groups=4))
    d = save_checkpoint(tmp_path / "m", model)
    (d / "kmeans.pt").write_bytes(b"codebook")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(d, model)
    assert (d / "kmeans.pt").read_bytes() == b"codebook"
    loaded, _ = load_checkpoint(d)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    before = (d / "model.pt").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(ck, "save_config", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(d, model)
    assert (d / "model.pt").read_bytes() == before and (d / "kmeans.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
