"""Hugging Face import/export: every hidden state must match transformers' reference implementation."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from speechkd.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from speechkd.models.convert.export_huggingface import export_huggingface  # noqa: E402
from speechkd.models.convert.import_huggingface import import_huggingface  # noqa: E402
from speechkd.models.ctc import CTCModel  # noqa: E402
from speechkd.models.ssl import SSLModel, mini_ssl  # noqa: E402

TOL = 1e-4


def _tiny(stable: bool, **kw):
    d = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
             conv_dim=(16, 16, 24), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2),
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=stable,
             feat_extract_norm="layer" if stable else "group", conv_bias=stable, layerdrop=0.0,
             mask_time_prob=0.05, vocab_size=11)
    d.update(kw)
    return d


def _perturb(model):
    """Random init leaves LayerNorms at 1/0 and biases at 0: perturb everything so no key is trivial."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4000, generator=g)
    lengths = torch.tensor([4000, 3100, 2500])
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 0.0
    att = (torch.arange(4000)[None] < lengths[:, None]).long()
    return x, lengths, att


def _compare(ours, ref, x, lengths=None, att=None, stable=False):
    with torch.no_grad():
        o = ours(x, lengths)
        r = ref(x, attention_mask=att, output_hidden_states=True)
    hs = list(r.hidden_states)
    if stable:  # transformers 5 records the last layer's output before the final LayerNorm
        hs[-1] = r.last_hidden_state
    assert len(o.hidden_states) == len(hs)
    valid = ~o.padding_mask
    for i, (a, b) in enumerate(zip(o.hidden_states, hs)):
        assert a.shape == b.shape, i
        diff = (a - b).abs()[valid].max().item()
        assert diff <= TOL, f"hidden state {i}: max abs diff {diff}"
    assert (o.last_hidden_state - r.last_hidden_state).abs()[valid].max().item() <= TOL
    return o


@pytest.mark.parametrize("stable,model_cls,extra", [(False, "Wav2Vec2Model", {}), (True, "Wav2Vec2Model", {}),
                                                    (False, "HubertModel", {}),
                                                    (True, "HubertModel", {"feat_proj_layer_norm": False})])
def test_import_matches_hf(tmp_path, stable, model_cls, extra):
    torch.manual_seed(0)
    cls = getattr(transformers, model_cls)
    cfg_cls = transformers.HubertConfig if model_cls == "HubertModel" else transformers.Wav2Vec2Config
    ref = _perturb(cls(cfg_cls(**_tiny(stable, **extra)))).eval()
    ref.save_pretrained(tmp_path / "hf")
    ours = import_huggingface(tmp_path / "hf")
    assert isinstance(ours, SSLModel)
    assert ours.cfg.proj_layer_norm == extra.get("feat_proj_layer_norm", True)
    assert ours.cfg.layer_norm_first == stable and ours.cfg.arch == ("hubert" if "Hubert" in model_cls else "wav2vec2")
    x, lengths, att = _inputs()
    _compare(ours, ref, x[:1, :3500], stable=stable)          # unpadded, single utterance
    if stable:  # layer-norm CNN: HF supports attention_mask
        o = _compare(ours, ref, x, lengths, att, stable=True)
        assert o.lengths.tolist() == ref._get_feat_extract_output_lengths(lengths).tolist()
    else:       # group-norm CNN: padding changes the statistics in both; the encoder still must agree
        _compare(ours, ref, x, lengths, att)


def test_import_ctc_and_old_weight_norm_keys(tmp_path):
    from safetensors.torch import load_file, save_file
    torch.manual_seed(0)
    ref = _perturb(transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**_tiny(True)))).eval()
    ref.save_pretrained(tmp_path / "hf")
    # rewrite the positional conv's weight norm in the old weight_g / weight_v key style
    f = tmp_path / "hf" / "model.safetensors"
    state = load_file(str(f))
    old = {}
    for k, v in state.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        old[k] = v
    assert any(k.endswith("weight_g") for k in old)
    save_file(old, str(f), metadata={"format": "pt"})
    ours = import_huggingface(tmp_path / "hf")
    assert isinstance(ours, CTCModel) and ours.vocab_size == 11
    x, lengths, att = _inputs()
    with torch.no_grad():
        lp, out_len, _ = ours(x, lengths)
        logits = ref(x, attention_mask=att).logits
    valid = torch.arange(lp.size(1))[None] < out_len[:, None]
    ref_lp = torch.log_softmax(logits, -1)
    assert (lp - ref_lp).abs()[valid].max().item() <= TOL


