"""Import fairseq wav2vec 2.0 / XLSR / HuBERT checkpoints (``.pt``: ``{"cfg" or "args", "model"}``).

Handles pretrained models (``Wav2Vec2Model``, ``HubertModel``, with HuBERT's ``final_proj`` and
``label_embs_concat`` -> :class:`~speechkd.models.ssl.HubertHead`) and CTC fine-tuned ones
(``w2v_encoder.w2v_model.*`` + ``w2v_encoder.proj`` -> :class:`~speechkd.models.ctc.CTCModel`).
fairseq itself is not needed. Files are read with ``weights_only=True`` plus a few safe classes
(argparse.Namespace, omegaconf containers, numpy arrays); a checkpoint that pickles other objects (e.g.
fairseq's own) is refused unless ``trust=True`` / ``--trust-checkpoint`` (and then may need fairseq).

Example::

    model = import_fairseq("/data/models/xlsr_53_56k.pt")       # SSLModel, 24 pre-LN layers
    model = import_fairseq("/data/models/hubert_base_ls960.pt")  # SSLModel with model.head (504 labels)

Key layout (fairseq -> ours)::

    feature_extractor.conv_layers.{i}.0.*      -> feature_extractor.conv_layers.{i}.conv.*
    feature_extractor.conv_layers.0.2.*        -> ...conv_layers.0.layer_norm.*   (group norm, "default")
    feature_extractor.conv_layers.{i}.2.1.*    -> ...conv_layers.{i}.layer_norm.* ("layer_norm" mode)
    layer_norm.*, post_extract_proj.*          -> feature_projection.layer_norm.*, .projection.*
    mask_emb                                   -> masking.masked_spec_embed
    encoder.pos_conv.0.{weight_g,weight_v,bias}-> encoder.pos_conv_embed.conv.{parametrizations...,bias}
    encoder.layers.{i}.self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2, final_layer_norm
                                               -> encoder.layers.{i}.attention.*, layer_norm,
                                                  feed_forward.intermediate_dense/output_dense, final_layer_norm
    final_proj.*, label_embs_concat (HuBERT)   -> head.final_proj.*, head.label_embs
"""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import torch

from ...utils.errors import ConfigError
from ..checkpoint import load_state_dict_checked
from ..ssl import SSLConfig, SSLModel

log = logging.getLogger("speechkd")

DEFAULT_CONV = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"

_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)$", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
    (r"^post_extract_proj\.(weight|bias)$", r"feature_projection.projection.\1"),
    (r"^mask_emb$", "masking.masked_spec_embed"),
    (r"^encoder\.pos_conv\.0\.weight_g$", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv\.0\.weight_v$", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"^encoder\.pos_conv\.0\.parametrizations\.weight\.original([01])$",
     r"encoder.pos_conv_embed.conv.parametrizations.weight.original\1"),
    (r"^encoder\.pos_conv\.0\.bias$", "encoder.pos_conv_embed.conv.bias"),
    (r"^encoder\.layer_norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)$", r"encoder.layers.\1.attention.\2_proj.\3"),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$", r"encoder.layers.\1.layer_norm.\2"),
    (r"^encoder\.layers\.(\d+)\.fc1\.(weight|bias)$", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"^encoder\.layers\.(\d+)\.fc2\.(weight|bias)$", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"encoder.layers.\1.final_layer_norm.\2"),
]
_RULES = [(re.compile(a), b) for a, b in _RULES]
# wav2vec 2.0 pre-training parts with no counterpart here (quantizer, contrastive projections)
_IGNORED = re.compile(r"^(quantizer\.|project_q\.|project_inp\.|target_glu\.|final_proj\.|label_embs_concat$)")


def fairseq_key_to_ours(key: str):
    """Map one fairseq encoder key to ours; None when it has no counterpart."""
    for pat, rep in _RULES:
        if pat.match(key):
            return pat.sub(rep, key)
    return None


def _as_dict(cfg) -> dict:
    if cfg is None:
        return {}
    if isinstance(cfg, argparse.Namespace):
        return vars(cfg)
    if isinstance(cfg, dict):
        return dict(cfg)
    try:  # omegaconf DictConfig
        from omegaconf import OmegaConf
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        return dict(cfg)


