"""fairseq import: state dicts written in fairseq's key layout (derived from tiny HF models by the
inverse mapping, written out here by hand), saved with torch.save, imported, compared to transformers."""
from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from speechkd.models.convert.import_fairseq import import_fairseq, parse_conv_layers  # noqa: E402
from speechkd.models.ctc import CTCModel  # noqa: E402
from speechkd.utils.errors import ConfigError  # noqa: E402

TOL = 1e-4
CONV = "[(16, 10, 5)] + [(16, 3, 2)] + [(24, 2, 2)]"


def _hf_cfg(stable: bool, hubert: bool = False):
    cls = transformers.HubertConfig if hubert else transformers.Wav2Vec2Config
    return cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
               conv_dim=(16, 16, 24), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2),
               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=stable,
               feat_extract_norm="layer" if stable else "group", conv_bias=stable, layerdrop=0.0,
               mask_time_prob=0.05)


def _perturbed(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def hf_to_fairseq(hf_state: dict, stable: bool) -> dict:
    """The inverse mapping: HF Wav2Vec2Model/HubertModel keys -> fairseq keys."""
    out = {}
    for k, v in hf_state.items():
        m = re.match(r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)", k)
        if m:
            i, part, wb = m.groups()
            if part == "conv":
                out[f"feature_extractor.conv_layers.{i}.0.{wb}"] = v
            elif stable:  # Sequential(conv, dropout, Sequential(TransposeLast, LayerNorm, TransposeLast), GELU)
                out[f"feature_extractor.conv_layers.{i}.2.1.{wb}"] = v
            else:         # Sequential(conv, dropout, GroupNorm, GELU)
                out[f"feature_extractor.conv_layers.{i}.2.{wb}"] = v
            continue
        k2 = (k.replace("feature_projection.layer_norm", "layer_norm")
               .replace("feature_projection.projection", "post_extract_proj")
               .replace("masked_spec_embed", "mask_emb")
               .replace("encoder.pos_conv_embed.conv.parametrizations.weight.original0", "encoder.pos_conv.0.weight_g")
               .replace("encoder.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv.0.weight_v")
               .replace("encoder.pos_conv_embed.conv.bias", "encoder.pos_conv.0.bias")
               .replace(".attention.", ".self_attn.")
               .replace(".feed_forward.intermediate_dense.", ".fc1.")
               .replace(".feed_forward.output_dense.", ".fc2."))
        k2 = re.sub(r"^(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm.", k2)
        out[k2] = v
    return out


def _fairseq_model_cfg(stable: bool, name: str) -> dict:
    return {"_name": name, "extractor_mode": "layer_norm" if stable else "default", "conv_feature_layers": CONV,
            "conv_bias": stable, "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64,
            "encoder_attention_heads": 4, "layer_norm_first": stable, "conv_pos": 16, "conv_pos_groups": 4,
            "final_dim": 8, "logit_temp": 0.1, "mask_prob": 0.65, "encoder_layerdrop": 0.0}


def _compare(ours, ref, stable):
    x = torch.randn(2, 3000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        o = ours(x)
        r = ref(x, output_hidden_states=True)
    hs = list(r.hidden_states)
    if stable:
        hs[-1] = r.last_hidden_state
    assert len(o.hidden_states) == len(hs) == 3
    for i, (a, b) in enumerate(zip(o.hidden_states, hs)):
        assert (a - b).abs().max().item() <= TOL, f"hidden state {i}"
    return x, o


@pytest.mark.parametrize("stable,style", [(False, "cfg"), (True, "args")])
def test_wav2vec2_and_xlsr_layouts(tmp_path, stable, style):
    torch.manual_seed(0)
    ref = _perturbed(transformers.Wav2Vec2Model(_hf_cfg(stable)))
    state = hf_to_fairseq(ref.state_dict(), stable)
    # wav2vec 2.0 pre-training extras that must be ignored
    state["quantizer.vars"] = torch.randn(1, 10, 4)
    state["project_q.weight"], state["final_proj.weight"] = torch.randn(8, 4), torch.randn(8, 32)
    mcfg = _fairseq_model_cfg(stable, "wav2vec2")
    if style == "cfg":
        ckpt = {"cfg": {"model": mcfg, "task": {"_name": "audio_pretraining"}}, "model": state}
    else:  # old checkpoints: argparse Namespace with arch instead of _name
        args = {k: v for k, v in mcfg.items() if k != "_name"}
        ckpt = {"args": argparse.Namespace(arch="wav2vec2", **args), "model": state}
    torch.save(ckpt, tmp_path / "model.pt")
    ours = import_fairseq(tmp_path / "model.pt")
    assert ours.cfg.layer_norm_first == stable and ours.cfg.conv_norm == ("layer_norm" if stable else "group_norm")
    assert ours.head is None
    _compare(ours, ref, stable)


def test_hubert_with_label_embeddings(tmp_path):
    torch.manual_seed(0)
    ref = _perturbed(transformers.HubertModel(_hf_cfg(False, hubert=True)))
    state = hf_to_fairseq(ref.state_dict(), False)
    g = torch.Generator().manual_seed(5)
    state["label_embs_concat"] = torch.randn(20, 8, generator=g)
    state["final_proj.weight"], state["final_proj.bias"] = torch.randn(8, 32, generator=g), torch.randn(8, generator=g)
    torch.save({"cfg": {"model": _fairseq_model_cfg(False, "hubert")}, "model": state}, tmp_path / "hubert.pt")
    ours = import_fairseq(tmp_path / "hubert.pt")
    assert ours.cfg.arch == "hubert" and ours.cfg.num_labels == 20 and ours.head is not None
    x, o = _compare(ours, ref, False)
    # fairseq HubertModel.compute_nce / logits: cosine(final_proj(x), label_emb) / logit_temp
    h = o.last_hidden_state
    proj = h @ state["final_proj.weight"].t() + state["final_proj.bias"]
    expect = F.cosine_similarity(proj[:, :, None, :], state["label_embs_concat"][None, None], dim=-1) / 0.1
    with torch.no_grad():
        got = ours.head.logits(h)
    assert got.shape == (2, h.size(1), 20)
    assert (got - expect).abs().max().item() <= 1e-3


def _fairseq_hubert_padding_mask(sample_pad: torch.Tensor, n_frames: int) -> torch.Tensor:
    """fairseq's HubertModel.forward_padding_mask, re-written from its description: cut the sample mask
    to a multiple of the frame count, split it into one chunk per frame, a frame pads iff all its chunk does."""
    extra = sample_pad.size(1) % n_frames
    if extra > 0:
        sample_pad = sample_pad[:, :-extra]
    return sample_pad.view(sample_pad.size(0), n_frames, -1).all(-1)


def test_hubert_padding_follows_fairseq(tmp_path):
    from speechkd.models.components import lengths_to_padding_mask
    from speechkd.models.ssl import SSLConfig, SSLModel

    torch.manual_seed(0)
    ref = _perturbed(transformers.HubertModel(_hf_cfg(False, hubert=True)))
    state = hf_to_fairseq(ref.state_dict(), False)
    torch.save({"cfg": {"model": _fairseq_model_cfg(False, "hubert")}, "model": state}, tmp_path / "hubert.pt")
    ours = import_fairseq(tmp_path / "hubert.pt").eval()
    assert ours.cfg.feature_padding == "fairseq_hubert"
    lengths = torch.tensor([3000, 2417, 1333, 401])
    x = torch.randn(4, 3000, generator=torch.Generator().manual_seed(1))
    x = x.masked_fill(lengths_to_padding_mask(lengths, 3000), 0.0)
    with torch.no_grad():
        out = ours(x, lengths)
    T = out.padding_mask.shape[1]
    expect = _fairseq_hubert_padding_mask(lengths_to_padding_mask(lengths, 3000), T)
    assert torch.equal(out.padding_mask, expect)
    conv_lengths = ours.output_lengths(lengths)
    assert out.lengths[0] == T and (out.lengths[1:] > conv_lengths[1:]).all()   # more frames than conv lengths
    # the wav2vec 2.0 rule (and any model of ours) keeps the conv output lengths
    w2v = SSLModel(SSLConfig.from_dict({**ours.cfg.to_dict(), "feature_padding": "lengths"})).eval()
    with torch.no_grad():
        assert torch.equal(w2v(x, lengths).lengths, conv_lengths)
    with pytest.raises(ConfigError, match="feature_padding"):
        SSLConfig.from_dict({**ours.cfg.to_dict(), "feature_padding": "hf"})


def test_finetuned_ctc(tmp_path):
    torch.manual_seed(0)
    ref = _perturbed(transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**{**_hf_cfg(True).to_dict(), "vocab_size": 9})))
    enc = {k[len("wav2vec2."):]: v for k, v in ref.state_dict().items() if k.startswith("wav2vec2.")}
    state = {f"w2v_encoder.w2v_model.{k}": v for k, v in hf_to_fairseq(enc, True).items()}
    state["w2v_encoder.proj.weight"] = ref.lm_head.weight.detach().clone()
    state["w2v_encoder.proj.bias"] = ref.lm_head.bias.detach().clone()
    w2v_args = {"model": _fairseq_model_cfg(True, "wav2vec2")}
    ckpt = {"cfg": {"model": {"_name": "wav2vec_ctc", "w2v_args": w2v_args, "mask_prob": 0.5}}, "model": state}
    torch.save(ckpt, tmp_path / "ctc.pt")
    ours = import_fairseq(tmp_path / "ctc.pt")
    assert isinstance(ours, CTCModel) and ours.vocab_size == 9 and ours.encoder.cfg.mask_time_prob == 0.5
    x = torch.randn(2, 3000)
    with torch.no_grad():
        lp, _, _ = ours(x)
        expect = torch.log_softmax(ref(x).logits, -1)
    assert (lp - expect).abs().max().item() <= TOL