@pytest.mark.parametrize("fmt", ["safetensors", "bin", "legacy_bin"])
def test_import_assigns_the_files_tensors(tmp_path, monkeypatch, fmt):
    """The model is built on the meta device and the file's (memory-mapped) tensors become its parameters:
    no second copy; .bin files are mapped too, legacy non-zip .bin files (not mappable) read whole."""
    import speechkd.models.convert.import_huggingface as ih

    torch.manual_seed(0)
    ref = _perturb(transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**_tiny(True)))).eval()
    ref.save_pretrained(tmp_path / "hf")
    if fmt != "safetensors":   # the same tensors as pytorch_model.bin (zip format, or pre-1.6 legacy)
        from safetensors.torch import load_file

        st = tmp_path / "hf" / "model.safetensors"
        torch.save(load_file(str(st)), tmp_path / "hf" / "pytorch_model.bin",
                   _use_new_zipfile_serialization=(fmt == "bin"))
        st.unlink()
    seen = {}
    real = ih.read_hf_state_dict
    monkeypatch.setattr(ih, "read_hf_state_dict", lambda p: seen.setdefault("state", real(p)))
    ours = import_huggingface(tmp_path / "hf")
    state = seen["state"]
    assert isinstance(ours, CTCModel) and not any(t.is_meta for t in ours.state_dict().values())
    ptrs = {t.data_ptr() for t in state.values()}
    own = dict(ours.named_parameters())
    shared = [n for n, p in own.items() if p.data_ptr() in ptrs]
    assert len(shared) >= len(own) - 1, sorted(set(own) - set(shared))   # all but masked_spec_embed (absent)
    assert own["head.proj.weight"].data_ptr() == state["lm_head.weight"].data_ptr()
    x, lengths, att = _inputs()
    with torch.no_grad():
        lp, out_len, _ = ours(x, lengths)
        ref_lp = torch.log_softmax(ref(x, attention_mask=att).logits, -1)
    valid = torch.arange(lp.size(1))[None] < out_len[:, None]
    assert (lp - ref_lp).abs()[valid].max().item() <= TOL


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert"])
def test_export_round_trip(tmp_path, arch):
    torch.manual_seed(0)
    ours = _perturb(mini_ssl(n_layers=2, d_model=32, n_heads=4, ffn_dim=64, pos_conv_kernel=8,
                             pos_conv_groups=4, arch=arch, conv_layers=[[16, 10, 5], [16, 3, 2], [16, 2, 2]],
                             layer_norm_first=arch == "hubert", conv_norm="layer_norm" if arch == "hubert" else "group_norm")).eval()
    save_checkpoint(tmp_path / "ckpt", ours)
    export_huggingface(tmp_path / "ckpt", tmp_path / "hf")
    cls = transformers.HubertModel if arch == "hubert" else transformers.Wav2Vec2Model
    ref = cls.from_pretrained(tmp_path / "hf").eval()
    x, lengths, att = _inputs()
    _compare(ours, ref, x[:1], stable=arch == "hubert")
    back = import_huggingface(tmp_path / "hf")
    with torch.no_grad():
        a, b = ours(x, lengths), back(x, lengths)
    for ha, hb in zip(a.hidden_states, b.hidden_states):
        assert torch.allclose(ha, hb, atol=1e-6)


def test_export_rejects_fbank(tmp_path):
    from speechkd.utils.errors import ConfigError
    save_checkpoint(tmp_path / "ckpt", mini_ssl(frontend="fbank", n_layers=1, d_model=32, n_heads=2, ffn_dim=32))
    with pytest.raises(ConfigError, match="fbank"):
        export_huggingface(tmp_path / "ckpt", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_import_cli(tmp_path):
    from speechkd.bin.import_checkpoint import main as import_main
    ref = transformers.HubertModel(transformers.HubertConfig(**_tiny(False))).eval()
    ref.save_pretrained(tmp_path / "hf")
    with pytest.raises(SystemExit) as e:
        import_main(["--src", str(tmp_path / "hf"), "--out", str(tmp_path / "teacher")])
    assert e.value.code == 0
    model, config = load_checkpoint(tmp_path / "teacher")
    assert config["model"]["type"] == "ssl" and config["model"]["arch"] == "hubert"
    x = torch.randn(1, 3000)
    with torch.no_grad():
        assert (model(x).last_hidden_state - ref(x).last_hidden_state).abs().max().item() <= TOL


def test_export_ctc_and_cli(tmp_path):
    from speechkd.bin.export import main as export_main
    torch.manual_seed(0)
    enc = mini_ssl(n_layers=1, d_model=32, n_heads=4, ffn_dim=64, pos_conv_kernel=8, pos_conv_groups=4,
                   conv_layers=[[16, 10, 5], [16, 3, 2]], conv_norm="layer_norm", conv_bias=True)
    ours = _perturb(CTCModel(enc.cfg, vocab_size=6)).eval()
    save_checkpoint(tmp_path / "ckpt", ours)
    with pytest.raises(SystemExit) as e:
        export_main(["--ckpt", str(tmp_path / "ckpt"), "--out", str(tmp_path / "hf")])
    assert e.value.code == 0
    ref = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "hf").eval()
    x = torch.randn(2, 3000)
    with torch.no_grad():
        lp, _, _ = ours(x)
        assert (lp - torch.log_softmax(ref(x).logits, -1)).abs().max().item() <= TOL
    back = import_huggingface(tmp_path / "hf")
    assert isinstance(back, CTCModel) and back.vocab_size == 6
    with pytest.raises(SystemExit) as e:   # not a checkpoint: one-line error, exit status 1
        export_main(["--ckpt", str(tmp_path / "nothing"), "--out", str(tmp_path / "hf2")])
    assert e.value.code == 1
