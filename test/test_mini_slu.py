"""mini SLU corpus: intents, paraphrase split, plan (balanced, unseen speakers), a tiny real build."""
import hashlib

import pytest

from speechkd.corpus.mini_slu import (LOCATIONS, SLU_DEFAULTS, TEMPLATES, build_slu_corpus, intent_name,
                                      intents, plan_slu_corpus, sentences_for, template_split)
from speechkd.utils.config import merge
from speechkd.utils.errors import ConfigError


def _cfg(**over):
    return merge(SLU_DEFAULTS["corpus"], over)


def test_intents_and_sentences():
    cfg = _cfg()
    ints = intents(cfg)
    # 4 located pairs x 3 locations + 6 pairs without location
    assert len(ints) == 4 * 3 + 6 == 18
    names = [intent_name(*t) for t in ints]
    assert names == sorted(names) and len(set(names)) == 18
    assert "activate_lights_kitchen" in names and "bring_shoes_none" in names
    assert intent_name("change language", "none", "none") == "change-language_none_none"
    s = sentences_for("activate", "lights", "kitchen")
    assert s[0] == "turn on the lights in the kitchen"
    assert len(s) == len(TEMPLATES[("activate", "lights")]) * len(LOCATIONS["kitchen"])
    assert sentences_for("increase", "volume", "none", templates=[0]) == ["turn up the volume"]
    with pytest.raises(ConfigError):
        intents(_cfg(locations=["none", "garage"]))
    with pytest.raises(ConfigError):
        intents(_cfg(pairs=[["bring", "cake"]]))


def test_template_split_holds_out_paraphrases():
    ts = template_split(_cfg(heldout_templates=2))
    assert ts["train"]["activate_lights"] == [0, 1, 2, 3] == ts["dev"]["activate_lights"]
    assert ts["test"]["activate_lights"] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ConfigError):
        template_split(_cfg(heldout_templates=6))


def test_plan_is_balanced_deterministic_and_speakers_unseen():
    cfg = _cfg(sizes={"train": 72, "dev": 18, "test": 36}, heldout_templates=1)
    jobs = plan_slu_corpus(cfg, seed=3)
    assert jobs == plan_slu_corpus(cfg, seed=3)
    assert jobs != plan_slu_corpus(cfg, seed=4)
    by = {s: [j for j in jobs if j["split"] == s] for s in ("train", "dev", "test")}
    assert [len(by[s]) for s in by] == [72, 18, 36]
    # round robin over the 18 intents: each intent exactly size/18 times
    for s, n in (("train", 4), ("test", 2)):
        counts = {}
        for j in by[s]:
            counts[j["intent"]] = counts.get(j["intent"], 0) + 1
        assert set(counts.values()) == {n} and len(counts) == 18
    spk = {s: {j["spk"] for j in by[s]} for s in by}
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["dev"])
    voices_train = {j["voice"] for j in by["train"]}
    assert all(j["voice"] not in voices_train for j in by["test"])
    # held-out templates (the last one of each pair) never in train/dev
    last = {TEMPLATES[k][-1].replace("{loc}", p) for k in TEMPLATES for p in ("", " in the kitchen", " kitchen",
            " for the kitchen", " in the bathroom", " washroom", " in the washroom")}
    assert not any(j["sentence"] in last for j in by["train"] + by["dev"])
    # each sentence realises its intent's templates
    for j in jobs:
        a, o, l = j["intent"].split("_")
        assert j["sentence"] in sentences_for(a, o, l)
    assert len({j["utt"] for j in jobs}) == len(jobs)


def test_tiny_build_writes_datadir_and_is_deterministic(tmp_path):
    cfg = _cfg(sizes={"train": 6, "dev": 2, "test": 3}, speakers={"train": 2, "dev": 1, "test": 1})
    info = build_slu_corpus(tmp_path / "a", cfg, seed=1, nj=2)
    assert info["splits"]["train"]["utts"] == 6 and info["total_utts"] == 11
    d = tmp_path / "a" / "data" / "train"
    for f in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2intent", "utt2dur", "phones", "phones.ctm", "words.ctm"):
        assert (d / f).exists(), f
    text = dict(l.split(" ", 1) for l in (d / "text").read_text().splitlines())
    u2i = dict(l.split() for l in (d / "utt2intent").read_text().splitlines())
    assert set(text) == set(u2i)
    words = {}
    for line in (d / "words.ctm").read_text().splitlines():
        utt, _, start, dur, w = line.split()
        assert float(dur) >= 0 and float(start) >= 0
        words.setdefault(utt, []).append(w)
    assert all(words[u] == text[u].strip().split() for u in text)
    # same bytes with another nj
    build_slu_corpus(tmp_path / "b", cfg, seed=1, nj=1)
    def digest(root):
        return sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in (root / "wav").rglob("*.wav"))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert (tmp_path / "a/data/test/words.ctm").read_text() == (tmp_path / "b/data/test/words.ctm").read_text()