def test_errors(tmp_path):
    torch.save({"foo": 1}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="bad.pt"):
        import_fairseq(tmp_path / "bad.pt")
    ref = transformers.Wav2Vec2Model(_hf_cfg(False))
    state = hf_to_fairseq(ref.state_dict(), False)
    state["encoder.layers.0.adapter.weight"] = torch.zeros(1)
    torch.save({"cfg": {"model": _fairseq_model_cfg(False, "wav2vec2")}, "model": state}, tmp_path / "odd.pt")
    with pytest.raises(ConfigError, match="encoder.layers.0.adapter.weight"):
        import_fairseq(tmp_path / "odd.pt")
    assert parse_conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 2") == [[512, 10, 5], [512, 3, 2], [512, 3, 2]]
    with pytest.raises(ConfigError):
        parse_conv_layers("__import__('os')")


def test_import_cli_fairseq(tmp_path):
    from speechkd.bin.import_checkpoint import main as import_main
    from speechkd.models.checkpoint import load_checkpoint
    ref = _perturbed(transformers.Wav2Vec2Model(_hf_cfg(True)))
    torch.save({"cfg": {"model": _fairseq_model_cfg(True, "wav2vec2")}, "model": hf_to_fairseq(ref.state_dict(), True)},
               tmp_path / "xlsr.pt")
    with pytest.raises(SystemExit) as e:
        import_main(["--src", str(tmp_path / "xlsr.pt"), "--out", str(tmp_path / "teacher")])
    assert e.value.code == 0
    model, config = load_checkpoint(tmp_path / "teacher")
    assert config["source"]["format"] == "fairseq" and config["model"]["layer_norm_first"] is True
    _compare(model, ref, True)
    with pytest.raises(SystemExit) as e:
        import_main(["--src", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "t2")])
    assert e.value.code == 1 and not (tmp_path / "t2").exists()


