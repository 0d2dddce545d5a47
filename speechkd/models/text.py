"""Frozen text teachers (InfoXLM / XLM-R style Hugging Face encoders) and a mini masked-LM trainer.

Loading a real teacher (any HF encoder saved on local disk; nothing is downloaded)::

    enc = TextEncoder("/models/infoxlm-base", layer=-1)     # frozen, eval mode
    states = enc.encode(["hello world", "guten tag"])       # list of (N_i, D), padding (and <s>, </s>) removed
    words = enc.encode_words(["hello world"])               # list of (W_i, D): word pieces mean-pooled per word

Training the mini text teacher of the mini recipes (own sentencepiece vocabulary, tiny
``XLMRobertaForMaskedLM``), saved in HF format so that ``TextEncoder`` / ``AutoModel`` /
``AutoTokenizer`` load it offline::

    result = train_mini_mlm(texts, "exp/text_teacher", vocab_size=500, n_layers=2, d_model=128, steps=300)
    result["losses"]     # MLM loss per step

The tokenizer: transformers 5's ``XLMRobertaTokenizer`` is a ``tokenizers`` Unigram model; we train a
sentencepiece unigram model (identity normalisation, ids ``<s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4``)
and pass its pieces and scores as the tokenizer's vocabulary, so ``tokenizer.json`` is written by
``save_pretrained`` and loads back with ``AutoTokenizer`` offline. The sentencepiece model is kept
beside it as ``spm.model`` (same pieces and ids) for tools that want it.

Command line (one job: train and save the mini text teacher)::

    python -m speechkd.models.text --text data/train/text --out exp/text_teacher \
        --vocab-size 500 --layers 2 --dim 128 --steps 300
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_dir

log = logging.getLogger("speechkd")

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


# ------------------------------------------------------------------------------------ teacher
class TextEncoder:
    """A frozen HF text encoder from a local directory.

    Args:
        model_dir: directory with ``config.json``, weights and tokenizer files.
        layer: hidden-state index to return (HF convention: 0 = embeddings, -1 = last layer).
        device: torch device.
    """

    def __init__(self, model_dir, layer: int = -1, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise ConfigError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.layer, self.device = layer, device
        self.dim = self.model.config.hidden_size

    @torch.no_grad()
    def _run(self, texts: Sequence[str], layer: Optional[int], max_length: int):
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True,
                               max_length=max_length)
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        out = self.model(**inputs, output_hidden_states=True)
        h = out.hidden_states[self.layer if layer is None else layer]
        return batch, h

    def encode(self, texts: Sequence[str], layer: Optional[int] = None, drop_special: bool = True,
               batch_size: int = 32, max_length: int = 512) -> List[Tensor]:
        """Hidden states of ``layer`` for each text with padding removed: list of (N_i, D).

        ``drop_special`` removes ``<s>``/``</s>`` (so N_i = number of word pieces).
        """
        result = []
        for i in range(0, len(texts), batch_size):
            batch, h = self._run(texts[i:i + batch_size], layer, max_length)
            keep = batch["attention_mask"].bool()
            if drop_special:
                special = torch.tensor(
                    [self.tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
                     for ids in batch["input_ids"].tolist()], dtype=torch.bool)
                keep &= ~special
            result += [h[b][keep[b].to(h.device)].cpu() for b in range(h.shape[0])]
        return result

    def encode_words(self, texts: Sequence[str], layer: Optional[int] = None, batch_size: int = 32,
                     max_length: int = 512) -> List[Tensor]:
        """One vector per whitespace word (mean of its word pieces): list of (W_i, D)."""
        from ..distill.pad import pool_word_pieces

        result = []
        for i in range(0, len(texts), batch_size):
            batch, h = self._run(texts[i:i + batch_size], layer, max_length)
            for b in range(h.shape[0]):
                result.append(pool_word_pieces(h[b].cpu(), batch.word_ids(b)))
        return result


# --------------------------------------------------------------------------------- tokenizer
def train_sentencepiece(texts: Sequence[str], out_dir, vocab_size: int = 500) -> Path:
    """Train a unigram sentencepiece model with XLM-R's special ids; returns ``out_dir/spm.model``."""
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [t.strip() for t in texts if t.strip()]
    if not lines:
        raise ConfigError("no text to train the sentencepiece model on")
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "spm"), vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
            normalization_rule_name="identity", bos_id=0, pad_id=1, eos_id=2, unk_id=3,
            user_defined_symbols=["<mask>"], bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>",
            unk_piece="<unk>", minloglevel=2, num_threads=1)
        os.replace(Path(tmp) / "spm.model", out_dir / "spm.model")
    return out_dir / "spm.model"


