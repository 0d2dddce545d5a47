"""Import a local Hugging Face wav2vec 2.0 / HuBERT directory (``config.json`` + safetensors or .bin).

Supported: ``Wav2Vec2Model``, ``HubertModel``, ``Wav2Vec2ForPreTraining`` (encoder only),
``Wav2Vec2ForCTC`` / ``HubertForCTC`` (-> :class:`~speechkd.models.ctc.CTCModel`). transformers itself
is not needed: the config and weights are read directly.

Memory: safetensors files are memory-mapped and ``pytorch_model.bin`` is read with ``torch.load(mmap=True)``
(legacy non-zip ``.bin`` files, which cannot be mapped, are read whole); the model is built on the meta device
and the file's tensors become its parameters (``assign``), so no randomly initialised second copy is made.

Example::

    model = import_huggingface("/data/models/wav2vec2-base")        # SSLModel (or CTCModel for *ForCTC)
    model = import_huggingface("/data/models/wav2vec2-base-960h", kind="ssl")   # encoder only
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Tuple

import torch

from ...utils.errors import ConfigError
from ..checkpoint import check_materialised, load_state_dict_checked
from ..ssl import SSLConfig, SSLModel

log = logging.getLogger("speechkd")

_POS_CONV = "encoder.pos_conv_embed.conv."
# (HF name, our name) for the weight-norm pieces of the positional conv, old and new key styles
_WEIGHT_NORM_KEYS = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
    "parametrizations.weight.original0": "parametrizations.weight.original0",
    "parametrizations.weight.original1": "parametrizations.weight.original1",
}
_DROPPED = re.compile(r"^(quantizer\.|project_q\.|project_hid\.|adapter\.|layer_weights$|projector\.|classifier\.)")


def is_huggingface_dir(path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "config.json").exists()


def read_hf_config(path) -> dict:
    cfg_path = Path(path) / "config.json"
    if not cfg_path.exists():
        raise ConfigError(f"{path}: not a Hugging Face model directory (no config.json)")
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{cfg_path}:{e.lineno}: invalid JSON: {e.msg}") from None


def read_hf_state_dict(path) -> dict:
    """All tensors of a HF directory: model.safetensors, sharded safetensors, or pytorch_model.bin."""
    path = Path(path)
    if (path / "model.safetensors").exists():
        from safetensors.torch import load_file
        return load_file(str(path / "model.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.exists():
        from safetensors.torch import load_file
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(load_file(str(path / shard)))
        return state
    if (path / "pytorch_model.bin").exists():
        from ...utils.safe_load import safe_torch_load

        # weights only, memory-mapped; a legacy (pre-1.6, non-zip) file cannot be mapped and is read whole
        return safe_torch_load(path / "pytorch_model.bin", mmap=True)
    raise ConfigError(f"{path}: no model.safetensors or pytorch_model.bin")


def hf_config_to_ssl(hf: dict, where="config.json") -> SSLConfig:
    """Map a HF Wav2Vec2Config / HubertConfig dict to :class:`SSLConfig`."""
    model_type = hf.get("model_type", "wav2vec2")
    if model_type not in ("wav2vec2", "hubert"):
        raise ConfigError(f"{where}: model_type '{model_type}' is not supported (wav2vec2, hubert)")
    for key, ok in (("hidden_act", "gelu"), ("feat_extract_activation", "gelu")):
        if hf.get(key, ok) != ok:
            raise ConfigError(f"{where}: {key}={hf[key]!r} is not supported (only '{ok}')")
    for key in ("add_adapter", "conv_pos_batch_norm"):
        if hf.get(key):
            raise ConfigError(f"{where}: {key}=true is not supported")
    if hf.get("adapter_attn_dim") is not None:
        raise ConfigError(f"{where}: attention adapters (adapter_attn_dim) are not supported")
    norm = hf.get("feat_extract_norm", "group")
    if norm not in ("group", "layer"):
        raise ConfigError(f"{where}: feat_extract_norm '{norm}' is not supported")
    conv = [[int(d), int(k), int(s)] for d, k, s in zip(hf["conv_dim"], hf["conv_kernel"], hf["conv_stride"])]
    return SSLConfig(
        frontend="cnn", conv_layers=conv, conv_norm="group_norm" if norm == "group" else "layer_norm",
        conv_bias=bool(hf.get("conv_bias", False)), d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"], ffn_dim=hf["intermediate_size"],
        layer_norm_first=bool(hf.get("do_stable_layer_norm", False)),
        pos_conv_kernel=hf.get("num_conv_pos_embeddings", 128), pos_conv_groups=hf.get("num_conv_pos_embedding_groups", 16),
        proj_layer_norm=bool(hf.get("feat_proj_layer_norm", True)),
        dropout=hf.get("hidden_dropout", 0.1), attention_dropout=hf.get("attention_dropout", 0.1),
        activation_dropout=hf.get("activation_dropout", 0.0), proj_dropout=hf.get("feat_proj_dropout", 0.0),
        layerdrop=hf.get("layerdrop", 0.0), layer_norm_eps=hf.get("layer_norm_eps", 1e-5),
        mask_time_prob=hf.get("mask_time_prob", 0.05), mask_time_length=hf.get("mask_time_length", 10),
        mask_time_min_masks=hf.get("mask_time_min_masks", 2),
        mask_channel_prob=hf.get("mask_feature_prob", 0.0), mask_channel_length=hf.get("mask_feature_length", 10),
        arch=model_type)


def hf_key_to_ours(key: str):
    """HF encoder key (prefix already stripped) -> our SSLModel key, or None to drop it."""
    if _DROPPED.match(key):
        return None
    if key == "masked_spec_embed":
        return "masking.masked_spec_embed"
    if key.startswith(_POS_CONV):
        rest = key[len(_POS_CONV):]
        return _POS_CONV + _WEIGHT_NORM_KEYS.get(rest, rest)
    return key


def convert_hf_state_dict(state: dict, prefix: str = "") -> Tuple[dict, dict]:
    """Split a HF state dict into (our encoder state, other keys with their HF names)."""
    enc, other = {}, {}
    for k, v in state.items():
        if prefix and k.startswith(prefix):
            new = hf_key_to_ours(k[len(prefix):])
            if new is not None:
                enc[new] = v
        elif not prefix:
            new = hf_key_to_ours(k)
            if new is not None:
                enc[new] = v
        else:
            other[k] = v
    return enc, other


def _load_encoder(model: SSLModel, enc: dict, where) -> None:
    """Assign ``enc`` to a model built on the meta device."""
    if "masking.masked_spec_embed" not in enc:  # HF drops it when mask probabilities are 0
        enc["masking.masked_spec_embed"] = torch.rand(model.cfg.d_model)
    load_state_dict_checked(model, enc, where, assign=True)


def import_huggingface(path, kind: str = "auto"):
    """Load a HF directory into an :class:`SSLModel` (``kind="ssl"``) or :class:`CTCModel` (``"ctc"``).

    ``kind="auto"`` picks CTC for ``*ForCTC`` architectures. The model is returned in eval mode.
    """
    path = Path(path)
    hf = read_hf_config(path)
    cfg = hf_config_to_ssl(hf, path / "config.json")
    arch = (hf.get("architectures") or [""])[0]
    state = read_hf_state_dict(path)
    base = "hubert." if cfg.arch == "hubert" else "wav2vec2."
    prefixed = any(k.startswith(base) for k in state)
    if kind == "auto":
        kind = "ctc" if arch.endswith("ForCTC") or "lm_head.weight" in state else "ssl"
    enc, other = convert_hf_state_dict(state, base if prefixed else "")
    if kind == "ssl":
        with torch.device("meta"):   # no initialisation, no memory: the file's tensors are assigned
            model = SSLModel(cfg)
        _load_encoder(model, enc, path)
    elif kind == "ctc":
        from ..ctc import CTCModel
        if "lm_head.weight" not in other:
            raise ConfigError(f"{path}: no lm_head.weight: not a CTC model (use --kind ssl)")
        vocab = other["lm_head.weight"].shape[0]
        with torch.device("meta"):
            model = CTCModel(cfg, vocab, final_dropout=hf.get("final_dropout", 0.0))
        _load_encoder(model.encoder, enc, path)
        load_state_dict_checked(model.head, {"proj.weight": other["lm_head.weight"],
                                             "proj.bias": other["lm_head.bias"]}, path, assign=True)
    else:
        raise ConfigError(f"kind must be auto, ssl or ctc, got '{kind}'")
    check_materialised(model, path)
    dropped = [k for k in other if not k.startswith("lm_head.")]
    if dropped:
        log.info("import_huggingface: ignored %d keys not used by %s (e.g. %s)", len(dropped), kind, dropped[0])
    return model.eval()