# ------------------------------------------------------------------ fine-tuned without w2v_args (HuBERT)
def _hubert_ctc_files(tmp_path, w2v_args_key=True):
    """fairseq HuBERT fine-tuning layout: cfg.model.w2v_args None, config only in the w2v_path file."""
    torch.manual_seed(0)
    hf_cfg = transformers.HubertConfig(**{**_hf_cfg(False, hubert=True).to_dict(), "vocab_size": 7})
    ref = _perturbed(transformers.HubertForCTC(hf_cfg))
    enc = hf_to_fairseq({k[len("hubert."):]: v for k, v in ref.state_dict().items() if k.startswith("hubert.")},
                        False)
    pre = tmp_path / "pre" / "hubert_pretrain.pt"
    pre.parent.mkdir()
    g = torch.Generator().manual_seed(5)
    torch.save({"cfg": {"model": _fairseq_model_cfg(False, "hubert"), "task": {"labels": ["km"]}},
                "model": {**enc, "label_embs_concat": torch.randn(20, 8, generator=g),
                          "final_proj.weight": torch.randn(8, 32, generator=g), "final_proj.bias": torch.zeros(8)}},
               pre)
    state = {f"w2v_encoder.w2v_model.{k}": v for k, v in enc.items()}
    state["w2v_encoder.proj.weight"] = ref.lm_head.weight.detach().clone()
    state["w2v_encoder.proj.bias"] = ref.lm_head.bias.detach().clone()
    model_cfg = {"_name": "hubert_ctc", "w2v_path": str(pre), "apply_mask": True, "mask_prob": 0.25}
    if w2v_args_key:
        model_cfg["w2v_args"] = None
    ft = tmp_path / "hubert_ctc.pt"
    torch.save({"cfg": {"model": model_cfg, "task": {"_name": "audio_finetuning"}}, "model": state}, ft)
    return ref, ft, pre


