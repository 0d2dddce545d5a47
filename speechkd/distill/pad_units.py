"""PAD's units: for every paired utterance, the spans of each granularity in encoder frames, their text
targets (the frozen text model's states, pooled per unit) and their prior weights, computed once before
distillation (:func:`build_unit_table`), then standardised with the training set's statistics
(:func:`normalise_unit_tables`). :mod:`speechkd.distill.pad_train` trains on them.

* ``utterance``: the whole utterance ↔ mean of the text model's word-piece states;
* ``word``: frames of each ``words.ctm`` span (or letter-count spans, ``units.ctm_fallback: chars``) ↔ the
  word's word pieces mean-pooled;
* ``subword``: each word span split among its pieces by characters ↔ each piece's state;
* ``phone``: frames of each ``phones.ctm`` span ↔ the state of the word piece that holds the phone's midpoint.

Priors (``prior.<granularity>``): ``uniform``, ``frequency`` (inverse training-set frequency of the unit
label), ``duration``.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..align.ctm import read_ctm
from ..data.datadir import DataDir, read_kv
from ..utils.errors import ConfigError, DataError
from .pad import (TARGET_NORMS, duration_prior, frame_spans_from_ctm, frequency_prior, mean_pairwise_cosine,
                  normalise_prior, normalise_targets, split_span, target_statistics, uniform_prior)

log = logging.getLogger("speechkd")

GRANULARITIES = ("utterance", "word", "subword", "phone")
PRIORS = ("uniform", "frequency", "duration")


def char_spans(words: Sequence[str], num_frames: int) -> List[Tuple[int, int]]:
    """Word frame spans without an alignment: ``num_frames`` divided in proportion to letters."""
    return split_span((0, max(1, num_frames)), [len(w) for w in words])


class TextUnits:
    """Text-model targets of one transcript: piece states, their words and labels.

    ``pieces`` (N, D) word-piece states (specials removed), ``piece_words`` word index of each piece,
    ``piece_labels`` piece strings (frequency-prior labels), ``piece_chars`` letters per piece,
    ``words`` (W, D) per-word means, ``utterance`` (1, D) mean of the pieces.
    """

    def __init__(self, pieces: Tensor, piece_words: List[int], piece_labels: List[str], piece_chars: List[int]):
        self.pieces, self.piece_words = pieces, piece_words
        self.piece_labels, self.piece_chars = piece_labels, piece_chars
        n_words = max(piece_words) + 1 if piece_words else 0
        idx = torch.tensor(piece_words, dtype=torch.long)
        D = pieces.shape[-1]
        sums = pieces.new_zeros(n_words, D).index_add(0, idx, pieces) if n_words else pieces.new_zeros(0, D)
        counts = torch.bincount(idx, minlength=n_words).clamp_min(1).to(pieces.dtype) if n_words else None
        self.words = sums / counts[:, None] if n_words else sums
        self.utterance = pieces.mean(0, keepdim=True) if len(pieces) else pieces.new_zeros(1, D)


@torch.no_grad()
def encode_text_units(tokenizer, model, texts: Sequence[str], layer: int = -1, batch_size: int = 32,
                      max_length: int = 256) -> List[TextUnits]:
    """Run a HF encoder over ``texts`` → one :class:`TextUnits` per text (word = whitespace word)."""
    out = []
    for i in range(0, len(texts), batch_size):
        chunk = list(texts[i:i + batch_size])
        batch = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        h = model(**batch, output_hidden_states=True).hidden_states[layer].float()
        for b in range(len(chunk)):
            wid = batch.word_ids(b)
            keep = [k for k, w in enumerate(wid) if w is not None]
            toks = tokenizer.convert_ids_to_tokens(batch["input_ids"][b, keep].tolist())
            labels = [str(t) for t in toks]
            chars = [len(t.replace("\u2581", "")) for t in labels]
            out.append(TextUnits(h[b, keep].contiguous(), [int(wid[k]) for k in keep], labels, chars))
    return out


def _unit_record(utt: str, tu: TextUnits, words_ctm, phones_ctm, num_frames: int, frame_rate: float,
                 words_text: List[str], granularities: Sequence[str]) -> dict:
    """Spans, text targets, labels and durations of one utterance for each granularity."""
    n_words = tu.words.shape[0]
    if words_ctm is None:        # no alignment: the text model's own words, spans from their letters
        letters = [0] * n_words
        for w, c in zip(tu.piece_words, tu.piece_chars):
            letters[w] += c
        if len(words_text) != n_words:   # the tokenizer splits differently (punctuation): its words
            words_text = ["".join(l for l, w in zip(tu.piece_labels, tu.piece_words) if w == k).lstrip("\u2581")
                          for k in range(n_words)]
        wspans = split_span((0, max(1, num_frames)), letters)
    elif n_words != len(words_text):
        raise DataError(None, None, f"{utt}: the text model sees {n_words} words, the transcript has "
                        f"{len(words_text)}")
    else:
        if [e.token for e in words_ctm] != words_text:
            raise DataError(None, None, f"{utt}: words.ctm words {[e.token for e in words_ctm]} differ from "
                            f"the transcript {words_text}")
        wspans = frame_spans_from_ctm([(e.start, e.dur) for e in words_ctm], frame_rate, num_frames)
    rec = {"spans": {}, "text": {}, "labels": {}, "durations": {}}
    if "utterance" in granularities:
        rec["spans"]["utterance"] = [(0, num_frames)]
        rec["text"]["utterance"] = tu.utterance
        rec["labels"]["utterance"] = ["<utt>"]
        rec["durations"]["utterance"] = [float(num_frames)]
    if "word" in granularities:
        rec["spans"]["word"] = wspans
        rec["text"]["word"] = tu.words
        rec["labels"]["word"] = list(words_text)
        rec["durations"]["word"] = [float(e - s) for s, e in wspans]
    pspans: List[Tuple[int, int]] = []
    for w, span in enumerate(wspans):
        idx = [k for k, pw in enumerate(tu.piece_words) if pw == w]
        pspans += split_span(span, [tu.piece_chars[k] for k in idx])
    if "subword" in granularities:
        rec["spans"]["subword"] = pspans
        rec["text"]["subword"] = tu.pieces
        rec["labels"]["subword"] = list(tu.piece_labels)
        rec["durations"]["subword"] = [float(e - s) for s, e in pspans]
    if "phone" in granularities:
        if phones_ctm is None:
            raise DataError(None, None, f"{utt}: phone granularity needs phones.ctm")
        phspans = frame_spans_from_ctm([(e.start, e.dur) for e in phones_ctm], frame_rate, num_frames)
        owner = []
        for s, e in phspans:
            mid = 0.5 * (s + e)
            dist = [0.0 if a <= mid < b else min(abs(mid - a), abs(mid - b)) for a, b in pspans]
            owner.append(min(range(len(dist)), key=dist.__getitem__))
        rec["spans"]["phone"] = phspans
        rec["text"]["phone"] = tu.pieces[owner] if owner else tu.pieces.new_zeros(0, tu.pieces.shape[-1])
        rec["labels"]["phone"] = [e.token for e in phones_ctm]
        rec["durations"]["phone"] = [float(e - s) for s, e in phspans]
    return rec


def add_priors(table: Dict[str, dict], prior_cfg: dict, granularities: Sequence[str]) -> Dict[str, Counter]:
    """Fill ``rec["weights"][g]`` of every record with the configured prior; returns the label counts."""
    counts = {g: Counter(l for rec in table.values() for l in rec["labels"][g]) for g in granularities}
    for rec in table.values():
        rec["weights"] = {}
        for g in granularities:
            kind = prior_cfg.get(g, "uniform")
            if kind == "uniform":
                w = uniform_prior(len(rec["labels"][g]))
            elif kind == "frequency":
                w = frequency_prior(rec["labels"][g], counts[g], float(prior_cfg["alpha"]),
                                    float(prior_cfg["smoothing"]))
            elif kind == "duration":
                w = duration_prior(rec["durations"][g])
            else:
                raise ConfigError(f"prior.{g}: unknown prior '{kind}' (choose from {PRIORS})")
            rec["weights"][g] = normalise_prior(w)
    return counts


def build_unit_table(data_dir, text_model, granularities: Sequence[str], frame_rate: float,
                     subsampling, units_cfg: dict, prior_cfg: dict, text_layer: int = -1,
                     input_lengths: Optional[Dict[str, int]] = None) -> Dict[str, dict]:
    """Unit records (spans, text targets, prior weights) of every utterance of ``data_dir``.

    ``text_model``: a HF model dir (tokenizer + encoder) or a ``(tokenizer, model)`` pair;
    ``subsampling``: callable input lengths (LongTensor) → encoder frames; ``input_lengths``: utt → input
    length (fbank frames or samples; default ``utt2num_frames``); ``frame_rate``: encoder frames/s.
    """
    d = DataDir(data_dir)
    texts = dict(read_kv(d.file(units_cfg["text_file"])))
    if input_lengths is None:
        input_lengths = {u: int(v) for u, v in read_kv(d.file("utt2num_frames")).items()}
    nframes = dict(input_lengths)
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad:
        raise ConfigError(f"pad.granularities: unknown '{bad[0]}' (choose from {GRANULARITIES})")
    wctm = pctm = None
    if any(g in granularities for g in ("word", "subword", "phone")):
        if d.has(units_cfg["words_ctm"]):
            wctm = read_ctm(d.file(units_cfg["words_ctm"]))
        elif units_cfg["ctm_fallback"] != "chars":
            raise DataError(d.file(units_cfg["words_ctm"]), None,
                            "not found: word/sub-word granularities need word times (or units.ctm_fallback=chars)")
        else:
            log.warning("%s: no %s: word spans from letter counts", data_dir, units_cfg["words_ctm"])
    if "phone" in granularities:
        if not d.has(units_cfg["phones_ctm"]):
            raise DataError(d.file(units_cfg["phones_ctm"]), None, "not found: the phone granularity needs it")
        pctm = read_ctm(d.file(units_cfg["phones_ctm"]))
    if isinstance(text_model, (str, Path)):
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(text_model), local_files_only=True)
        enc = AutoModel.from_pretrained(str(text_model), local_files_only=True).eval()
    else:
        tok, enc = text_model
    utts = [u for u in nframes if u in texts]
    if len(utts) < len(nframes):
        log.warning("%s: %d utterances without a transcript skipped", data_dir, len(nframes) - len(utts))
    from ..utils.progress import progress as progress_bar

    tus = []
    for i in progress_bar(range(0, len(utts), 64), desc="text units", leave=False):
        tus += encode_text_units(tok, enc, [texts[u] for u in utts[i:i + 64]], text_layer)
    enc_frames = subsampling(torch.tensor([nframes[u] for u in utts]))
    table = {}
    for u, tu, nf in zip(utts, tus, enc_frames.tolist()):
        try:
            table[u] = _unit_record(u, tu, wctm.get(u) if wctm is not None else None,
                                    pctm.get(u) if pctm is not None else None, int(nf), frame_rate,
                                    texts[u].split(), granularities)
        except DataError as e:
            raise DataError(d.file(units_cfg["text_file"]), None, str(e).split(": ", 1)[-1]) from None
    add_priors(table, prior_cfg, granularities)
    return table


def normalise_unit_tables(train_table: Dict[str, dict], other_tables: Sequence[Dict[str, dict]],
                          granularities: Sequence[str], mode: str) -> Dict[str, Dict[str, float]]:
    """Normalise every table's text targets in place with the training table's statistics per granularity
    (:func:`~speechkd.distill.pad.normalise_targets`); returns a summary per granularity: mean pairwise
    cosine of (at most 512) training targets before and after, and the mean's norm."""
    if mode not in TARGET_NORMS:
        raise ConfigError(f"pad.target_norm: unknown '{mode}' (choose from {', '.join(TARGET_NORMS)})")
    summary = {}
    for g in granularities:
        rows = [r["text"][g] for r in train_table.values()]
        if not any(t.numel() for t in rows):
            continue
        mean, std = target_statistics(rows)
        before = mean_pairwise_cosine(rows)
        for table in (train_table, *other_tables):
            for r in table.values():
                r["text"][g] = normalise_targets(r["text"][g], mean, std, mode)
        summary[g] = {"cos_before": round(before, 3), "cos_after": round(mean_pairwise_cosine(
            [r["text"][g] for r in train_table.values()]), 3), "mean_norm": round(float(mean.norm()), 3)}
    return summary
