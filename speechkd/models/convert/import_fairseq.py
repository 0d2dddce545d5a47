"""Import fairseq wav2vec 2.0 / XLSR / HuBERT checkpoints (``.pt``: ``{"cfg" or "args", "model"}``).

Handles pretrained models (``Wav2Vec2Model``, ``HubertModel``, with HuBERT's ``final_proj`` and
``label_embs_concat`` -> :class:`~speechkd.models.ssl.HubertHead`) and CTC fine-tuned ones
(``w2v_encoder.w2v_model.*`` + ``w2v_encoder.proj`` -> :class:`~speechkd.models.ctc.CTCModel`).
fairseq itself is not needed. Files are read with ``weights_only=True`` plus a few safe classes
(argparse.Namespace, omegaconf containers, numpy arrays); a checkpoint that pickles other objects (e.g.
fairseq's own) is refused unless ``trust=True`` / ``--trust-checkpoint`` (and then may need fairseq).

Memory: the file is memory-mapped (torch's zip format; a legacy non-zip file is read whole), the model is
built on the meta device and the checkpoint's tensors become its parameters (renamed, not copied; only a
tensor whose dtype differs from the model's, e.g. fp16 weights into the fp32 model, is converted). The
optimizer state (``last_optimizer_state``) is never read, so the peak is about one copy of the weights
(bench/import_memory.py). The parameters are then copy-on-write views of the file: training them never
changes the file, but the file must not be truncated or rewritten in place while the model is in use
(deleting or replacing it by a rename is fine).

A fine-tuned checkpoint carries its pre-training config in ``cfg.model.w2v_args``; fairseq's HuBERT
fine-tuning writes ``w2v_args: None`` instead, and the config is then read from the pre-training file at
``cfg.model.w2v_path`` (or the ``w2v_path=`` argument / ``--w2v-path`` flag when the recorded path is from
another machine). The fine-tuning config's dropout and masking fields (``apply_mask``, ``mask_prob``, ...)
override the pre-training ones. A model whose last conv layer has ``encoder_embed_dim`` channels has no
``post_extract_proj`` in fairseq: it gets an identity projection. HuBERT checkpoints trained on several
label sets are refused (the split of ``label_embs_concat`` between the sets is not recorded).

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
from ..checkpoint import check_materialised, load_state_dict_checked
from ..ssl import SSLConfig, SSLModel

log = logging.getLogger("speechkd")

DEFAULT_CONV = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"
W2V_PATH_FLAG = "--w2v-path"

# fine-tuning config (fairseq Wav2Vec2AsrConfig / HubertAsrConfig) field -> SSLConfig field, cast; these
# override the pre-training values (fairseq passes them as arg_overrides to the pre-trained model)
_FT_OVERRIDES = (
    ("dropout", "dropout", float), ("attention_dropout", "attention_dropout", float),
    ("activation_dropout", "activation_dropout", float), ("dropout_input", "proj_dropout", float),
    ("layerdrop", "layerdrop", float), ("mask_prob", "mask_time_prob", float),
    ("mask_length", "mask_time_length", int), ("mask_channel_prob", "mask_channel_prob", float),
    ("mask_channel_length", "mask_channel_length", int),
)
# masking fields with no SSLConfig counterpart, with the fairseq defaults that speechkd's masking follows;
# another value is logged (it is not reproduced)
_MASK_UNMAPPED = {
    "mask_selection": "static", "mask_other": 0, "no_mask_overlap": False, "mask_min_space": 1,
    "require_same_masks": True, "mask_dropout": 0.0, "mask_channel_selection": "static",
    "mask_channel_other": 0, "no_mask_channel_overlap": False, "mask_channel_min_space": 1,
    "mask_channel_before": False,
}

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
        final_dim=final_dim, logit_temp=float(m.get("logit_temp", 0.1)), arch=arch,
        # fairseq HuBERT marks a frame as padding only when all its samples are (wav2vec 2.0: conv lengths)
        feature_padding="fairseq_hubert" if arch == "hubert" else "lengths")


def fairseq_safe_globals() -> list:
    """Classes a fairseq checkpoint may hold that are safe to rebuild: its ``args`` (argparse.Namespace),
    omegaconf ``cfg`` containers and nodes (when omegaconf is installed), numpy arrays and scalars."""
    from ...utils.safe_load import numpy_safe_globals, omegaconf_safe_globals
    return [argparse.Namespace, *omegaconf_safe_globals(), *numpy_safe_globals()]


def load_fairseq_file(path, trust: bool = False, mmap: bool = True) -> dict:
    """Read a fairseq ``.pt`` with ``weights_only=True`` and :func:`fairseq_safe_globals`.

    Anything else in the pickle (e.g. fairseq's own classes, or a hostile ``__reduce__``) is refused with a
    one-line ConfigError naming the file and the global; ``trust=True`` unpickles it fully (legacy files
    from a trusted source only: unpickling can run arbitrary code). ``mmap=True`` memory-maps the file
    (zip format; a legacy file is read whole): its tensors are read from disk only when touched.
    """
    from ...utils.safe_load import safe_torch_load
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint file")
    ckpt = safe_torch_load(path, trust=trust, allowed=fairseq_safe_globals(), mmap=mmap)
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


def _find_w2v_file(path, recorded, override) -> Path:
    """The pre-training checkpoint of a fine-tuned one without w2v_args: ``override`` if given, else the
    recorded ``w2v_path`` when it exists on this machine."""
    if override is not None:
        override = Path(override)
        if not override.is_file():
            raise ConfigError(f"{path}: pre-training checkpoint {override} (given by {W2V_PATH_FLAG} / "
                              "w2v_path=) does not exist")
        return override
    if recorded and Path(str(recorded)).is_file():
        return Path(str(recorded))
    raise ConfigError(f"{path}: fine-tuned checkpoint without w2v_args (pre-training config) and its recorded "
                      f"w2v_path {recorded!r} does not exist here; pass the pre-training checkpoint with "
                      f"{W2V_PATH_FLAG} PATH (w2v_path= in Python)")


def pretraining_model_cfg(m: dict, path, w2v_path=None, trust: bool = False) -> dict:
    """The pre-training model config of a fine-tuned checkpoint whose model config is ``m``.

    From ``m["w2v_args"]`` (a full cfg with "model", or an old argparse Namespace) when present; else
    (fairseq's HuBERT fine-tuning writes ``w2v_args: None``) from the cfg/args of the pre-training file at
    ``w2v_path`` (argument) or ``m["w2v_path"]`` (recorded), loaded as safely as :func:`load_fairseq_file`.
    """
    w2v = m.get("w2v_args")
    if w2v is not None:
        if w2v_path is not None:
            log.info("%s: has w2v_args; %s %s not needed, not read", path, W2V_PATH_FLAG, w2v_path)
        return fairseq_model_cfg({"args": w2v} if isinstance(w2v, argparse.Namespace) else {"cfg": w2v}, path)
    src = _find_w2v_file(path, m.get("w2v_path"), w2v_path)
    pre = load_fairseq_file(src, trust=trust)
    if any(str(k).startswith("w2v_encoder.") for k in pre["model"]):
        raise ConfigError(f"{src}: is a fine-tuned checkpoint, not the pre-training one of {path}")
    log.info("%s: no w2v_args; pre-training config read from %s", path, src)
    return fairseq_model_cfg(pre, src)


def _log_unmapped_masking(m: dict, where) -> None:
    """Log the masking fields of ``m`` that speechkd cannot reproduce (value other than fairseq's default)."""
    odd = {k: m[k] for k, default in _MASK_UNMAPPED.items() if m.get(k) is not None and m[k] != default}
    if odd:
        log.warning("%s: fairseq masking options without a speechkd equivalent are not carried over: %s "
                    "(speechkd masks with %s)", where, ", ".join(f"{k}={v!r}" for k, v in sorted(odd.items())),
                    ", ".join(f"{k}={v!r}" for k, v in sorted(_MASK_UNMAPPED.items()) if k in odd))


def apply_finetune_overrides(cfg: SSLConfig, m: dict, where) -> SSLConfig:
    """Carry the fine-tuning config ``m``'s dropout / layerdrop / masking fields over onto ``cfg``.

    ``apply_mask: false`` (fairseq masks in fine-tuning only with ``apply_mask``) turns time and channel
    masking off; a config without ``apply_mask`` keeps the mask probabilities as given."""
    for theirs, ours, cast in _FT_OVERRIDES:
        if m.get(theirs) is not None:
            setattr(cfg, ours, cast(m[theirs]))
    if "apply_mask" in m and not m["apply_mask"]:
        cfg.mask_time_prob, cfg.mask_channel_prob = 0.0, 0.0
        log.info("%s: apply_mask is false: no time/channel masking (mask_time_prob = mask_channel_prob = 0)",
                 where)
    else:
        _log_unmapped_masking(m, where)
    return cfg


def _fill_missing_projection(enc: dict, cfg: SSLConfig, where) -> None:
    """fairseq has no ``post_extract_proj`` when the last conv layer already has encoder_embed_dim
    channels: give ours an identity weight and a zero bias, so the output is unchanged."""
    if "feature_projection.projection.weight" in enc or "feature_projection.projection.bias" in enc:
        return
    embed = int(cfg.conv_layers[-1][0])
    if embed != cfg.d_model:
        raise ConfigError(f"{where}: no post_extract_proj although the last conv layer has {embed} channels "
                          f"and encoder_embed_dim is {cfg.d_model}")
    like = enc.get("feature_projection.layer_norm.weight")
    dtype = like.dtype if like is not None else torch.float32
    enc["feature_projection.projection.weight"] = torch.eye(cfg.d_model, dtype=dtype)
    enc["feature_projection.projection.bias"] = torch.zeros(cfg.d_model, dtype=dtype)
    log.info("%s: no post_extract_proj (conv channels = encoder_embed_dim = %d): identity projection",
             where, embed)


def fairseq_label_sets(ckpt: dict) -> list:
    """Names of a HuBERT checkpoint's label sets (task ``labels``, e.g. ``["km"]``); [] when not recorded."""
    if ckpt.get("cfg") is not None:
        task = _as_dict(_as_dict(ckpt["cfg"]).get("task"))
    else:
        task = _as_dict(ckpt.get("args"))
    labels = task.get("labels") or []
    return [labels] if isinstance(labels, str) else [str(x) for x in labels]


def _hubert_head(enc_state: dict, cfg: SSLConfig, labels: list, where) -> dict:
    """HuBERT ``final_proj`` + ``label_embs_concat`` -> our head state; sets cfg.num_labels / final_dim.

    Refuses a model trained on several label sets: ``label_embs_concat`` stacks the embeddings of all
    dictionaries and the checkpoint does not record their sizes (and ``final_proj`` has one final_dim block
    per set with ``untie_final_proj``), so one head cannot be cut out of it."""
    embs, proj_w = enc_state["label_embs_concat"], enc_state["final_proj.weight"]
    dim = int(embs.shape[1])
    if proj_w.shape[0] % dim:
        raise ConfigError(f"{where}: HuBERT final_proj has {proj_w.shape[0]} outputs, not a multiple of the "
                          f"label embedding size {dim}")
    n_sets = max(len(labels), proj_w.shape[0] // dim)
    if n_sets > 1:
        names = ", ".join(labels) if labels else "not recorded"
        raise ConfigError(f"{where}: HuBERT checkpoint trained on {n_sets} label sets (labels: {names}): its "
                          f"label_embs_concat stacks the {embs.shape[0]} embeddings of all sets without recording "
                          "where one set ends, so its masked-prediction head cannot be imported (one set of "
                          "targets only)")
    cfg.num_labels, cfg.final_dim = int(embs.shape[0]), dim
    return {"head.label_embs": embs, "head.final_proj.weight": proj_w,
            "head.final_proj.bias": enc_state["final_proj.bias"]}


def import_fairseq(path, kind: str = "auto", trust: bool = False, w2v_path=None):
    """Load a fairseq checkpoint file into an SSLModel (``kind="ssl"``) or CTCModel (``"ctc"``).

    ``trust=True`` allows full unpickling of a file that needs more than :func:`fairseq_safe_globals`.
    ``w2v_path``: the pre-training checkpoint of a fine-tuned one without ``w2v_args``, when the path it
    records (``cfg.model.w2v_path``) does not exist here (see :func:`pretraining_model_cfg`).
    """
    path = Path(path)
    ckpt = load_fairseq_file(path, trust=trust)
    state = ckpt["model"]
    m = fairseq_model_cfg(ckpt, path)
    finetuned = any(k.startswith("w2v_encoder.") for k in state)
    if finetuned:  # CTC fine-tuned: pre-training config in w2v_args (or the w2v_path file), overridden by m
        cfg = fairseq_cfg_to_ssl(pretraining_model_cfg(m, path, w2v_path, trust), path)
        apply_finetune_overrides(cfg, m, path)
        prefix = "w2v_encoder.w2v_model."
        enc_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    else:
        cfg = fairseq_cfg_to_ssl(m, path)
        _log_unmapped_masking(m, path)
        enc_state = state
    enc = _convert_encoder(enc_state, path)
    _fill_missing_projection(enc, cfg, path)
    if "masking.masked_spec_embed" not in enc:
        enc["masking.masked_spec_embed"] = torch.rand(cfg.d_model)
    head_state = {}
    if cfg.arch == "hubert" and "label_embs_concat" in enc_state and not finetuned:
        head_state = _hubert_head(enc_state, cfg, fairseq_label_sets(ckpt), path)
    if kind == "auto":
        kind = "ctc" if finetuned else "ssl"
    if kind == "ctc":
        from ..ctc import CTCModel
        if "w2v_encoder.proj.weight" not in state:
            raise ConfigError(f"{path}: no w2v_encoder.proj: not a CTC fine-tuned checkpoint")
        vocab = state["w2v_encoder.proj.weight"].shape[0]
        with torch.device("meta"):  # no initialisation, no memory: the checkpoint's tensors are assigned
            model = CTCModel(cfg, vocab, final_dropout=float(m.get("final_dropout", 0.0)))
        load_state_dict_checked(model.encoder, enc, path, assign=True)
        load_state_dict_checked(model.head, {"proj.weight": state["w2v_encoder.proj.weight"],
                                             "proj.bias": state["w2v_encoder.proj.bias"]}, path, assign=True)
    elif kind == "ssl":
        with torch.device("meta"):
            model = SSLModel(cfg)
        load_state_dict_checked(model, {**enc, **head_state}, path, assign=True)
    else:
        raise ConfigError(f"kind must be auto, ssl or ctc, got '{kind}'")
    check_materialised(model, path)
    return model.eval()