def parse_conv_layers(spec) -> list:
    """fairseq ``conv_feature_layers`` string (e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``) -> list."""
    if isinstance(spec, (list, tuple)):
        return [list(map(int, c)) for c in spec]
    if not re.fullmatch(r"[\s\d\(\)\[\],+*]+", str(spec)):
        raise ConfigError(f"conv_feature_layers {spec!r}: not a list expression of (dim, kernel, stride)")
    value = eval(str(spec), {"__builtins__": {}}, {})  # only digits, brackets, commas, + and * (checked)
    return [list(map(int, c)) for c in value]


def fairseq_model_cfg(ckpt: dict, where) -> dict:
    """The model section of a fairseq checkpoint config (new ``cfg`` or old ``args`` style)."""
    if "cfg" in ckpt and ckpt["cfg"] is not None:
        cfg = _as_dict(ckpt["cfg"])
        model = _as_dict(cfg.get("model"))
        if not model:
            raise ConfigError(f"{where}: checkpoint cfg has no 'model' section")
        return model
    if "args" in ckpt and ckpt["args"] is not None:
        args = _as_dict(ckpt["args"])
        args.setdefault("_name", args.get("arch", ""))
        return args
    raise ConfigError(f"{where}: not a fairseq checkpoint (no 'cfg' or 'args')")


def fairseq_cfg_to_ssl(m: dict, where) -> SSLConfig:
    name = str(m.get("_name") or m.get("arch") or "wav2vec2")
    arch = "hubert" if "hubert" in name else "wav2vec2"
    if m.get("layer_type", "transformer") != "transformer":
        raise ConfigError(f"{where}: layer_type '{m['layer_type']}' is not supported (transformer only)")
    if int(m.get("pos_conv_depth", 1)) != 1:
        raise ConfigError(f"{where}: pos_conv_depth={m['pos_conv_depth']} is not supported (1 only)")
    if m.get("activation_fn", "gelu") != "gelu":
        raise ConfigError(f"{where}: activation_fn '{m['activation_fn']}' is not supported (gelu only)")
    mode = m.get("extractor_mode", "default")
    if mode not in ("default", "layer_norm"):
        raise ConfigError(f"{where}: extractor_mode '{mode}' is not supported")
    d_model = int(m.get("encoder_embed_dim", 768))
    final_dim = int(m.get("final_dim", 0)) or d_model
    return SSLConfig(
        frontend="cnn", conv_layers=parse_conv_layers(m.get("conv_feature_layers", DEFAULT_CONV)),
        conv_norm="group_norm" if mode == "default" else "layer_norm", conv_bias=bool(m.get("conv_bias", False)),
        d_model=d_model, n_layers=int(m.get("encoder_layers", 12)), n_heads=int(m.get("encoder_attention_heads", 12)),
        ffn_dim=int(m.get("encoder_ffn_embed_dim", 3072)), layer_norm_first=bool(m.get("layer_norm_first", False)),
        pos_conv_kernel=int(m.get("conv_pos", 128)), pos_conv_groups=int(m.get("conv_pos_groups", 16)),
        dropout=float(m.get("dropout", 0.1)), attention_dropout=float(m.get("attention_dropout", 0.1)),
        activation_dropout=float(m.get("activation_dropout", 0.0)), proj_dropout=float(m.get("dropout_input", 0.0)),
        layerdrop=float(m.get("encoder_layerdrop", 0.0)),
        mask_time_prob=float(m.get("mask_prob", 0.65)), mask_time_length=int(m.get("mask_length", 10)),
        mask_channel_prob=float(m.get("mask_channel_prob", 0.0)),
        mask_channel_length=int(m.get("mask_channel_length", 10)),
        final_dim=final_dim, logit_temp=float(m.get("logit_temp", 0.1)), arch=arch)


def fairseq_safe_globals() -> list:
    """Classes a fairseq checkpoint may hold that are safe to rebuild: its ``args`` (argparse.Namespace),
    omegaconf ``cfg`` containers and nodes (when omegaconf is installed), numpy arrays and scalars."""
    from ...utils.safe_load import numpy_safe_globals, omegaconf_safe_globals
    return [argparse.Namespace, *omegaconf_safe_globals(), *numpy_safe_globals()]


