"""Random-weight checkpoints of the papers' architectures, for dry runs of the real-corpus recipes.

A dry run (``./run.sh --conf_tag dryrun``) trains the paper-size models for a few updates on a fake corpus
before a cluster job. No weights can be downloaded, so its teacher is the paper's architecture with random
weights, in one of two formats:

- ``hf``: the Hugging Face directory a user would pass (config.json + safetensors), read back by the same
  importer (``speechkd-import-checkpoint``) a real one goes through. HF's HubertModel has no pre-training
  head (no codebook), like the published HF HuBERT checkpoints.
- ``speechkd``: a speechkd checkpoint dir (config.yaml + model.pt) built from :mod:`speechkd.models.ssl`'s
  factories, with HuBERT's masked-prediction head (504 labels, final_dim 256, as fairseq's
  hubert_base_ls960.pt has): what an import of the fairseq file gives, so L_disc students can run.

Example::

    write_random_checkpoint("hubert_base", "exp/dryrun/hubert_base_hf", fmt="hf")    # 94.4M params
    write_random_checkpoint("hubert_base", "exp/dryrun/hubert_base", fmt="speechkd")   # + HuBERT head
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("speechkd")

# arch -> (transformers class, its config class, config fields, speechkd.models.ssl factory)
ARCHS = {
    # HuBERT Base (hubert_base_ls960): 12 x 768, group-norm CNN without conv bias
    "hubert_base": ("HubertModel", "HubertConfig", {}, "hubert_base"),
    # wav2vec 2.0 Base
    "wav2vec2_base": ("Wav2Vec2Model", "Wav2Vec2Config", {}, "wav2vec2_base"),
    # XLSR-53 (and XLS-R 300M, the same shape): 24 x 1024, layer-norm CNN with bias, pre-LN transformer
    "xlsr_53": ("Wav2Vec2Model", "Wav2Vec2Config", {
        "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
        "feat_extract_norm": "layer", "conv_bias": True, "do_stable_layer_norm": True}, "xlsr_large"),
}
FORMATS = ("hf", "speechkd")
# text teachers: arch -> XLMRobertaConfig fields (InfoXLM base = XLM-R base: 12 x 768, 250,002 word pieces)
TEXT_ARCHS = {
    "infoxlm_base": {"vocab_size": 250002, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1,
                     "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2},
}


def write_random_text_model(arch: str, out, texts, seed: int = 0, vocab_size: int = 1000) -> Path:
    """A Hugging Face masked-LM dir of text architecture ``arch`` (a key of :data:`TEXT_ARCHS`) with random
    weights, and a tokenizer: a sentencepiece unigram model of ``vocab_size`` pieces trained on ``texts``
    (the real tokenizer's 250k pieces cannot be downloaded; the model keeps the real vocabulary size, so its
    embedding has the paper's shape and only the first pieces are ever used). ``AutoTokenizer`` /
    ``AutoModel`` load it offline, like a local copy of microsoft/infoxlm-base. Written whole or not at all."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from ...utils.errors import ConfigError
    from ...utils.fileio import atomic_dir
    from ..text import tokenizer_from_sentencepiece, train_sentencepiece

    if arch not in TEXT_ARCHS:
        raise ConfigError(f"unknown text architecture '{arch}' (known: {', '.join(sorted(TEXT_ARCHS))})")
    torch.manual_seed(seed)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(**TEXT_ARCHS[arch])).eval()
    out = Path(out)
    with atomic_dir(out) as tmp:
        tok = tokenizer_from_sentencepiece(train_sentencepiece(list(texts), tmp, vocab_size=vocab_size))
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(str(tmp))
    log.info("random %s (%d x %d, %.1fM params; tokenizer: %d pieces of the given text) -> %s", arch,
             model.config.num_hidden_layers, model.config.hidden_size,
             sum(p.numel() for p in model.parameters()) / 1e6, len(tok), out)
    return out


def write_random_checkpoint(arch: str, out, fmt: str = "hf", seed: int = 0) -> Path:
    """Write ``arch`` (a key of :data:`ARCHS`) with random weights (``seed``) to ``out`` in format ``fmt``.

    The directory is written whole or not at all (a temporary sibling renamed into place)."""
    import torch

    from ...utils.errors import ConfigError
    from ...utils.fileio import atomic_dir

    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture '{arch}' (known: {', '.join(sorted(ARCHS))})")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown checkpoint format '{fmt}' (known: {', '.join(FORMATS)})")
    model_cls, cfg_cls, fields, factory = ARCHS[arch]
    torch.manual_seed(seed)
    out = Path(out)
    if fmt == "hf":
        import transformers

        model = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**fields))
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
        shape = (model.config.num_hidden_layers, model.config.hidden_size)
    else:
        from .. import ssl
        from ..checkpoint import save_checkpoint

        model = getattr(ssl, factory)()
        save_checkpoint(out, model, {"model": model.model_config(), "source": {"random": arch, "seed": seed}})
        shape = (model.cfg.n_layers, model.cfg.d_model)
    log.info("random %s (%d x %d, %.1fM params, %s format) -> %s", arch, *shape,
             sum(p.numel() for p in model.parameters()) / 1e6, fmt, out)
    return out
