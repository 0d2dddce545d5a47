"""Export our SSL models (waveform-CNN front-end) to a Hugging Face directory.

``SSLModel`` -> ``Wav2Vec2Model`` / ``HubertModel`` (by ``cfg.arch``), ``CTCModel`` -> ``*ForCTC``;
written with ``save_pretrained`` (safetensors) into a temporary directory that is renamed at the end,
so a failed export never leaves a half-written directory.

Example::

    export_huggingface("exp/teacher", "exp/teacher_hf")
    transformers.Wav2Vec2Model.from_pretrained("exp/teacher_hf")
"""
from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from ...utils.errors import ConfigError
from ...utils.fileio import atomic_dir
from ..checkpoint import load_checkpoint
from ..ssl import SSLConfig, SSLModel

log = logging.getLogger("speechkd")


def ssl_config_to_hf(cfg: SSLConfig) -> dict:
    """Our :class:`SSLConfig` -> HF Wav2Vec2Config / HubertConfig keyword arguments."""
    if cfg.frontend != "cnn":
        raise ConfigError(f"cannot export a '{cfg.frontend}' front-end to Hugging Face (only the waveform CNN)")
    if cfg.pos_conv_kernel <= 0:
        raise ConfigError("cannot export a model without positional conv (pos_conv_kernel=0)")
    if cfg.arch == "wav2vec2" and not cfg.proj_layer_norm:
        raise ConfigError("Wav2Vec2Model always has a feature-projection LayerNorm (proj_layer_norm=false)")
    kw = dict(
        conv_dim=[c[0] for c in cfg.conv_layers], conv_kernel=[c[1] for c in cfg.conv_layers],
        conv_stride=[c[2] for c in cfg.conv_layers], num_feat_extract_layers=len(cfg.conv_layers),
        feat_extract_norm="group" if cfg.conv_norm == "group_norm" else "layer", conv_bias=cfg.conv_bias,
        hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        intermediate_size=cfg.ffn_dim, do_stable_layer_norm=cfg.layer_norm_first,
        num_conv_pos_embeddings=cfg.pos_conv_kernel, num_conv_pos_embedding_groups=cfg.pos_conv_groups,
        hidden_dropout=cfg.dropout, attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout, feat_proj_dropout=cfg.proj_dropout, layerdrop=cfg.layerdrop,
        layer_norm_eps=cfg.layer_norm_eps, mask_time_prob=cfg.mask_time_prob, mask_time_length=cfg.mask_time_length,
        mask_time_min_masks=cfg.mask_time_min_masks, mask_feature_prob=cfg.mask_channel_prob,
        mask_feature_length=cfg.mask_channel_length, hidden_act="gelu", feat_extract_activation="gelu")
    if cfg.arch == "hubert":
        kw["feat_proj_layer_norm"] = cfg.proj_layer_norm
    return kw


def _to_hf_state(encoder: SSLModel, hf_keys, prefix: str) -> dict:
    """Our encoder state -> HF key names (matching the target model's weight-norm key style)."""
    new_style = any("parametrizations.weight.original0" in k for k in hf_keys)
    out = {}
    for k, v in encoder.state_dict().items():
        if k.startswith("head."):
            continue
        if k == "masking.masked_spec_embed":
            k = "masked_spec_embed"
        elif not new_style:
            k = k.replace("parametrizations.weight.original0", "weight_g").replace(
                "parametrizations.weight.original1", "weight_v")
        out[prefix + k] = v
    return out


def build_hf_model(model: nn.Module):
    """Our SSLModel / CTCModel -> an equivalent transformers model (weights copied)."""
    import transformers
    from ..ctc import CTCModel

    is_ctc = isinstance(model, CTCModel)
    encoder = model.encoder if is_ctc else model
    if not isinstance(encoder, SSLModel):
        raise ConfigError(f"cannot export {type(model).__name__} to Hugging Face (SSLModel or CTCModel only)")
    cfg = encoder.cfg
    hub = cfg.arch == "hubert"
    kw = ssl_config_to_hf(cfg)
    if is_ctc:
        kw.update(vocab_size=model.vocab_size, final_dropout=model.final_dropout, pad_token_id=0)
    hf_cfg = (transformers.HubertConfig if hub else transformers.Wav2Vec2Config)(**kw)
    name = ("Hubert" if hub else "Wav2Vec2") + ("ForCTC" if is_ctc else "Model")
    hf = getattr(transformers, name)(hf_cfg)
    hf_keys = set(hf.state_dict())
    prefix = ("hubert." if hub else "wav2vec2.") if is_ctc else ""
    state = _to_hf_state(encoder, hf_keys, prefix)
    if is_ctc:
        state["lm_head.weight"] = model.head.proj.weight
        state["lm_head.bias"] = model.head.proj.bias
    if prefix + "masked_spec_embed" not in hf_keys:
        state.pop(prefix + "masked_spec_embed", None)
    missing, unexpected = sorted(hf_keys - set(state)), sorted(set(state) - hf_keys)
    if missing or unexpected:
        raise ConfigError(f"export to {name}: key mismatch (missing {missing[:3]}, unexpected {unexpected[:3]})")
    hf.load_state_dict(state, strict=True)
    if encoder.head is not None:
        log.warning("export: the HuBERT prediction head (final_proj, label_embs) has no place in %s; dropped", name)
    if encoder.cfg.feature_padding != "lengths":
        log.warning("export: %s marks padded frames by conv output lengths, this model by fairseq HuBERT's rule "
                    "(feature_padding=%s): outputs agree on unpadded input, not on every frame of a padded "
                    "batch", name, encoder.cfg.feature_padding)
    return hf.eval()


def export_huggingface(src, out_dir) -> Path:
    """Export a checkpoint directory (or a model object) to a HF directory ``out_dir``."""
    model = src if isinstance(src, nn.Module) else load_checkpoint(src)[0]
    hf = build_hf_model(model)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        hf.save_pretrained(tmp, safe_serialization=True)
    return out_dir
