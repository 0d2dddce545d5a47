"""The ``mini_espeak`` corpus: multilingual, multi-speaker synthetic speech with exact phone times.

Per language, sentences come from :mod:`speechkd.corpus.text_sources`, speakers are espeak-ng voice
variants x pitch x rate (``en_m3p40r160`` = ``en-us+m3`` at pitch 40 and 160 wpm), and every utterance
is synthesised by :func:`speechkd.corpus.espeak.synthesize`, resampled to 16 kHz 16-bit mono wav.
Splits share no sentence; dev and test speakers use voice variants that train never sees.

    >>> from speechkd.corpus.mini_espeak import build_corpus, DEFAULTS
    >>> from speechkd.utils.config import load_config
    >>> cfg = load_config("egs/mini_espeak/conf/corpus_smoke.yaml", defaults=DEFAULTS)
    >>> info = build_corpus("data/mini", cfg, seed=1, nj=2)     # dict, also in data/mini/corpus.yaml

Output::

    <out>/wav/<lang>/<spk>/<utt>.wav
    <out>/data/{train,dev,test}/  wav.scp text utt2spk spk2utt utt2lang utt2dur phones phones.ctm words.ctm
    <out>/corpus.yaml

Utterance ids are ``<lang>_<variant>p<pitch>r<rate>_<nnnnn>`` (speaker id = the first two fields), so
sorting by utterance groups speakers. ``text`` is ASR-normalised (lower case, no punctuation but
apostrophes); ``phones`` holds the phone tokens of ``phones.ctm`` in order. In ``words.ctm`` a word that
espeak-ng speaks glued to the previous one (``to be``, ``nie ma``) shares that word's phones: the
group's phones are divided between its words in proportion to their letters, on phone boundaries;
``corpus.yaml`` reports the fraction of words timed exactly. The build is deterministic given the seed
(same text, same wav bytes), whatever ``nj``.
"""
from __future__ import annotations

import copy
import logging
import multiprocessing as mp
import random
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..data.audio import resample, write_wav
from ..data.datadir import write_datadir
from ..utils.config import save_config
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_open
from .text_sources import load_sentences, normalize_text

log = logging.getLogger("speechkd")

SPLITS = ("train", "dev", "test")

# language code -> espeak-ng voice (language part; variants are appended as "+m3")
ESPEAK_VOICES: Dict[str, str] = {
    "en": "en-us", "de": "de", "es": "es", "it": "it", "ru": "ru", "pl": "pl", "cs": "cs", "ga": "ga",
    "fr": "fr", "pt": "pt", "nl": "nl", "sv": "sv",
}

DEFAULTS: dict = {
    "corpus": {
        "name": "mini_espeak",
        "languages": ["en", "de", "es", "it", "ru", "pl", "ga"],
        "sample_rate": 16000,
        # exclude_corpora: corpus configs (paths from the working dir, each built with the same seed) whose
        # sentences this corpus must not speak, e.g. an unlabelled pool beside the recipes' corpora;
        # fill: where a language has too few sentences left, "words" adds word sequences drawn from its
        # vocabulary (a pool needs audio, not sentences), "repeat" reuses sentences
        "text": {"min_words": 3, "max_words": 14, "exclude_corpora": [], "fill": "repeat"},
        # utterances per language per split; per-language entries override "default"
        "sizes": {"default": {"train": 300, "dev": 100, "test": 100}},
        # voice variants per split (disjoint between train and dev/test); speakers = variant x pitch x rate
        "variants": {"train": ["m1", "m2", "m3", "m4", "f1", "f2", "f3"],
                     "dev": ["m5", "f4"], "test": ["m6", "m7", "f5"]},
        "pitches": [35, 50, 65],
        "rates": [145, 170, 195],
        # speakers drawn per language and split
        "speakers": {"train": 8, "dev": 2, "test": 3},
    },
}


