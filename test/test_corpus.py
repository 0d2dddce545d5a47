"""mini_espeak corpus: espeak-ng binding, text sources, corpus build (smoke config), phonemizer agreement."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkd.corpus import espeak
from speechkd.corpus.espeak import EspeakError, events_to_intervals, synthesize
from speechkd.corpus.mini_espeak import DEFAULTS, assign_words, build_corpus, plan_corpus
from speechkd.corpus.text_sources import (fortune_files, is_good_sentence, load_sentences, normalize_text,
                                          read_fortunes, split_sentences)
from speechkd.data.datadir import DataDir, read_kv
from speechkd.utils.config import load_config
from speechkd.utils.errors import ConfigError, SpeechkdError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "egs/mini_espeak/conf/corpus_smoke.yaml"
SPLITS = ("train", "dev", "test")


# ------------------------------------------------------------------------------------------ espeak
def test_synthesize_one_utterance():
    syn = synthesize("The quick brown fox jumps over the lazy dog.", voice="en-us+f2", rate=170, pitch=60)
    assert syn.sample_rate == 22050 and syn.audio.dtype == np.int16
    dur = syn.duration
    assert 1.0 < dur < 6.0
    x = syn.audio.astype(np.float64) / 32768
    assert np.sqrt(np.mean(x ** 2)) > 0.01  # not silent
    phones = syn.phones
    assert len(phones) >= 25 and all(p and "ˈ" not in p for p, _, _ in phones)
    starts = [a for _, a, _ in phones]
    assert all(a <= b for _, a, b in phones)
    assert all(phones[i][2] <= phones[i + 1][1] + 1e-9 for i in range(len(phones) - 1))  # monotonic
    assert starts[0] < 0.1 and dur - 0.5 < phones[-1][2] <= dur  # cover the audio
    covered = sum(b - a for _, a, b in phones)
    assert covered > 0.8 * (phones[-1][2] - phones[0][1])  # only short pauses between phones
    # speech lies under the phones: the energy outside [first start, last end] is small
    a, b = int(phones[0][1] * 22050), int(phones[-1][2] * 22050)
    assert np.sum(x[a:b] ** 2) > 0.95 * np.sum(x ** 2)
    words = [normalize_text(w) for w, _, _ in syn.words]
    assert words[:4] == ["the", "quick", "brown", "fox"] and words[-1] == "dog"
    assert syn.words[1][1] >= syn.words[0][2] - 1e-9
    assert [syn.text[o:o + 5] for o in syn.word_offsets[:2]] == ["The q", "quick"]


def test_voices_and_parameters():
    slow = synthesize("Guten Morgen, wie geht es dir?", voice="de+m3", rate=120, pitch=50)
    fast = synthesize("Guten Morgen, wie geht es dir?", voice="de+m3", rate=240, pitch=50)
    assert fast.duration < 0.75 * slow.duration
    assert [p for p, _, _ in slow.phones] == [p for p, _, _ in fast.phones]
    assert synthesize("Bonjour tout le monde.", voice="fr").phones
    with pytest.raises(EspeakError, match="fr-fr"):
        synthesize("Bonjour.", voice="fr-fr")


def test_events_to_intervals_by_hand():
    # "Hi - to be." : pause at 0, phones h aɪ | word event on the dash (espeak does that) for "to",
    # palatal mark as its own event, trailing pause; 100 samples per second for easy numbers.
    W, P = 1, 7
    text = "Hi - to be."
    events = [(W, 1, 2, 0, b""), (P, 1, 0, 0, b""), (P, 1, 0, 10, b"h"), (P, 1, 0, 20, "ˈaɪ".encode()),
              (P, 1, 0, 40, b""), (W, 4, 1, 50, b""), (P, 6, 0, 50, b"t"), (P, 6, 0, 60, "ʲ".encode()),
              (P, 6, 0, 65, "ə".encode()), (P, 6, 0, 70, b"b"), (P, 6, 0, 80, b"i"), (P, 9, 0, 95, b"")]
    phones, words, offsets = events_to_intervals(text, events, 100, 100)
    assert phones == [("h", 0.1, 0.2), ("aɪ", 0.2, 0.4), ("tʲ", 0.5, 0.65), ("ə", 0.65, 0.7),
                      ("b", 0.7, 0.8), ("i", 0.8, 0.95)]
    assert words == [("Hi", 0.1, 0.4), ("to", 0.5, 0.95)]  # 'be' is glued to 'to' (no event)
    assert offsets == [0, 5]
    out, exact = assign_words(text, words, offsets, phones)
    # group 'to be' = 4 phone segments split 2:2 by letters -> boundary at the 3rd phone start
    assert out == [("hi", 0.1, 0.4), ("to", 0.5, 0.7), ("be", 0.7, 0.95)] and exact == 1


def test_find_library_reports_install_command(monkeypatch):
    import ctypes

    def no_lib(name, *a, **k):
        raise OSError("not found")

    monkeypatch.delenv("SPEECHKD_ESPEAK_LIBRARY", raising=False)
    monkeypatch.setattr(ctypes, "CDLL", no_lib)
    monkeypatch.setitem(__import__("sys").modules, "espeakng_loader", None)
    with pytest.raises(EspeakError, match="apt-get install -y espeak-ng"):
        espeak.find_library()


# ------------------------------------------------------------------------------------------ text
def test_text_filters_and_normalisation(tmp_path):
    assert normalize_text("Don't  PANIC, Arthur!  - «Ja»") == "don't panic arthur ja"
    assert normalize_text("‘Tis the Season…") == "tis the season"
    assert is_good_sentence("Der Klügere gibt nach, sagt man.", "de")
    assert not is_good_sentence("Der Klügere gibt.", "en")                 # ü is not English
    assert not is_good_sentence("Call me at 555 today please.", "en")      # digits
    assert not is_good_sentence("See www.debian.org for more news.", "en")  # URL
    assert not is_good_sentence("The NASA budget is huge today.", "en")    # ALL-CAPS word
    assert not is_good_sentence("A well-known fact is boring.", "en")      # in-word hyphen
    assert not is_good_sentence("Too short.", "en")
    assert not is_good_sentence("one two three four five.", "en")          # no capital start
    assert not is_good_sentence(" ".join(["Word"] * 15) + ".", "en")
    f = tmp_path / "cookies"
    f.write_text("First one here. Second one there!\n%\nA quote that is wise.\n\t\t-- Somebody\n%\n"
                 "Multi line\nentry is joined.\n%\n", encoding="utf-8")
    entries = list(read_fortunes(f))
    assert entries == ["First one here. Second one there!", "A quote that is wise.",
                       "Multi line entry is joined."]
    assert split_sentences(entries[0]) == ["First one here.", "Second one there!"]
    assert load_sentences("en", files=[f, f]) == ["First one here.", "Second one there!",
                                                   "A quote that is wise.", "Multi line entry is joined."]


def test_text_sources_installed_languages():
    counts = {lang: len(load_sentences(lang)) for lang in ("en", "de", "es", "it", "ru", "pl", "ga")}
    assert all(n >= 100 for n in counts.values()), counts
    assert counts["en"] > 5000
    assert load_sentences("ru")[:50] == load_sentences("ru")[:50]  # deterministic order
    with pytest.raises(SpeechkdError, match="no text source"):
        fortune_files("xx")


def test_missing_language_names_apt_package(monkeypatch, tmp_path):
    from speechkd.corpus import text_sources

    monkeypatch.setattr(text_sources, "FORTUNE_DIRS", (str(tmp_path),))
    with pytest.raises(SpeechkdError, match="apt-get install -y fortunes-ga"):
        fortune_files("ga")


def test_plan_rejects_seen_test_voices():
    cfg = load_config(SMOKE, ["corpus.variants.test=[m1, f5]"], defaults=DEFAULTS)["corpus"]
    with pytest.raises(ConfigError, match="unseen"):
        plan_corpus(cfg, 1)


# ------------------------------------------------------------------------------------------ corpus
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini") / "c1"
    cfg = load_config(SMOKE, defaults=DEFAULTS)
    info = build_corpus(out, cfg, seed=3, nj=2)
    return out, info


def _read_ctm(path):
    out = defaultdict(list)
    for line in open(path, encoding="utf-8"):
        utt, ch, start, dur, tok = line.split()
        assert ch == "1"
        out[utt].append((tok, float(start), float(dur)))
    return out


def test_smoke_corpus_structure(smoke):
    out, info = smoke
    dirs = {s: DataDir(out / "data" / s) for s in SPLITS}
    for d in dirs.values():
        d.validate(need=("utt2lang", "utt2dur", "phones", "spk2utt"))
    text = {s: d.read("text") for s, d in dirs.items()}
    spk = {s: set(d.read("utt2spk").values()) for s, d in dirs.items()}
    assert 80 <= sum(len(t) for t in text.values()) <= 120
    # splits share no sentence; dev/test speakers are unseen
    for a, b in (("train", "test"), ("train", "dev"), ("dev", "test")):
        assert not set(text[a].values()) & set(text[b].values())
    assert not spk["train"] & spk["test"] and not spk["train"] & spk["dev"]
    langs = defaultdict(set)
    for s, d in dirs.items():
        utt2spk, utt2lang = d.read("utt2spk"), d.read("utt2lang")
        for u, sp in utt2spk.items():
            assert u.startswith(sp + "_") and u.startswith(utt2lang[u] + "_")
            langs[utt2lang[u]].add(sp)
    assert len(langs) >= 6 and all(len(v) >= 8 for v in langs.values()), {k: len(v) for k, v in langs.items()}
    assert info["total_utts"] == sum(len(t) for t in text.values())
    for t in text["train"].values():
        assert t == t.lower() and not any(c in t for c in ".,!?;:\"")


def test_smoke_corpus_alignments(smoke):
    out, _ = smoke
    for s in SPLITS:
        d = DataDir(out / "data" / s)
        phones, text, dur, wav = d.read("phones"), d.read("text"), d.read("utt2dur"), d.read("wav.scp")
        pctm, wctm = _read_ctm(d.file("phones.ctm")), _read_ctm(d.file("words.ctm"))
        assert set(pctm) == set(phones)
        for u in phones:
            assert [t for t, _, _ in pctm[u]] == phones[u].split()
            assert [t for t, _, _ in wctm[u]] == text[u].split()
            info = sf.info(wav[u])
            assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
            audio_dur = info.frames / 16000
            assert abs(audio_dur - float(dur[u])) < 1e-3
            for ctm in (pctm[u], wctm[u]):
                starts = [a for _, a, _ in ctm]
                assert starts == sorted(starts) and all(d_ >= 0 for _, _, d_ in ctm)
                assert ctm[-1][1] + ctm[-1][2] <= audio_dur + 2e-3
            # words tile their phones: each word starts where some phone starts
            pstarts = {round(a, 3) for _, a, _ in pctm[u]}
            assert all(round(a, 3) in pstarts for _, a, d_ in wctm[u] if d_ > 0)


def test_smoke_corpus_deterministic(smoke, tmp_path):
    """Same seed -> same bytes, whatever nj and whatever other languages are built alongside."""
    out, _ = smoke
    from speechkd.bin.synth_corpus import main

    out2 = tmp_path / "c2"
    with pytest.raises(SystemExit) as e:
        main(["--config", str(SMOKE), "--out", str(out2), "--nj", "1", "--seed", "3",
              "--corpus.languages", "[en, ru]"])
    assert e.value.code == 0
    for s in SPLITS:
        for name in ("text", "utt2spk", "phones", "phones.ctm", "words.ctm", "utt2dur"):
            lines1 = [ln for ln in open(out / "data" / s / name, encoding="utf-8")
                      if ln.startswith(("en_", "ru_"))]
            lines2 = open(out2 / "data" / s / name, encoding="utf-8").readlines()
            assert lines1 and lines1 == lines2, (s, name)
    wav1, wav2 = read_kv(out / "data/test/wav.scp"), read_kv(out2 / "data/test/wav.scp")
    assert set(wav2) < set(wav1)
    for u in sorted(wav2)[:6]:
        assert Path(wav1[u]).read_bytes() == Path(wav2[u]).read_bytes()
    # another seed gives another corpus
    cfg = load_config(SMOKE, ["corpus.languages=[en]"], defaults=DEFAULTS)["corpus"]
    assert [j["sentence"] for j in plan_corpus(cfg, 3)] != [j["sentence"] for j in plan_corpus(cfg, 4)]


def test_test_split_only_same_utterances(smoke, tmp_path):
    """--splits test makes only the test split, and exactly the utterances the full build makes."""
    out, _ = smoke
    from speechkd.bin.synth_corpus import main

    out2 = tmp_path / "t"
    with pytest.raises(SystemExit) as e:
        main(["--config", str(SMOKE), "--out", str(out2), "--nj", "1", "--seed", "3", "--splits", "test",
              "--corpus.languages", "[de, ga]"])
    assert e.value.code == 0
    assert sorted(p.name for p in (out2 / "data").iterdir()) == ["test"]
    for name in ("text", "utt2spk", "phones", "phones.ctm"):
        lines1 = [ln for ln in open(out / "data/test" / name, encoding="utf-8") if ln.startswith(("de_", "ga_"))]
        assert lines1 and lines1 == open(out2 / "data/test" / name, encoding="utf-8").readlines(), name
    with pytest.raises(ConfigError, match="subset of train, dev, test"):
        build_corpus(tmp_path / "x", load_config(SMOKE, defaults=DEFAULTS), splits=("eval",))


@pytest.mark.parametrize("tag", ["default", "smoke"])
def test_ssl_voices_test_set_is_the_check_sentences_in_new_voices(tag):
    """egs/mini_espeak/ssl's 40-voice test set: the check corpus's test sentences, voices that neither the
    check's train/dev/test nor the pool has."""
    sfx = "" if tag == "default" else "_smoke"
    check = load_config(ROOT / f"egs/mini_espeak/conf/corpus_{tag}.yaml", defaults=DEFAULTS)["corpus"]
    voices = load_config(ROOT / f"egs/mini_espeak/ssl/conf/corpus_voices{sfx}.yaml", defaults=DEFAULTS)["corpus"]
    pool = load_config(ROOT / f"egs/mini_espeak/ssl/conf/corpus_pool{sfx}.yaml", defaults=DEFAULTS)["corpus"]
    a = [j for j in plan_corpus(check, 1) if j["split"] == "test"]
    b = [j for j in plan_corpus(voices, 1) if j["split"] == "test"]
    assert sorted((j["lang"], j["sentence"]) for j in a) == sorted((j["lang"], j["sentence"]) for j in b)
    seen = {v for cfg in (check, pool) for vs in cfg["variants"].values() for v in vs}
    assert not set(voices["variants"]["test"]) & seen
    assert len({j["voice"].split("+")[1] for j in b}) == len(voices["variants"]["test"])   # every voice speaks


def test_phonemizer_agrees_with_corpus(smoke):
    from speechkd.bin.phonemize import main
    from speechkd.corpus.phonemize import phone_agreement

    out, _ = smoke
    ref, hyp = {}, {}
    for s in SPLITS:
        with pytest.raises(SystemExit) as e:
            main([str(out / "data" / s), "--out-name", "phones_g2p", "--compare", "phones"])
        assert e.value.code == 0
        d = DataDir(out / "data" / s)
        ref.update(d.read("phones"))
        hyp.update(d.read("phones_g2p"))
    a = phone_agreement(ref, hyp)
    print(f"phonemizer vs synthesis phones: {a}")
    assert a["utts"] == len(ref)
    assert a["identical"] >= 0.85 and a["per"] < 0.01, a


def test_speaker_id_round_trip():
    from speechkd.corpus.mini_espeak import parse_speaker_id, speaker_id

    assert parse_speaker_id(speaker_id("de", "f5", 65, 145)) == ("de", "f5", 65, 145)
    assert parse_speaker_id("en_Alexp50r160_00012") == ("en", "Alex", 50, 160)   # utterance ids too
    with pytest.raises(ValueError, match="not a mini_espeak speaker id"):
        parse_speaker_id("utt0001")