def tokenizer_from_sentencepiece(spm_model):
    """A transformers ``XLMRobertaTokenizer`` with the pieces/scores of our sentencepiece model."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    if tuple(pieces[:5]) != SPECIALS:
        raise ConfigError(f"{spm_model}: first pieces must be {SPECIALS}, got {pieces[:5]}")
    vocab = [(p, float(sp.get_score(i)) if i >= len(SPECIALS) else 0.0) for i, p in enumerate(pieces)]
    return XLMRobertaTokenizer(vocab=vocab)


# ----------------------------------------------------------------------------------- MLM training
def mask_tokens(input_ids: Tensor, special_mask: Tensor, mask_id: int, vocab_size: int,
                mask_prob: float = 0.15, generator: Optional[torch.Generator] = None):
    """BERT masking: choose ``mask_prob`` of the non-special tokens; 80 % → <mask>, 10 % → random,
    10 % kept. Returns ``(inputs, labels)`` with labels −100 where not chosen."""
    probs = torch.full(input_ids.shape, mask_prob)
    probs.masked_fill_(special_mask, 0.0)
    chosen = torch.bernoulli(probs, generator=generator).bool()
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.clone()
    r = torch.rand(input_ids.shape, generator=generator)
    inputs[chosen & (r < 0.8)] = mask_id
    rand_pos = chosen & (r >= 0.8) & (r < 0.9)
    inputs[rand_pos] = torch.randint(len(SPECIALS), vocab_size, input_ids.shape, generator=generator)[rand_pos]
    return inputs, labels


def train_mini_mlm(texts: Sequence[str], out_dir, vocab_size: int = 500, n_layers: int = 2,
                   d_model: int = 128, n_heads: int = 2, ffn_dim: int = 512, steps: int = 300,
                   batch_size: int = 32, lr: float = 1e-3, max_length: int = 64, mask_prob: float = 0.15,
                   seed: int = 0, progress: bool = True, precision: str = "auto") -> dict:
    """Train a tiny ``XLMRobertaForMaskedLM`` on ``texts`` and save it in HF format to ``out_dir``.

    The directory is written under a temporary name and renamed at the end (a killed run leaves no
    half-written teacher). ``precision`` (``auto | fp32 | bf16``, see :mod:`speechkd.train.precision`):
    the forward/backward under CPU/GPU autocast, the cross-entropy in fp32; ``auto`` is bf16 on a CPU with
    avx512_bf16/amx_bf16. Returns ``{"losses": [...], "out_dir": Path, "num_params": int,
    "train_seconds": float, "precision": str, "model": XLMRobertaForMaskedLM (eval mode),
    "tokenizer": XLMRobertaTokenizer}``.
    """
    import time

    from ..train.precision import autocast, resolve_precision
    from ..utils.progress import progress as progress_bar
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    out_dir = Path(out_dir)
    texts = [t.strip() for t in texts if t.strip()]
    if len(texts) < 2:
        raise ConfigError("the mini MLM needs at least 2 non-empty texts")
    with atomic_dir(out_dir) as tmp:
        torch.manual_seed(seed)
        rng = random.Random(seed)
        gen = torch.Generator().manual_seed(seed)
        spm_path = train_sentencepiece(texts, tmp, vocab_size)
        tok = tokenizer_from_sentencepiece(spm_path)
        cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=d_model, num_hidden_layers=n_layers,
                               num_attention_heads=n_heads, intermediate_size=ffn_dim,
                               max_position_embeddings=max_length + 2 + 1, pad_token_id=tok.pad_token_id,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, type_vocab_size=1)
        model = XLMRobertaForMaskedLM(cfg).train()
        prec_name, dtype = resolve_precision(precision, torch.device("cpu"))
        t0 = time.time()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        warmup = max(1, steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
        losses = []
        for _ in progress_bar(range(steps), desc="mini MLM", progress=progress):
            batch_texts = [texts[rng.randrange(len(texts))] for _ in range(batch_size)]
            enc = tok(batch_texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                      return_special_tokens_mask=True)
            special = enc["special_tokens_mask"].bool() | ~enc["attention_mask"].bool()
            inputs, labels = mask_tokens(enc["input_ids"], special, tok.mask_token_id, len(tok), mask_prob, gen)
            chosen = labels != -100
            with autocast(torch.device("cpu"), dtype):
                # the vocabulary projection only at the masked positions (same loss, ~1/7 of its cost)
                hidden = model.roberta(input_ids=inputs, attention_mask=enc["attention_mask"]).last_hidden_state
                logits = model.lm_head(hidden[chosen])
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[chosen])
            if not torch.isfinite(loss):
                raise ConfigError(f"mini MLM: non-finite loss at step {len(losses)}")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        train_seconds = time.time() - t0
        model.eval()
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    n_params = sum(p.numel() for p in model.parameters())
    log.info("mini text teacher: %d params, MLM loss %.3f -> %.3f, saved to %s", n_params,
             losses[0], sum(losses[-10:]) / len(losses[-10:]), out_dir)
    return {"losses": losses, "out_dir": out_dir, "num_params": n_params, "train_seconds": train_seconds,
            "precision": prec_name, "model": model, "tokenizer": tok}


def random_text_model_like(src_dir, out_dir, seed: int = 0) -> Path:
    """A control teacher: the architecture and tokenizer of the HF masked LM in ``src_dir`` with freshly
    initialised weights (the transformers initialiser, ``seed``), saved to ``out_dir`` in the same format
    (temporary dir + rename). What a distillation term transfers from it is the text's structure (token
    identities, positions, lengths) but no learned knowledge: the row that tells whether a text teacher's
    training is what helps."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not (src_dir / "config.json").is_file():
        raise ConfigError(f"{src_dir}: not a Hugging Face model dir (no config.json)")
    cfg = AutoConfig.from_pretrained(str(src_dir), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(src_dir), local_files_only=True)
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(cfg).eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if (src_dir / "spm.model").is_file():
            shutil.copy2(src_dir / "spm.model", tmp / "spm.model")
    log.info("random-weight text model like %s (seed %d) -> %s", src_dir, seed, out_dir)
    return out_dir


def read_text_file(path) -> List[str]:
    """Transcripts from a Kaldi ``text`` file (``utt words...``): list of the word strings."""
    texts = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(maxsplit=1)
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(path, i, f"empty transcript for utterance '{parts[0]}'")
            texts.append(parts[1])
    return texts


def _main(argv=None):
    from ..utils.cli import parse_args

    p = argparse.ArgumentParser(description="Train the mini masked-LM text teacher (HF format).")
    p.add_argument("--text", required=True, nargs="+", help="Kaldi text file(s): utt words...")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=500)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = parse_args(p, argv, allow_overrides=False)
    texts = [t for path in args.text for t in read_text_file(path)]
    train_mini_mlm(texts, args.out, args.vocab_size, args.layers, args.dim, args.heads, 4 * args.dim,
                   args.steps, args.batch_size, args.lr, seed=args.seed)


def main(argv=None):
    from ..utils.cli import run_main

    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