# ----------------------------------------------------------------------------------------- planning
def speaker_id(lang: str, variant: str, pitch: int, rate: int) -> str:
    return f"{lang}_{variant}p{int(pitch)}r{int(rate)}"


_SPEAKER_ID = re.compile(r"^([^_]+)_(.+?)p(\d+)r(\d+)(?:_|$)")


def parse_speaker_id(spk_or_utt: str) -> tuple:
    """``(lang, variant, pitch, rate)`` of a :func:`speaker_id` (or of an utterance id that starts with one)."""
    m = _SPEAKER_ID.match(spk_or_utt)
    if not m:
        raise ValueError(f"'{spk_or_utt}' is not a mini_espeak speaker id (<lang>_<variant>p<pitch>r<rate>)")
    return m.group(1), m.group(2), int(m.group(3)), int(m.group(4))


def sizes_for(cfg: dict, lang: str) -> Dict[str, int]:
    sizes = cfg["sizes"]
    out = dict(sizes.get("default", {}))
    out.update(sizes.get(lang, {}) or {})
    missing = [s for s in SPLITS if s not in out]
    if missing:
        raise ConfigError(f"corpus.sizes: no size for split(s) {missing} of language '{lang}'")
    return {s: int(out[s]) for s in SPLITS}


def plan_speakers(cfg: dict, lang: str, rng: random.Random) -> Dict[str, List[Tuple[str, str, int, int]]]:
    """Per split, ``(spk_id, voice, pitch, rate)`` drawn from that split's variants x pitches x rates."""
    out = {}
    variants = cfg["variants"]
    train_v = set(variants["train"])
    for split in SPLITS:
        if split != "train" and train_v & set(variants[split]):
            raise ConfigError(f"corpus.variants.{split} shares {sorted(train_v & set(variants[split]))} "
                              "with train: dev/test speakers must be unseen")
        combos = [(v, p, r) for v in variants[split] for p in cfg["pitches"] for r in cfg["rates"]]
        n = int(cfg["speakers"][split])
        if n > len(combos):
            raise ConfigError(f"corpus.speakers.{split}={n} but only {len(combos)} variant x pitch x rate "
                              "combinations")
        # spread over variants first: shuffle within each variant, then interleave
        by_v = {v: [c for c in combos if c[0] == v] for v in variants[split]}
        for v in by_v:
            rng.shuffle(by_v[v])
        order = list(variants[split])
        rng.shuffle(order)
        picked, k = [], 0
        while len(picked) < n:
            v = order[k % len(order)]
            if by_v[v]:
                picked.append(by_v[v].pop())
            k += 1
        base = ESPEAK_VOICES.get(lang, lang)
        out[split] = sorted((speaker_id(lang, v, p, r), f"{base}+{v}", p, r) for v, p, r in picked)
    return out


def split_sentences(sents: Sequence[str], sizes: Dict[str, int], lang: str) -> Dict[str, List[str]]:
    """Disjoint sentence sets per split; if the pool is short, shrink each in proportion (then reuse)."""
    total = sum(sizes.values())
    if len(sents) >= total:
        counts = dict(sizes)
    else:
        log.warning("%s: only %d sentences for %d utterances: sentences repeat within a split "
                    "(never across splits)", lang, len(sents), total)
        counts = {s: max(1, len(sents) * n // total) for s, n in sizes.items()}
    out, i = {}, 0
    for s in SPLITS:
        out[s] = list(sents[i:i + counts[s]])
        i += counts[s]
    return out


def word_sequences(sents: Sequence[str], n: int, min_words: int, max_words: int,
                   rng: random.Random) -> List[str]:
    """``n`` pseudo-sentences of ``min_words..max_words`` words drawn from the words of ``sents``."""
    vocab = sorted({w for s in sents for w in normalize_text(s).split()})
    if not vocab:
        raise ConfigError("no words to draw pseudo-sentences from")
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(min_words, max_words))) + "."
            for _ in range(n)]


