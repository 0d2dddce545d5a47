"""PAD training glue: distil a frozen text model into a speech SSL model (:mod:`speechkd.distill.pad`
losses). The intent classifier fine-tuned on the result lives in :mod:`speechkd.models.intent` and
:mod:`speechkd.train.intent`.

Distillation (``distill_pad``). For every paired utterance (audio + transcript, no intent label) the
units of each granularity are precomputed once (:func:`build_unit_table`):

* ``utterance``: the whole utterance ↔ mean of the text model's word-piece states;
* ``word``: frames of each ``words.ctm`` span ↔ the word's word pieces mean-pooled;
* ``subword``: each word span split among its pieces by characters (:func:`~speechkd.distill.pad.split_span`)
  ↔ each piece's state;
* ``phone``: frames of each ``phones.ctm`` span ↔ the state of the word piece that holds the phone's
  midpoint (the text model has no phones: a phone learns the sub-word it belongs to).

Without ``words.ctm`` (real corpora; ``units.ctm_fallback: chars``) the words are the text model's own
(its pre-tokenizer may split punctuation) and their spans the utterance's frames divided in proportion to
their letters. Fbank (``feats.scp`` + CMVN) and waveform-CNN (``wav.scp``) front-ends both work; the
encoder frame rate is taken from the model (50 Hz for the mini Fbank front-end). Each unit gets a prior weight
(``prior.<granularity>``: ``frequency`` = inverse training-set frequency of the unit label, ``duration``,
``uniform``). The text targets of each granularity are then standardised with the training set's mean and
per-dimension std (``pad.target_norm``: ``standardize`` | ``center`` | ``none``): a text model's pooled
states can be nearly collinear, and then a single constant speech output is close to the cosine/MSE optimum
(every cosine/MSE row of the first mini table collapsed onto one intent). Per step::

    out = speech_model(x, lengths)                                   # SSLOutput
    h = out.hidden_states[speech_layer]                              # (B, T', D)
    speech[g] = units_from_spans(h, out.lengths, spans[g])           # list of (U_b, D)
    loss, logs = PADLoss(speech, text_targets, prior_weights)        # + projection heads, σ_g

The structure of neither model changes: the saved ``exp/model`` is a plain SSL checkpoint (the
projection heads and σ_g are kept in ``train_state.pt`` only). Baselines are configs of the same code
(``pad.metric`` mse|cosine|infonce, ``pad.granularities: [utterance]``, ``prior: uniform``,
``pad.combine: fixed``).

Library use::

    cfg = load_config("conf/pad.yaml", defaults=PAD_DEFAULTS)
    distill_pad(cfg, "data/train", "exp/teacher/model", "exp/text_lm", "exp/pad/pad_seed1", valid_data="data/dev")
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..align.ctm import read_ctm
from ..data.datadir import DataDir, read_kv
from ..models.checkpoint import load_checkpoint
from ..models.ssl import SSLModel
from ..train.data import (DATA_DEFAULTS, copy_files_into, make_dataset, make_loader, resolve_cmvn,
                          units_per_second)
from ..train.optim import OPTIM_DEFAULTS
from ..train.rng import seed_everything
from ..train.trainer import TRAIN_DEFAULTS, Trainer
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_write_text
from .pad import (TARGET_NORMS, PADLoss, duration_prior, frame_spans_from_ctm, frequency_prior, mean_pool,
                  normalise_prior, normalise_targets, split_span, target_statistics, uniform_prior,
                  units_from_spans)

log = logging.getLogger("speechkd")

GRANULARITIES = ("utterance", "word", "subword", "phone")
PRIORS = ("uniform", "frequency", "duration")

#: Defaults of a PAD distillation config.
PAD_DEFAULTS: Dict = {
    "pad": {
        "granularities": ["utterance", "word", "subword", "phone"],
        "metric": "cosine",              # mse | cosine | infonce
        "combine": "uncertainty",        # uncertainty (adaptive) | fixed
        "fixed_weights": None,           # with combine=fixed: one weight per granularity (default 1 each)
        "temperature": 0.1,              # InfoNCE τ
        "target_norm": "standardize",    # none | center | standardize: text targets around their train mean
        "speech_layer": -1,              # hidden-state index of the speech model (HF convention)
        "text_layer": -1,                # hidden-state index of the text model
    },
    "prior": {"utterance": "uniform", "word": "frequency", "subword": "frequency", "phone": "duration",
              "alpha": 0.5, "smoothing": 1.0},
    "units": {"text_file": "text", "words_ctm": "words.ctm", "phones_ctm": "phones.ctm",
              "ctm_fallback": "error"},   # error | chars (word spans from letter counts when no words.ctm)
    "model": {"freeze_frontend": True, "mask": False},
    "data": dict(DATA_DEFAULTS),
    "optim": dict(OPTIM_DEFAULTS, lr=2e-4, warmup_steps=20),
    "train": dict(TRAIN_DEFAULTS, max_steps=200),
}


# =========================================================================================== units
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
        before = _mean_pairwise_cosine(rows)
        for table in (train_table, *other_tables):
            for r in table.values():
                r["text"][g] = normalise_targets(r["text"][g], mean, std, mode)
        summary[g] = {"cos_before": round(before, 3), "cos_after": round(_mean_pairwise_cosine(
            [r["text"][g] for r in train_table.values()]), 3), "mean_norm": round(float(mean.norm()), 3)}
    return summary


def _mean_pairwise_cosine(rows: Sequence[Tensor], limit: int = 512) -> float:
    x = torch.cat([t.float().reshape(-1, t.shape[-1]) for t in rows if t.numel()])[:limit]
    x = torch.nn.functional.normalize(x, dim=-1)
    n = x.shape[0]
    if n < 2:
        return 1.0
    sim = x @ x.t()
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


# ====================================================================================== distillation
class PADTask(nn.Module):
    """Speech model + :class:`PADLoss`; ``forward(batch) -> (loss, logs)`` using the unit table."""

    def __init__(self, model: SSLModel, loss_fn: PADLoss, table: Dict[str, dict], speech_layer: int = -1,
                 mask: bool = False):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn
        self.table, self.speech_layer, self.mask = table, speech_layer, mask

    def forward(self, batch):
        out = self.model(batch["x"], batch["x_lengths"], mask=self.mask and self.training)
        h = out.hidden_states[self.speech_layer]
        recs = [self.table[u] for u in batch["utts"]]
        speech, text, weights = {}, {}, {}
        for g in self.loss_fn.granularities:
            if g == "utterance":
                speech[g] = list(mean_pool(h, out.padding_mask)[:, None])
            else:
                speech[g] = units_from_spans(h, out.lengths, [r["spans"][g] for r in recs])
            text[g] = [r["text"][g].to(h.device) for r in recs]
            weights[g] = [r["weights"][g] for r in recs]
        loss, logs = self.loss_fn(speech, text, weights)
        if self.loss_fn.combine == "uncertainty":
            for g, w in zip(self.loss_fn.granularities, self.loss_fn.granularity_weights().tolist()):
                logs[f"w/{g}"] = w
        return loss, logs


def _task_step(task, batch):
    return task(batch)


@torch.no_grad()
def _validate_task(task, loader) -> Dict[str, float]:
    task.eval()
    tot: Dict[str, float] = {}
    n = 0
    for batch in loader:
        batch = {k: (v.to(next(task.parameters()).device) if isinstance(v, Tensor) else v) for k, v in batch.items()}
        _, logs = task(batch)
        for k, v in logs.items():
            tot[k] = tot.get(k, 0.0) + float(v)
        n += 1
    task.train()
    out = {k: v / max(n, 1) for k, v in tot.items()}
    out["loss"] = out.get("pad", 0.0)
    return out


def distill_pad(cfg: dict, train_data, init, text_model, exp_dir, valid_data=None) -> Path:
    """PAD (or a metric baseline) from the text model ``text_model`` into the SSL checkpoint ``init``
    on the paired data ``train_data`` (feats.scp + text + CTMs); returns ``exp_dir/model`` (SSL type)."""
    cfg = merge(PAD_DEFAULTS, cfg)
    pcfg = cfg["pad"]
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(int(cfg["train"].get("seed", 0)))
    model, src_cfg = load_checkpoint(init)
    if not isinstance(model, SSLModel):
        raise ConfigError(f"{init}: PAD distils into an SSL checkpoint (type ssl), got '{src_cfg['model']['type']}'")
    frontend = model.cfg.frontend
    if cfg["model"]["freeze_frontend"]:
        for p in model.feature_extractor.parameters():
            p.requires_grad_(False)
    model.train()
    data_cfg = cfg["data"]
    ups = units_per_second(frontend, data_cfg)
    frame_rate = ups * float(model.output_lengths(torch.tensor([10 * ups]))[0]) / (10.0 * ups)
    cmvn = resolve_cmvn(data_cfg, train_data, exp_dir, init_dir=init) if frontend == "fbank" else None
    train_ds = make_dataset(frontend, train_data, data_cfg, cmvn=cmvn, text_file=None)
    valid_ds = make_dataset(frontend, valid_data, data_cfg, cmvn=cmvn, text_file=None) if valid_data else None
    grans = pcfg["granularities"]
    grans = [g for g in grans.replace("+", ",").split(",") if g] if isinstance(grans, str) else list(grans)
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(text_model), local_files_only=True)
    tmodel = AutoModel.from_pretrained(str(text_model), local_files_only=True).eval()
    table = build_unit_table(train_data, (tok, tmodel), grans, frame_rate, model.output_lengths, cfg["units"],
                             cfg["prior"], int(pcfg["text_layer"]), dict(zip(train_ds.utts, train_ds.lengths)))
    vtable = {}
    if valid_ds is not None:
        vtable = build_unit_table(valid_data, (tok, tmodel), grans, frame_rate, model.output_lengths,
                                  cfg["units"], cfg["prior"], int(pcfg["text_layer"]),
                                  dict(zip(valid_ds.utts, valid_ds.lengths)))
    norm = normalise_unit_tables(table, [vtable], grans, str(pcfg["target_norm"]))
    if pcfg["target_norm"] != "none":
        log.info("text targets %s with the training mean/std: mean pairwise cosine %s", pcfg["target_norm"],
                 ", ".join(f"{g} {v['cos_before']} -> {v['cos_after']}" for g, v in norm.items()))
    loss_fn = PADLoss(model.cfg.d_model, tmodel.config.hidden_size, grans, pcfg["metric"], pcfg["combine"],
                      pcfg.get("fixed_weights"), float(pcfg["temperature"]))
    task = PADTask(model, loss_fn, {**vtable, **table}, int(pcfg["speech_layer"]), bool(cfg["model"]["mask"]))
    log.info("PAD: %s granularities, metric %s, combine %s, priors %s, %d paired utts, speech dim %d -> "
             "text dim %d at %.0f frames/s", "+".join(grans), pcfg["metric"], pcfg["combine"],
             {g: cfg["prior"].get(g, "uniform") for g in grans}, len(table), model.cfg.d_model,
             tmodel.config.hidden_size, frame_rate)
    if cmvn is not None:
        cfg["data"] = dict(data_cfg, cmvn=str(cmvn))
    cfg["model"] = dict(model.model_config())
    cfg["init"], cfg["text_model"] = str(init), str(text_model)
    seed = int(cfg["train"].get("seed", 0))
    loader = make_loader(_subset(train_ds, table), frontend, data_cfg, seed=seed, train=True)
    vloader = None
    if vtable:
        vloader = make_loader(_subset(valid_ds, vtable), frontend, data_cfg, seed=seed, train=False)
    save_config(cfg, exp_dir / "config.yaml")
    trainer = Trainer(task, _task_step, cfg["optim"], exp_dir, cfg, state_dict_fn=lambda t: t.model.state_dict(),
                      extra_save_fn=copy_files_into([cmvn]))
    metrics = trainer.fit(loader, vloader, valid_fn=_validate_task if vloader is not None else None)
    if metrics:
        atomic_write_text(exp_dir / "valid.json", json.dumps(metrics, indent=1) + "\n")
    return exp_dir / "model"


def _subset(ds, keep):
    """Restrict a dataset (in place) to the utterances in ``keep`` (those with units)."""
    idx = [i for i, u in enumerate(ds.utts) if u in keep]
    if len(idx) < len(ds.utts):
        ds.utts = [ds.utts[i] for i in idx]
        ds.lengths = [ds.lengths[i] for i in idx]
    return ds