def _check_ctc(ours, ref, vocab):
    assert isinstance(ours, CTCModel) and ours.vocab_size == vocab and ours.encoder.cfg.arch == "hubert"
    x = torch.randn(2, 3000, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        lp, _, _ = ours(x)
        expect = torch.log_softmax(ref(x).logits, -1)
    assert (lp - expect).abs().max().item() <= TOL


@pytest.mark.parametrize("w2v_args_key", [True, False])
def test_finetuned_without_w2v_args_reads_w2v_path(tmp_path, w2v_args_key):
    ref, ft, pre = _hubert_ctc_files(tmp_path, w2v_args_key)
    ours = import_fairseq(ft)
    _check_ctc(ours, ref, 7)
    assert ours.encoder.cfg.mask_time_prob == 0.25  # fine-tuning value, not the pre-training 0.65


def test_finetuned_w2v_path_from_another_machine(tmp_path):
    ref, ft, pre = _hubert_ctc_files(tmp_path)
    moved = tmp_path / "here.pt"
    pre.rename(moved)
    with pytest.raises(ConfigError) as e:
        import_fairseq(ft)
    msg = str(e.value)
    assert "hubert_ctc.pt" in msg and str(pre) in msg and "--w2v-path" in msg
    _check_ctc(import_fairseq(ft, w2v_path=moved), ref, 7)
    with pytest.raises(ConfigError, match="nowhere.pt"):
        import_fairseq(ft, w2v_path=tmp_path / "nowhere.pt")
    with pytest.raises(ConfigError, match="fine-tuned checkpoint, not the pre-training"):
        import_fairseq(ft, w2v_path=ft)


def test_import_cli_w2v_path(tmp_path):
    from speechkd.bin.import_checkpoint import main as import_main
    from speechkd.models.checkpoint import load_checkpoint
    ref, ft, pre = _hubert_ctc_files(tmp_path)
    moved = tmp_path / "here.pt"
    pre.rename(moved)
    with pytest.raises(SystemExit) as e:
        import_main(["--src", str(ft), "--out", str(tmp_path / "t1")])
    assert e.value.code == 1 and not (tmp_path / "t1").exists()
    with pytest.raises(SystemExit) as e:
        import_main(["--src", str(ft), "--out", str(tmp_path / "ctc"), "--w2v-path", str(moved)])
    assert e.value.code == 0
    model, config = load_checkpoint(tmp_path / "ctc")
    _check_ctc(model, ref, 7)


# ------------------------------------------------------------------ fine-tuning masking / dropout fields
def _finetuned_with(tmp_path, **ft_fields):
    ref = transformers.Wav2Vec2Model(_hf_cfg(True))
    state = {f"w2v_encoder.w2v_model.{k}": v for k, v in hf_to_fairseq(ref.state_dict(), True).items()}
    state["w2v_encoder.proj.weight"], state["w2v_encoder.proj.bias"] = torch.randn(5, 32), torch.zeros(5)
    pre = {**_fairseq_model_cfg(True, "wav2vec2"), "mask_prob": 0.65, "mask_length": 10, "dropout_input": 0.1,
           "mask_channel_prob": 0.0, "mask_channel_length": 10}
    ckpt = {"cfg": {"model": {"_name": "wav2vec_ctc", "w2v_args": {"model": pre}, **ft_fields}}, "model": state}
    torch.save(ckpt, tmp_path / "ft.pt")
    return tmp_path / "ft.pt"


def test_finetune_masking_fields_override_pretraining(tmp_path, caplog):
    path = _finetuned_with(tmp_path, apply_mask=True, mask_prob=0.3, mask_length=4, mask_channel_prob=0.2,
                           mask_channel_length=6, dropout_input=0.05, layerdrop=0.02, mask_selection="normal",
                           mask_other=2.0, no_mask_overlap=False)
    with caplog.at_level(logging.INFO, logger="speechkd"):
        cfg = import_fairseq(path).encoder.cfg
    assert (cfg.mask_time_prob, cfg.mask_time_length, cfg.mask_channel_prob, cfg.mask_channel_length) == \
        (0.3, 4, 0.2, 6)
    assert cfg.proj_dropout == 0.05 and cfg.layerdrop == 0.02
    enc = import_fairseq(path).encoder
    assert enc.masking.mask_time_length == 4 and enc.masking.mask_channel_prob == 0.2
    # options speechkd cannot reproduce are logged, not dropped silently; defaults are not mentioned
    assert "mask_selection='normal'" in caplog.text and "mask_other=2.0" in caplog.text
    assert "no_mask_overlap" not in caplog.text


def test_finetune_apply_mask_false_disables_masking(tmp_path):
    path = _finetuned_with(tmp_path, apply_mask=False, mask_prob=0.5, mask_channel_prob=0.1, mask_length=10)
    cfg = import_fairseq(path).encoder.cfg
    assert cfg.mask_time_prob == 0.0 and cfg.mask_channel_prob == 0.0
    model = import_fairseq(path).train()
    x = torch.randn(1, 3000)
    out = model.encoder(x, mask=True)
    assert out.mask_indices is None or not out.mask_indices.any()


# ------------------------------------------------------------------ no post_extract_proj
def test_no_post_extract_proj_when_dims_match(tmp_path):
    torch.manual_seed(0)
    hf_cfg = _hf_cfg(False)
    hf_cfg.conv_dim = (16, 16, 32)  # last conv channels = hidden_size: fairseq has no post_extract_proj
    ref = _perturbed(transformers.Wav2Vec2Model(hf_cfg))
    with torch.no_grad():  # the reference: HF with an identity projection (= no projection)
        ref.feature_projection.projection.weight.copy_(torch.eye(32))
        ref.feature_projection.projection.bias.zero_()
    state = hf_to_fairseq(ref.state_dict(), False)
    del state["post_extract_proj.weight"], state["post_extract_proj.bias"]
    mcfg = {**_fairseq_model_cfg(False, "wav2vec2"),
            "conv_feature_layers": "[(16, 10, 5)] + [(16, 3, 2)] + [(32, 2, 2)]"}
    torch.save({"cfg": {"model": mcfg}, "model": state}, tmp_path / "w2v.pt")
    ours = import_fairseq(tmp_path / "w2v.pt")
    _compare(ours, ref, False)
    # a missing projection where the dims differ is an error naming the file
    ref2 = transformers.Wav2Vec2Model(_hf_cfg(False))
    state2 = hf_to_fairseq(ref2.state_dict(), False)
    del state2["post_extract_proj.weight"], state2["post_extract_proj.bias"]
    torch.save({"cfg": {"model": _fairseq_model_cfg(False, "wav2vec2")}, "model": state2}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="bad.pt.*post_extract_proj"):
        import_fairseq(tmp_path / "bad.pt")


# ------------------------------------------------------------------ HuBERT with several label sets
@pytest.mark.parametrize("untied", [False, True])
def test_hubert_two_label_sets_refused(tmp_path, untied):
    ref = transformers.HubertModel(_hf_cfg(False, hubert=True))
    state = hf_to_fairseq(ref.state_dict(), False)
    state["label_embs_concat"] = torch.randn(20 + 12, 8)  # two dictionaries (20 and 12 labels) stacked
    rows = 16 if untied else 8                           # untie_final_proj: final_dim per label set
    state["final_proj.weight"], state["final_proj.bias"] = torch.randn(rows, 32), torch.randn(rows)
    mcfg = {**_fairseq_model_cfg(False, "hubert"), "untie_final_proj": untied}
    torch.save({"cfg": {"model": mcfg, "task": {"_name": "hubert_pretraining", "labels": ["km", "phn"]}},
                "model": state}, tmp_path / "hubert2.pt")
    with pytest.raises(ConfigError, match=r"hubert2.pt.*2 label sets \(labels: km, phn\)"):
        import_fairseq(tmp_path / "hubert2.pt")


# ------------------------------------------------------------------ oracle: fairseq 0.12.2 state-dict layout
FIXTURE = Path(__file__).parent / "fixtures" / "fairseq_0.12.2_state_keys.json"


@pytest.mark.parametrize("variant,finetuned", [("wav2vec2_base", False), ("wav2vec2_xlsr", False),
                                               ("hubert_base", False), ("wav2vec2_base", True),
                                               ("hubert_base", True)])
def test_fairseq_0122_key_layout(tmp_path, variant, finetuned):
    """Every tensor of a fairseq-0.12.2-layout checkpoint (key names from the fixture, random values) lands
    in exactly one parameter of the imported model, except the declared pre-training-only ones."""
    spec = json.loads(FIXTURE.read_text())[variant]
    g = torch.Generator().manual_seed(1)
    fs = {k: torch.randn(shape, generator=g) for k, shape in spec["keys"].items()}
    dropped = set(spec["pretraining_only"])
    if finetuned:  # fine-tuned: pre-training modules removed (and HuBERT's head), encoder under w2v_encoder
        dropped |= {"final_proj.weight", "final_proj.bias", "label_embs_concat"}
        state = {f"w2v_encoder.w2v_model.{k}": v for k, v in fs.items() if k not in dropped}
        state["w2v_encoder.proj.weight"] = torch.randn(5, 32, generator=g)
        state["w2v_encoder.proj.bias"] = torch.randn(5, generator=g)
        ckpt = {"cfg": {"model": {"_name": "wav2vec_ctc", "w2v_args": {"model": spec["cfg"]}}}, "model": state}
        expected = {**{k: v for k, v in fs.items() if k not in dropped},
                    "w2v_encoder.proj.weight": state["w2v_encoder.proj.weight"],
                    "w2v_encoder.proj.bias": state["w2v_encoder.proj.bias"]}
    else:
        ckpt = {"cfg": {"model": spec["cfg"], "task": spec.get("task", {})}, "model": fs}
        expected = {k: v for k, v in fs.items() if k not in dropped}
    torch.save(ckpt, tmp_path / "m.pt")
    ours = {k: v for k, v in import_fairseq(tmp_path / "m.pt").state_dict().items() if v.is_floating_point()}
    # match by value: random tensors are distinct, so equal values mean this key was mapped onto that one
    unused = [k for k, v in expected.items()
              if not any(o.shape == v.shape and torch.equal(o, v) for o in ours.values())]
    missing = [k for k, o in ours.items()
               if not any(o.shape == v.shape and torch.equal(o, v) for v in expected.values())]
    assert not unused, f"fairseq keys not imported: {unused}"
    assert not missing, f"parameters not filled from the checkpoint: {missing}"
    assert len(ours) == len(expected)


# ------------------------------------------------------------------ memory: mmap, meta device, optimizer state
def _file_mappings(path) -> list:
    """(start, end, rss_bytes) of this process's mappings of ``path`` (/proc/self/smaps)."""
    path, out = str(Path(path).resolve()), []
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping header line
                mine = len(head) >= 6 and head[5] == path
                if mine:
                    start, end = (int(x, 16) for x in head[0].split("-"))
                    out.append([start, end, 0])
            elif mine and head[0] == "Rss:":
                out[-1][2] = int(head[1]) * 1024
    return out


def _in(mappings, t: torch.Tensor) -> bool:
    return any(a <= t.data_ptr() < b for a, b, _ in mappings)


def _xlsr_like_file(tmp_path, optimizer_mb: int = 16, **save_kw):
    torch.manual_seed(0)
    ref = _perturbed(transformers.Wav2Vec2Model(_hf_cfg(True)))
    n = optimizer_mb * 2 ** 20 // 8  # two fp32 tensors of optimizer_mb / 2 each
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(n), "exp_avg_sq": torch.rand(n)}},
           "param_groups": [{"lr": 1e-4, "params": [0]}]}
    path = tmp_path / "xlsr_with_optimizer.pt"
    torch.save({"cfg": {"model": _fairseq_model_cfg(True, "wav2vec2")}, "model": hf_to_fairseq(ref.state_dict(), True),
                "last_optimizer_state": opt, "optimizer_history": [{"num_updates": 3}]}, path, **save_kw)
    return ref, path


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps (Linux)")
def test_import_maps_the_file_and_never_reads_optimizer_state(tmp_path, monkeypatch):
    """The model's parameters are the file's mapped tensors (no copy) and the 16 MB of Adam state in
    ``last_optimizer_state`` stays unread: the file's mapping has far fewer resident bytes than that."""
    from speechkd.models.convert import import_fairseq as mod

    ref, path = _xlsr_like_file(tmp_path)
    seen = {}
    real_load = mod.load_fairseq_file

    def spy(p, *a, **kw):
        seen["ckpt"] = real_load(p, *a, **kw)
        return seen["ckpt"]

    monkeypatch.setattr(mod, "load_fairseq_file", spy)
    ours = import_fairseq(path)
    maps = _file_mappings(path)
    assert maps, "the checkpoint is not memory-mapped"
    opt = seen["ckpt"]["last_optimizer_state"]["state"][0]
    assert _in(maps, opt["exp_avg"]) and _in(maps, opt["exp_avg_sq"])  # still views of the file
    params = dict(ours.named_parameters())
    assert all(_in(maps, p) for p in params.values()), [k for k, p in params.items() if not _in(maps, p)]
    assert all(p.dtype == torch.float32 and p.requires_grad for p in params.values())
    resident = sum(r for _, _, r in _file_mappings(path))
    assert resident < 4 * 2 ** 20, f"{resident} bytes of the file resident after import (optimizer state: 16 MB)"
    float(opt["exp_avg"].sum() + opt["exp_avg_sq"].sum())  # the check above can see a read: reading it shows
    assert sum(r for _, _, r in _file_mappings(path)) >= resident + 15 * 2 ** 20
    _compare(ours, ref, True)


