"""The ``mini_slu`` corpus: spoken commands with intents (Fluent-Speech-Commands style), synthesised
with espeak-ng (English), with exact phone and word times.

Each intent is ``<action>_<object>_<location>`` (as in FSC, ``none`` for a missing slot), e.g.
``activate_lights_kitchen``. Every (action, object) pair has several **paraphrase templates** with
different wording ("turn on the lights", "switch the lights on", "i need some light", ...), and the
location is spoken in several ways ("in the kitchen", "kitchen", "for the kitchen"), so the words are not
the intent trivially. Speakers are espeak-ng voice variants x pitch x rate (the speaker plan of
:mod:`speechkd.corpus.mini_espeak`): dev and test voices are never heard in train. A fraction of the
templates (``heldout_templates`` per (action, object), the last ones) appears **only in test**: unseen
paraphrases.

    >>> from speechkd.corpus.mini_slu import build_slu_corpus, SLU_DEFAULTS, intents, sentences_for
    >>> len(intents(SLU_DEFAULTS["corpus"]))          # action x object x location combinations
    18
    >>> sentences_for("activate", "lights", "kitchen")[0]
    'turn on the lights in the kitchen'
    >>> info = build_slu_corpus("data/slu", SLU_DEFAULTS, seed=1, nj=2)   # doctest: +SKIP

Output (same layout as mini_espeak)::

    <out>/wav/en/<spk>/<utt>.wav
    <out>/data/{train,dev,test}/  wav.scp text utt2spk spk2utt utt2lang utt2dur utt2intent phones
                                  phones.ctm words.ctm
    <out>/corpus.yaml            sizes, intents, template split, seed

Utterance ids are ``slu_<variant>p<pitch>r<rate>_<nnnnn>``. The build is deterministic given the seed
(same text, same wav bytes, whatever ``nj``: one fresh process per speaker).
"""
from __future__ import annotations

import copy
import logging
import random
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..data.datadir import write_datadir
from ..utils.config import save_config
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_open
from .mini_espeak import SPLITS, _ctm_lines, _pool_map, plan_speakers

log = logging.getLogger("speechkd")

#: (action, object) -> paraphrase templates; ``{loc}`` is replaced by a location phrase (or removed).
TEMPLATES: Dict[Tuple[str, str], List[str]] = {
    ("activate", "lights"): ["turn on the lights{loc}", "switch the lights on{loc}", "lights on{loc}",
                             "i need some light{loc}", "please put the lights on{loc}",
                             "it is too dark{loc}"],
    ("deactivate", "lights"): ["turn off the lights{loc}", "switch the lights off{loc}", "lights off{loc}",
                               "kill the lights{loc}", "please put the lights out{loc}",
                               "it is too bright{loc}"],
    ("increase", "heat"): ["turn up the heat{loc}", "make it warmer{loc}", "heat up{loc}",
                           "raise the temperature{loc}", "i am cold{loc}", "it is freezing{loc}"],
    ("decrease", "heat"): ["turn down the heat{loc}", "make it cooler{loc}", "cool down{loc}",
                           "lower the temperature{loc}", "i am too hot{loc}", "it is boiling{loc}"],
    ("increase", "volume"): ["turn up the volume", "louder please", "make it louder",
                             "raise the sound", "i can not hear that", "volume up"],
    ("decrease", "volume"): ["turn down the volume", "quieter please", "make it quieter",
                             "lower the sound", "that is too loud", "volume down"],
    ("activate", "music"): ["play some music", "start the music", "put some music on",
                            "i want to hear a song", "music please", "play me a tune"],
    ("deactivate", "music"): ["stop the music", "pause the music", "turn the music off",
                              "no more songs", "enough music", "silence the tune"],
    ("bring", "newspaper"): ["bring me the newspaper", "get me the paper", "fetch the newspaper",
                             "i want to read the news", "where is my paper", "hand me the newspaper"],
    ("bring", "shoes"): ["bring me my shoes", "get me my shoes", "fetch my shoes",
                         "i need my shoes", "where are my shoes", "hand me my boots"],
}

