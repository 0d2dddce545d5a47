"""Held-out masked-LM loss of a Hugging Face text model (the zoo's text teachers), comparable across
vocabularies.

    >>> from speechkd.models.text_eval import evaluate_mlm
    >>> r = evaluate_mlm("exp/zoo/text_ml", ["hello world", "guten tag"], seed=0, rounds=5)
    >>> r["loss"], r["ppl"], r["nll_per_char"], r["bits_per_char"]

Masking is deterministic (``torch.Generator`` seeded with ``seed``; ``rounds`` independent passes over the
texts), and every chosen token is replaced by ``<mask>`` (no 80/10/10 noise: a measurement, not
training). ``loss`` is the mean cross-entropy per masked token (nats) and ``ppl = exp(loss)``; these
depend on the tokenizer. ``nll_per_char`` divides the summed NLL by the characters the masked tokens cover
(the word-boundary mark counts as the one space it stands for), so models with different vocabularies can
be compared on the same text (``bits_per_char = nll_per_char / ln 2``).

Command line (prints one JSON object)::

    speechkd-eval-text-model --model exp/zoo/text_ml --text data/test/text      # Kaldi text
    speechkd-eval-text-model --model exp/zoo/text_ml --lines held_out.txt --seed 0 --rounds 5
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from ..utils.errors import ConfigError


@torch.no_grad()
def evaluate_mlm(model_dir, texts: Sequence[str], mask_prob: float = 0.15, seed: int = 0, rounds: int = 5,
                 batch_size: int = 32, max_length: int = 64, model=None, tokenizer=None) -> dict:
    """MLM loss of the model in ``model_dir`` (or the given ``model``/``tokenizer``) on ``texts``."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise ConfigError("no text to evaluate the masked LM on")
    if model is None or tokenizer is None:
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise ConfigError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForMaskedLM.from_pretrained(str(model_dir), local_files_only=True)
    model = model.eval()
    gen = torch.Generator().manual_seed(seed)
    piece_chars = {}
    nll = n_tok = n_chars = 0.0
    for _ in range(rounds):
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                            max_length=max_length, return_special_tokens_mask=True)
            ids = enc["input_ids"]
            special = enc["special_tokens_mask"].bool() | ~enc["attention_mask"].bool()
            probs = torch.full(ids.shape, mask_prob).masked_fill_(special, 0.0)
            chosen = torch.bernoulli(probs, generator=gen).bool()
            if not chosen.any():
                continue
            inputs = ids.masked_fill(chosen, tokenizer.mask_token_id)
            logits = model(input_ids=inputs, attention_mask=enc["attention_mask"]).logits.float()
            lp = torch.log_softmax(logits[chosen], dim=-1)
            target = ids[chosen]
            nll += float(-lp.gather(1, target[:, None]).sum())
            n_tok += int(chosen.sum())
            for t in target.tolist():
                if t not in piece_chars:
                    piece = tokenizer.convert_ids_to_tokens(t)
                    piece_chars[t] = max(1, len(piece))  # '▁' stands for one space
                n_chars += piece_chars[t]
    if n_tok == 0:
        raise ConfigError("no token was masked (texts too short or mask_prob 0)")
    loss = nll / n_tok
    per_char = nll / n_chars
    return {"loss": loss, "ppl": math.exp(loss), "nll_per_char": per_char, "bits_per_char": per_char / math.log(2),
            "masked_tokens": int(n_tok), "masked_chars": int(n_chars), "texts": len(texts), "rounds": rounds,
            "seed": seed, "mask_prob": mask_prob, "vocab_size": int(model.config.vocab_size),
            "num_params": int(sum(p.numel() for p in model.parameters()))}