@pytest.mark.parametrize("half", [False, True])
def test_mmap_and_legacy_format_give_identical_models(tmp_path, caplog, half):
    """A zip file (memory-mapped) and a legacy non-zip file (read whole, logged) give the same model; fp16
    weights give an fp32 model (the model's dtype, as a copy into a freshly built model gives)."""
    torch.manual_seed(0)
    ref = _perturbed(transformers.Wav2Vec2Model(_hf_cfg(False)))
    state = hf_to_fairseq(ref.state_dict(), False)
    if half:
        state = {k: v.half() for k, v in state.items()}
        with torch.no_grad():  # the reference sees the same rounded weights
            for p in ref.parameters():
                p.copy_(p.half().float())
    ckpt = {"cfg": {"model": _fairseq_model_cfg(False, "wav2vec2")}, "model": state,
            "last_optimizer_state": {"state": {0: {"exp_avg": torch.randn(1000)}}}}
    torch.save(ckpt, tmp_path / "zip.pt")
    torch.save(ckpt, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with caplog.at_level(logging.INFO, logger="speechkd"):
        mapped = import_fairseq(tmp_path / "zip.pt")
        assert "cannot be memory-mapped" not in caplog.text
        legacy = import_fairseq(tmp_path / "legacy.pt")
    assert "legacy.pt: legacy (non-zip) torch file: it cannot be memory-mapped" in caplog.text
    a, b = mapped.state_dict(), legacy.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype == torch.float32 and torch.equal(a[k], b[k]), k
    _compare(mapped, ref, False)
    _compare(legacy, ref, False)