#: location slot value -> spoken forms (``{loc}`` filler); ``none`` is the empty phrase.
LOCATIONS: Dict[str, List[str]] = {
    "kitchen": [" in the kitchen", " kitchen", " for the kitchen"],
    "bedroom": [" in the bedroom", " bedroom", " for the bedroom"],
    "washroom": [" in the bathroom", " washroom", " in the washroom"],
    "none": [""],
}

SLU_DEFAULTS: dict = {
    "corpus": {
        "name": "mini_slu",
        "language": "en",
        "sample_rate": 16000,
        # objects whose templates take a location; the others are location "none" only
        "located_objects": ["lights", "heat"],
        "locations": ["none", "kitchen", "washroom"],
        "pairs": [list(k) for k in TEMPLATES],      # (action, object) pairs in use
        "heldout_templates": 1,                    # per pair: the last N templates only in test
        "sizes": {"train": 1200, "dev": 200, "test": 400},
        "variants": {"train": ["m1", "m2", "m3", "m4", "f1", "f2", "f3"],
                     "dev": ["m5", "f4"], "test": ["m6", "m7", "f5"]},
        "pitches": [35, 50, 65],
        "rates": [145, 170, 195],
        "speakers": {"train": 8, "dev": 2, "test": 3},
    },
}


# --------------------------------------------------------------------------------------- templates
def intent_name(action: str, obj: str, location: str) -> str:
    """FSC-style label ``action_object_location`` (spaces inside a slot become ``-``)."""
    return "_".join("-".join(v.split()) for v in (action, obj, location))


def intents(cfg: dict) -> List[Tuple[str, str, str]]:
    """All ``(action, object, location)`` of the corpus config, sorted by intent name."""
    out = []
    for action, obj in cfg["pairs"]:
        if (action, obj) not in TEMPLATES:
            raise ConfigError(f"corpus.pairs: no templates for ({action}, {obj}); known: {sorted(TEMPLATES)}")
        locs = cfg["locations"] if obj in cfg["located_objects"] else ["none"]
        for loc in locs:
            if loc not in LOCATIONS:
                raise ConfigError(f"corpus.locations: unknown location '{loc}' (known: {sorted(LOCATIONS)})")
            out.append((action, obj, loc))
    return sorted(out, key=lambda t: intent_name(*t))


def sentences_for(action: str, obj: str, location: str, templates: Sequence[int] = None) -> List[str]:
    """Every sentence of an intent (templates x location phrases), templates in order; restrict to the
    template indices ``templates`` when given."""
    temps = TEMPLATES[(action, obj)]
    idx = range(len(temps)) if templates is None else templates
    return [temps[i].replace("{loc}", phrase) for i in idx for phrase in LOCATIONS[location]]


def template_split(cfg: dict) -> Dict[str, Dict[str, List[int]]]:
    """Template indices per split and pair key ``action_object``: train/dev use the seen templates,
    test all (the held-out ones only there)."""
    k = int(cfg["heldout_templates"])
    out: Dict[str, Dict[str, List[int]]] = {s: {} for s in SPLITS}
    for action, obj in cfg["pairs"]:
        n = len(TEMPLATES[(action, obj)])
        if not 0 <= k < n:
            raise ConfigError(f"corpus.heldout_templates={k} must be in [0, {n - 1}]")
        seen = list(range(n - k))
        key = f"{action}_{obj}"
        out["train"][key] = seen
        out["dev"][key] = seen
        out["test"][key] = list(range(n))
    return out