def load_fairseq_file(path, trust: bool = False) -> dict:
    """Read a fairseq ``.pt`` with ``weights_only=True`` and :func:`fairseq_safe_globals`.

    Anything else in the pickle (e.g. fairseq's own classes, or a hostile ``__reduce__``) is refused with a
    one-line ConfigError naming the file and the global; ``trust=True`` unpickles it fully (legacy files
    from a trusted source only: unpickling can run arbitrary code).
    """
    from ...utils.safe_load import safe_torch_load
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint file")
    ckpt = safe_torch_load(path, trust=trust, allowed=fairseq_safe_globals())
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ConfigError(f"{path}: not a fairseq checkpoint (expected a dict with a 'model' state dict)")
    return ckpt


def _convert_encoder(state: dict, where):
    enc, unknown = {}, []
    for k, v in state.items():
        new = fairseq_key_to_ours(k)
        if new is not None:
            enc[new] = v
        elif not _IGNORED.match(k):
            unknown.append(k)
    if unknown:
        raise ConfigError(f"{where}: unsupported fairseq key '{unknown[0]}' ({len(unknown)} unknown keys)")
    return enc


def import_fairseq(path, kind: str = "auto", trust: bool = False):
    """Load a fairseq checkpoint file into an SSLModel (``kind="ssl"``) or CTCModel (``"ctc"``).

    ``trust=True`` allows full unpickling of a file that needs more than :func:`fairseq_safe_globals`.
    """
    path = Path(path)
    ckpt = load_fairseq_file(path, trust=trust)
    state = ckpt["model"]
    m = fairseq_model_cfg(ckpt, path)
    finetuned = any(k.startswith("w2v_encoder.") for k in state)
    if finetuned:  # CTC fine-tuned: the pre-training config sits in w2v_args
        w2v = m.get("w2v_args")
        if w2v is None:
            raise ConfigError(f"{path}: fine-tuned checkpoint without w2v_args")
        # w2v_args is the pre-training config: a full cfg (with "model") or an old argparse Namespace
        inner = fairseq_model_cfg({"args": w2v} if isinstance(w2v, argparse.Namespace) else {"cfg": w2v}, path)
        cfg = fairseq_cfg_to_ssl(inner, path)
        for ours, theirs in (("dropout", "dropout"), ("attention_dropout", "attention_dropout"),
                             ("activation_dropout", "activation_dropout"), ("layerdrop", "layerdrop"),
                             ("mask_time_prob", "mask_prob"), ("mask_channel_prob", "mask_channel_prob")):
            if theirs in m:
                setattr(cfg, ours, float(m[theirs]))
        prefix = "w2v_encoder.w2v_model."
        enc_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    else:
        cfg = fairseq_cfg_to_ssl(m, path)
        enc_state = state
    enc = _convert_encoder(enc_state, path)
    if "masking.masked_spec_embed" not in enc:
        enc["masking.masked_spec_embed"] = torch.rand(cfg.d_model)
    head_state = {}
    if cfg.arch == "hubert" and "label_embs_concat" in enc_state and not finetuned:
        embs, proj_w = enc_state["label_embs_concat"], enc_state["final_proj.weight"]
        if proj_w.shape[0] != embs.shape[1]:
            raise ConfigError(f"{path}: HuBERT final_proj for {proj_w.shape[0] // embs.shape[1]} label sets "
                              "(untied projections) is not supported; only one set of targets")
        cfg.num_labels, cfg.final_dim = int(embs.shape[0]), int(embs.shape[1])
        head_state = {"head.label_embs": embs, "head.final_proj.weight": proj_w,
                      "head.final_proj.bias": enc_state["final_proj.bias"]}
    if kind == "auto":
        kind = "ctc" if finetuned else "ssl"
    if kind == "ctc":
        from ..ctc import CTCModel
        if "w2v_encoder.proj.weight" not in state:
            raise ConfigError(f"{path}: no w2v_encoder.proj: not a CTC fine-tuned checkpoint")
        vocab = state["w2v_encoder.proj.weight"].shape[0]
        model = CTCModel(cfg, vocab, final_dropout=float(m.get("final_dropout", 0.0)))
        load_state_dict_checked(model.encoder, enc, path)
        model.head.proj.weight.data.copy_(state["w2v_encoder.proj.weight"])
        model.head.proj.bias.data.copy_(state["w2v_encoder.proj.bias"])
    elif kind == "ssl":
        model = SSLModel(cfg)
        load_state_dict_checked(model, {**enc, **head_state}, path)
    else:
        raise ConfigError(f"kind must be auto, ssl or ctc, got '{kind}'")
    return model.eval()