def corpus_sentences(config_paths: Sequence, seed: int) -> Dict[str, set]:
    """``{lang: {normalised sentence}}`` that the corpora of ``config_paths`` (built with ``seed``) speak."""
    from ..utils.config import load_config

    out: Dict[str, set] = {}
    for path in config_paths:
        other = load_config(path, defaults=DEFAULTS)["corpus"]
        for j in plan_corpus(other, seed):
            out.setdefault(j["lang"], set()).add(normalize_text(j["sentence"]))
    return out


def plan_corpus(cfg: dict, seed: int) -> List[dict]:
    """The list of utterances to make (sorted by utt id): dicts with utt, spk, lang, split, sentence,
    voice, pitch, rate."""
    jobs = []
    tcfg = cfg["text"]
    excluded = corpus_sentences(tcfg.get("exclude_corpora") or [], seed)
    for lang in cfg["languages"]:
        rng = random.Random(f"{seed}:{lang}")
        all_sents = load_sentences(lang, tcfg["min_words"], tcfg["max_words"])
        pool = list(all_sents)
        rng.shuffle(pool)
        sizes = sizes_for(cfg, lang)
        if lang in excluded:
            pool = [x for x in pool if normalize_text(x) not in excluded[lang]]
        short = sum(sizes.values()) - len(pool)
        if short > 0 and tcfg.get("fill", "repeat") == "words":
            log.info("%s: %d sentences left after excluding %d of other corpora; adding %d word sequences "
                     "from its vocabulary", lang, len(pool), len(excluded.get(lang, ())), short)
            pool += word_sequences(all_sents, short, tcfg["min_words"], tcfg["max_words"],
                                   random.Random(f"{seed}:{lang}:words"))
        elif tcfg.get("fill", "repeat") not in ("words", "repeat"):
            raise ConfigError(f"corpus.text.fill must be words or repeat, got '{tcfg.get('fill')}'")
        if not pool:
            raise ConfigError(f"corpus.text.exclude_corpora leaves no sentence for '{lang}' "
                              "(set corpus.text.fill: words)")
        by_split = split_sentences(pool, sizes, lang)
        speakers = plan_speakers(cfg, lang, rng)
        for split in SPLITS:
            sents, spks = by_split[split], speakers[split]
            counter: Dict[str, int] = {}
            for i in range(sizes[split]):
                sent = sents[i % len(sents)]
                spk, voice, pitch, rate = spks[(i + i // len(sents)) % len(spks)]
                counter[spk] = counter.get(spk, 0) + 1
                jobs.append(dict(utt=f"{spk}_{counter[spk]:05d}", spk=spk, lang=lang, split=split,
                                 sentence=sent, voice=voice, pitch=pitch, rate=rate))
    jobs.sort(key=lambda j: j["utt"])
    return jobs


# ----------------------------------------------------------------------------------------- words
def assign_words(sentence: str, words, offsets, phones) -> Tuple[List[Tuple[str, float, float]], int]:
    """Word intervals for every ASR token of ``sentence``.

    ``words``/``offsets``: espeak word intervals and their character offsets; ``phones``: the phone
    intervals. Tokens without their own word event join the group of the previous event; a group's
    phones are divided in proportion to letters. Returns ``(intervals, n_exact)``.
    """
    tokens = []  # (start_char, normalized)
    pos = 0
    for raw in sentence.split():
        start = sentence.index(raw, pos)
        pos = start + len(raw)
        norm = normalize_text(raw)
        if norm:
            tokens.append((start, pos, norm))
    if not tokens:
        return [], 0
    # token index of each word event
    ev_tok = []
    for (w, ws, we), off in zip(words, offsets):
        idx = next((k for k, (a, b, _) in enumerate(tokens) if a <= off < b), None)
        if idx is not None and (not ev_tok or idx > ev_tok[-1][0]):
            ev_tok.append((idx, ws, we))
    if not ev_tok:
        a, b = (phones[0][1], phones[-1][2]) if phones else (0.0, 0.0)
        ev_tok = [(0, a, b)]
    if ev_tok[0][0] != 0:
        ev_tok[0] = (0, ev_tok[0][1], ev_tok[0][2])
    out, exact = [], 0
    for g, (k0, ws, we) in enumerate(ev_tok):
        k1 = ev_tok[g + 1][0] if g + 1 < len(ev_tok) else len(tokens)
        group = tokens[k0:k1]
        if len(group) == 1:
            out.append((group[0][2], ws, we))
            exact += 1
            continue
        # phone boundaries inside the group
        bounds = [ws] + [p[1] for p in phones if ws < p[1] < we] + [we]
        nlet = [max(1, len(t[2])) for t in group]
        cum = np.cumsum(nlet) / sum(nlet)
        nb, n = len(bounds) - 1, len(group)
        cuts = [0]
        for i, c in enumerate(cum[:-1], 1):
            lo, hi = (cuts[-1] + 1, nb - (n - i)) if nb >= n else (cuts[-1], nb)
            cuts.append(min(max(int(round(c * nb)), lo), hi))
        cuts.append(nb)
        for t, a, b in zip(group, cuts[:-1], cuts[1:]):
            out.append((t[2], bounds[a], bounds[b]))
    return out, exact


# ----------------------------------------------------------------------------------------- synthesis
def _synth_job(job: dict) -> dict:
    """Worker: synthesise one utterance, write its wav, return its transcript/alignment entries."""
    from .espeak import synthesize

    syn = synthesize(job["sentence"], job["voice"], job["rate"], job["pitch"])
    sr = job["sample_rate"]
    wav = resample(syn.audio.astype(np.float32) / 32768.0, syn.sample_rate, sr)
    write_wav(job["wav"], wav, sr)
    dur = len(wav) / sr
    phones = [(p, min(a, dur), min(b, dur)) for p, a, b in syn.phones]
    words, exact = assign_words(job["sentence"], syn.words, syn.word_offsets, syn.phones)
    words = [(w, min(a, dur), min(b, dur)) for w, a, b in words]
    return dict(utt=job["utt"], dur=dur, phones=phones, words=words, n_exact=exact)


def _ctm_lines(utt: str, items) -> List[str]:
    return [f"{utt} 1 {a:.3f} {max(b - a, 0.0):.3f} {tok}\n" for tok, a, b in items]


def _synth_speaker(jobs: List[dict]) -> List[dict]:
    return [_synth_job(j) for j in jobs]


def _pool_map(jobs: List[dict], nj: int, desc: str):
    """Synthesise ``jobs`` (sorted by utt) and yield results in order.

    espeak-ng carries state from one utterance to the next (pitch flutter phase, noise), so the same
    text comes out slightly different after a different history. For the same bytes whatever ``nj``,
    each speaker's utterances run in order in a fresh process (forked from a clean fork server that
    never loaded espeak-ng), one process per speaker.
    """
    from ..utils.progress import progress as progress_bar

    groups: Dict[str, List[dict]] = {}
    for j in jobs:
        groups.setdefault(j["spk"], []).append(j)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["speechkd.corpus.mini_espeak", "scipy.signal", "soundfile", "tqdm"])
    with ctx.Pool(max(1, nj), maxtasksperchild=1) as pool, \
            progress_bar(total=len(jobs), desc=desc, unit="utt") as bar:
        for res in pool.imap(_synth_speaker, list(groups.values())):
            bar.update(len(res))
            yield from res


def build_corpus(out_dir, cfg: dict, seed: int = 1, nj: int = 1, splits: Sequence[str] = SPLITS) -> dict:
    """Synthesise the corpus described by ``cfg`` (the ``corpus`` section of :data:`DEFAULTS`, or a full
    config holding it) into ``out_dir``; returns the summary also written to ``<out>/corpus.yaml``.

    ``splits`` makes only those splits (e.g. ``("test",)``): their utterances are the ones the full build
    makes (the plan is the same), so a config that differs from another only in its test voices gives the
    other's test sentences spoken by new voices, without synthesising train and dev again."""
    import time

    cfg = copy.deepcopy(cfg.get("corpus", cfg))
    if not splits or set(splits) - set(SPLITS):
        raise ConfigError(f"splits must be a non-empty subset of {', '.join(SPLITS)}, got {list(splits)}")
    splits = tuple(s for s in SPLITS if s in splits)   # in corpus order
    out = Path(out_dir).resolve()
    jobs = [j for j in plan_corpus(cfg, seed) if j["split"] in splits]
    sr = int(cfg["sample_rate"])
    for j in jobs:
        j["sample_rate"] = sr
        j["wav"] = str(out / "wav" / j["lang"] / j["spk"] / f"{j['utt']}.wav")
    t0 = time.time()
    results = {r["utt"]: r for r in _pool_map(jobs, nj, "synth")}
    elapsed = time.time() - t0
    summary = {"name": cfg.get("name", "mini_espeak"), "seed": seed, "sample_rate": sr,
               "languages": list(cfg["languages"]), "splits": {}, "config": cfg}
    n_words = n_exact = 0
    for split in splits:
        sj = [j for j in jobs if j["split"] == split]
        entries = {k: {} for k in ("wav.scp", "text", "utt2spk", "utt2lang", "utt2dur", "phones")}
        ctm_p, ctm_w = [], []
        for j in sj:
            r = results[j["utt"]]
            u = j["utt"]
            entries["wav.scp"][u] = j["wav"]
            entries["text"][u] = normalize_text(j["sentence"])
            entries["utt2spk"][u] = j["spk"]
            entries["utt2lang"][u] = j["lang"]
            entries["utt2dur"][u] = f"{r['dur']:.3f}"
            entries["phones"][u] = " ".join(p for p, _, _ in r["phones"])
            ctm_p += _ctm_lines(u, r["phones"])
            ctm_w += _ctm_lines(u, r["words"])
            n_words += len(r["words"])
            n_exact += r["n_exact"]
        d = write_datadir(out / "data" / split, entries)
        for name, lines in (("phones.ctm", ctm_p), ("words.ctm", ctm_w)):
            with atomic_open(d.file(name)) as f:
                f.writelines(lines)
        per_lang = {}
        for lang in cfg["languages"]:
            lj = [j for j in sj if j["lang"] == lang]
            per_lang[lang] = {"utts": len(lj), "speakers": len({j["spk"] for j in lj}),
                              "hours": round(sum(results[j["utt"]]["dur"] for j in lj) / 3600, 4)}
        summary["splits"][split] = {
            "utts": len(sj), "speakers": len({j["spk"] for j in sj}),
            "hours": round(sum(results[j["utt"]]["dur"] for j in sj) / 3600, 4), "languages": per_lang}
    summary["total_hours"] = round(sum(r["dur"] for r in results.values()) / 3600, 4)
    summary["total_utts"] = len(jobs)
    summary["phone_inventory"] = sorted({p for r in results.values() for p, _, _ in r["phones"]})
    summary["word_times_exact_fraction"] = round(n_exact / max(n_words, 1), 4)
    log.info("mini_espeak: %d utts, %.3f h, %d phones, %.1f utts/s with nj=%d -> %s", len(jobs),
             summary["total_hours"], len(summary["phone_inventory"]), len(jobs) / max(elapsed, 1e-9), nj, out)
    save_config(summary, out / "corpus.yaml")  # no timings in it: the same seed gives the same bytes
    summary["synthesis_utts_per_s"] = round(len(jobs) / max(elapsed, 1e-9), 1)
    return summary