def plan_slu_corpus(cfg: dict, seed: int) -> List[dict]:
    """Utterances to make, sorted by utt id: dicts with utt, spk, lang, split, sentence, intent, voice,
    pitch, rate. Intents are balanced (round robin over a shuffled intent order), sentences drawn
    uniformly from the intent's templates x location phrases of that split."""
    rng = random.Random(f"{seed}:slu")
    ints = intents(cfg)
    tsplit = template_split(cfg)
    speakers = plan_speakers(cfg, cfg.get("language", "en"), rng)
    jobs = []
    for split in SPLITS:
        n = int(cfg["sizes"][split])
        spks = speakers[split]
        order = list(ints)
        counter: Dict[str, int] = {}
        for i in range(n):
            if i % len(order) == 0:
                rng.shuffle(order)
            action, obj, loc = order[i % len(order)]
            sent = rng.choice(sentences_for(action, obj, loc, tsplit[split][f"{action}_{obj}"]))
            spk0, voice, pitch, rate = spks[rng.randrange(len(spks))]
            spk = "slu_" + spk0.split("_", 1)[1]
            counter[spk] = counter.get(spk, 0) + 1
            jobs.append(dict(utt=f"{spk}_{counter[spk]:05d}", spk=spk, lang=cfg.get("language", "en"),
                             split=split, sentence=sent, intent=intent_name(action, obj, loc), voice=voice,
                             pitch=pitch, rate=rate))
    jobs.sort(key=lambda j: j["utt"])
    return jobs


# --------------------------------------------------------------------------------------- build
def build_slu_corpus(out_dir, cfg: dict, seed: int = 1, nj: int = 1) -> dict:
    """Synthesise the corpus of ``cfg`` (the ``corpus`` section of :data:`SLU_DEFAULTS` or a config
    holding it) into ``out_dir``; returns the summary also written to ``<out>/corpus.yaml``."""
    cfg = copy.deepcopy(cfg.get("corpus", cfg))
    out = Path(out_dir).resolve()
    jobs = plan_slu_corpus(cfg, seed)
    sr = int(cfg["sample_rate"])
    for j in jobs:
        j["sample_rate"] = sr
        j["wav"] = str(out / "wav" / j["lang"] / j["spk"] / f"{j['utt']}.wav")
    t0 = time.time()
    results = {r["utt"]: r for r in _pool_map(jobs, nj, "synth slu")}
    elapsed = time.time() - t0
    summary = {"name": cfg.get("name", "mini_slu"), "seed": seed, "sample_rate": sr,
               "intents": [intent_name(*t) for t in intents(cfg)], "templates": template_split(cfg),
               "splits": {}, "config": cfg}
    for split in SPLITS:
        sj = [j for j in jobs if j["split"] == split]
        entries = {k: {} for k in ("wav.scp", "text", "utt2spk", "utt2lang", "utt2dur", "utt2intent", "phones")}
        ctm_p, ctm_w = [], []
        for j in sj:
            r, u = results[j["utt"]], j["utt"]
            words = [w for w, _, _ in r["words"]]
            if words != j["sentence"].split():
                raise ConfigError(f"{u}: word times {words} do not match the sentence '{j['sentence']}'")
            entries["wav.scp"][u] = j["wav"]
            entries["text"][u] = j["sentence"]
            entries["utt2spk"][u] = j["spk"]
            entries["utt2lang"][u] = j["lang"]
            entries["utt2dur"][u] = f"{r['dur']:.3f}"
            entries["utt2intent"][u] = j["intent"]
            entries["phones"][u] = " ".join(p for p, _, _ in r["phones"])
            ctm_p += _ctm_lines(u, r["phones"])
            ctm_w += _ctm_lines(u, r["words"])
        d = write_datadir(out / "data" / split, entries)
        for name, lines in (("phones.ctm", ctm_p), ("words.ctm", ctm_w)):
            with atomic_open(d.file(name)) as f:
                f.writelines(lines)
        summary["splits"][split] = {
            "utts": len(sj), "speakers": len({j["spk"] for j in sj}),
            "intents": len({j["intent"] for j in sj}),
            "hours": round(sum(results[j["utt"]]["dur"] for j in sj) / 3600, 4)}
    summary["total_utts"] = len(jobs)
    save_config(summary, out / "corpus.yaml")
    log.info("mini_slu: %d utts, %d intents, %.1f utts/s with nj=%d -> %s", len(jobs), len(summary["intents"]),
             len(jobs) / max(elapsed, 1e-9), nj, out)
    return summary
