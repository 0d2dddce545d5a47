import hashlib
import itertools
import math

import numpy as np
import pytest
import torch

from speechkd.align.accuracy import boundary_errors
from speechkd.align.ctm import CTMEntry, read_ctm, write_ctm
from speechkd.align.forced_align import ctc_forced_align, min_frames, spans_to_segments
from speechkd.align.shuffle import (concat_crossfade, cut_segments, raised_cosine, shuffle_pieces_across,
                                    shuffle_utterance, utt_rng)
from speechkd.asr.ctc_search import collapse
from speechkd.utils.errors import DataError


# ------------------------------------------------------------------------------------- forced alignment
def _peaky_posteriors(path, V, gen, peak=6.0):
    logits = torch.randn(len(path), V, generator=gen)
    logits[torch.arange(len(path)), torch.tensor(path)] += peak
    return logits.log_softmax(-1)


def test_recovers_known_path_exactly_in_a_padded_batch():
    g = torch.Generator().manual_seed(0)
    paths = [[0, 3, 3, 0, 0, 3, 1, 1, 1, 0, 2, 0, 0, 4],   # repeated label 3 3 needs the blank
             [2, 2, 0, 1, 4, 4, 0, 0, 0]]
    targets = [collapse(p) for p in paths]
    assert targets[0] == [3, 3, 1, 2, 4]
    T = max(map(len, paths))
    lp = torch.zeros(2, T, 5)
    for b, p in enumerate(paths):
        lp[b, :len(p)] = _peaky_posteriors(p, 5, g)
        lp[b, len(p):] = torch.randn(T - len(p), 5).log_softmax(-1)  # padding must not matter
    al = ctc_forced_align(lp, targets, torch.tensor([len(p) for p in paths]))
    for b, p in enumerate(paths):
        assert al[b].path.tolist() == p
        assert [s.token for s in al[b].spans] == targets[b]
    assert [(s.start, s.end) for s in al[0].spans] == [(1, 3), (5, 6), (6, 9), (10, 11), (13, 14)]
    assert al[0].score == pytest.approx(float(lp[0, torch.arange(14), torch.tensor(paths[0])].sum()), abs=1e-4)


def _brute_force_viterbi(lp, target):
    T, V = lp.shape
    best = -math.inf
    for path in itertools.product(range(V), repeat=T):
        if collapse(path) == list(target):
            best = max(best, sum(float(lp[t, path[t]]) for t in range(T)))
    return best


def test_viterbi_score_equals_brute_force_max():
    g = torch.Generator().manual_seed(1)
    cases = [([1, 2], 5), ([1, 1], 5), ([2, 1, 2], 6), ([3], 4), ([1, 1, 1], 5)]
    lp = torch.randn(len(cases), 6, 4, generator=g, dtype=torch.float64).log_softmax(-1)
    al = ctc_forced_align(lp, [c[0] for c in cases], torch.tensor([c[1] for c in cases]))
    for b, (target, T) in enumerate(cases):
        want = _brute_force_viterbi(lp[b, :T], target)
        assert al[b].score == pytest.approx(want, abs=1e-5)
        # the returned path is valid and scores what it claims
        assert collapse(al[b].path.tolist()) == target and len(al[b].path) == T
        assert float(lp[b, torch.arange(T), al[b].path].sum()) == pytest.approx(want, abs=1e-5)


def test_impossible_alignment_gives_minus_inf():
    assert min_frames([1, 1, 2]) == 4
    lp = torch.randn(1, 3, 3).log_softmax(-1)
    al = ctc_forced_align(lp, [[1, 1, 2]])
    assert al[0].score == -math.inf and al[0].spans == []
    with pytest.raises(ValueError):
        ctc_forced_align(lp, [[0, 1]])


def test_spans_to_segments_modes():
    al = ctc_forced_align(torch.zeros(1, 10, 4).log_softmax(-1), [[1, 2]])  # uniform: any valid path
    spans = al[0].spans
    assert len(spans) == 2
    from speechkd.align.forced_align import TokenSpan

    spans = [TokenSpan(0, 1, 2, 3), TokenSpan(1, 2, 6, 8)]
    assert spans_to_segments(spans, 0.02, "peaky") == [pytest.approx((0.04, 0.02)), pytest.approx((0.12, 0.04))]
    assert spans_to_segments(spans, 0.02, "start") == [pytest.approx((0.04, 0.08)), pytest.approx((0.12, 0.04))]
    seg = spans_to_segments(spans, 0.02, "mid", offset=1.0)
    assert seg[0] == pytest.approx((1.04, 0.05)) and seg[1] == pytest.approx((1.09, 0.07))


# ------------------------------------------------------------------------------------------------- CTM
def test_ctm_roundtrip_and_errors(tmp_path):
    ctm = {"b": [CTMEntry("b", 0.5, 0.1, "x")],
           "a": [CTMEntry("a", 0.18, 0.12, "ə"), CTMEntry("a", 0.1, 0.08, "h", conf=0.9)]}
    write_ctm(tmp_path / "p.ctm", ctm)
    lines = (tmp_path / "p.ctm").read_text().splitlines()
    assert lines == ["a 1 0.100 0.080 h 0.900", "a 1 0.180 0.120 ə", "b 1 0.500 0.100 x"]
    back = read_ctm(tmp_path / "p.ctm")
    assert list(back) == ["a", "b"] and [e.token for e in back["a"]] == ["h", "ə"]
    assert back["a"][1].end == pytest.approx(0.3) and back["a"][0].conf == pytest.approx(0.9)
    (tmp_path / "bad.ctm").write_text("a 1 0.1 0.1 h\na 1 zero 0.1 x\n")
    with pytest.raises(DataError, match=r"bad.ctm:2"):
        read_ctm(tmp_path / "bad.ctm")


# -------------------------------------------------------------------------------------------- accuracy
def test_boundary_accuracy_hand_made():
    def ctm(utt, starts, toks):
        return [CTMEntry(utt, s, 0.05, t) for s, t in zip(starts, toks)]

    ref = {"u1": ctm("u1", [0.10, 0.20, 0.30], "abc"), "u2": ctm("u2", [0.0, 0.5], "xy"),
           "u3": ctm("u3", [0.0], "q")}
    hyp = {"u1": ctm("u1", [0.11, 0.23, 0.30], "abc"),   # errors 10, 30, 0 ms
           "u2": ctm("u2", [0.05, 0.45], "xy"),          # errors 50, 50 ms (early: -50)
           "u3": ctm("u3", [0.0], "z"),                  # token mismatch: skipped
           "u4": ctm("u4", [0.0], "q")}                  # not in ref
    st = boundary_errors(hyp, ref, tolerance_ms=20)
    assert st["n_utts"] == 2 and st["n_boundaries"] == 5 and st["n_mismatch"] == 1 and st["n_missing"] == 1
    assert st["median_abs_ms"] == pytest.approx(30.0)
    assert st["pct_within_tol"] == pytest.approx(40.0)       # 10 and 0 ms
    assert st["mean_abs_ms"] == pytest.approx(28.0)
    assert st["mean_signed_ms"] == pytest.approx((10 + 30 + 0 + 50 - 50) / 5)


# --------------------------------------------------------------------------------------------- shuffle
def _utt(sr=1000):
    rng = np.random.default_rng(0)
    wav = rng.standard_normal(1000).astype(np.float32)
    toks = list("abcdefgh")
    starts = [0.1 + 0.1 * i for i in range(8)]
    ents = [CTMEntry("u1", s, 0.08, t) for s, t in zip(starts, toks)]  # 20 ms gap after each
    return wav, ents, sr


def _hashes(arrays):
    return sorted(hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest() for a in arrays)


def test_cut_and_shuffle_without_crossfade_keeps_segments():
    wav, ents, sr = _utt()
    lead, pieces, trail = cut_segments(wav, ents, sr)
    assert len(lead) == 100 and len(trail) == 1000 - 880 and [len(p) for _, p in pieces] == [100] * 7 + [80]
    new, new_ents = shuffle_utterance(wav, ents, sr, utt_rng(1, "u1"), crossfade_ms=0)
    assert len(new) == len(wav)
    np.testing.assert_array_equal(new[:100], lead)
    np.testing.assert_array_equal(new[-120:], trail)
    cuts = [int(round(e.start * sr)) for e in new_ents] + [int(round(new_ents[-1].end * sr))]
    segs = [new[a:b] for a, b in zip(cuts, cuts[1:])]
    assert _hashes(segs) == _hashes([p for _, p in pieces])
    assert sorted(e.token for e in new_ents) == list("abcdefgh")
    assert [e.token for e in new_ents] != list("abcdefgh")
    # deterministic by seed, different across seeds
    again, _ = shuffle_utterance(wav, ents, sr, utt_rng(1, "u1"), crossfade_ms=0)
    other, _ = shuffle_utterance(wav, ents, sr, utt_rng(2, "u1"), crossfade_ms=0)
    np.testing.assert_array_equal(new, again)
    assert not np.array_equal(new, other)


def test_crossfade_length_and_ramp():
    r = raised_cosine(4)
    assert np.allclose(r + r[::-1], 1.0) and np.all(np.diff(r) > 0)
    pieces = [np.ones(10), np.full(6, 2.0), np.full(3, 3.0), np.full(20, 4.0)]
    out, starts, ov = concat_crossfade(pieces, fade=5)
    assert ov == [0, 3, 1, 1]  # min(5, prev//2, cur//2)
    assert len(out) == sum(map(len, pieces)) - sum(ov)
    assert starts == [0, 7, 12, 14]
    np.testing.assert_allclose(out[7:10], 1.0 * (1 - raised_cosine(3)) + 2.0 * raised_cosine(3), rtol=1e-6)
    wav, ents, sr = _utt(sr=1000)
    new, _ = shuffle_utterance(wav, ents, sr, utt_rng(1, "u1"), crossfade_ms=5)
    assert len(new) == len(wav) - 5 * 9  # 9 joins (lead|p1, p1|p2, ..., p8|trail) of 5 samples each


def test_shuffle_across_utterances_keeps_pool():
    wav, ents, sr = _utt()
    wav2 = -wav
    ents2 = [CTMEntry("u2", e.start, e.dur, e.token.upper()) for e in ents]
    cut = {"u1": cut_segments(wav, ents, sr), "u2": cut_segments(wav2, ents2, sr)}
    res = shuffle_pieces_across(cut, utt_rng(3, "spk"), sr, crossfade_ms=0)
    toks = sorted(e.token for u in res for e in res[u][1])
    assert toks == sorted(list("abcdefgh") + list("ABCDEFGH"))
    assert {e.token for e in res["u1"][1]} != set("abcdefgh")  # mixed across utterances
    segs = []
    for u, (w, es) in res.items():
        cuts = [int(round(e.start * sr)) for e in es] + [int(round(es[-1].end * sr))]
        segs += [w[a:b] for a, b in zip(cuts, cuts[1:])]
    assert _hashes(segs) == _hashes([p for u in cut for _, p in cut[u][1]])


def test_shuffle_datadir_cli(tiny_datadir, tmp_path):
    from speechkd.bin.shuffle_phones import main
    from speechkd.data.datadir import DataDir

    d = DataDir(tiny_datadir)
    ctm = {}
    for utt in d.utt_ids():
        ctm[utt] = [CTMEntry(utt, 0.05 + 0.1 * i, 0.1, f"p{i}") for i in range(4)]
    write_ctm(tmp_path / "phones.ctm", ctm)
    out = tmp_path / "shuf"
    argv = ["--data", str(tiny_datadir), "--ctm", str(tmp_path / "phones.ctm"), "--out", str(out),
            "--wav-dir", str(tmp_path / "wavs"), "--seed", "1", "--across-utts"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    o = DataDir(out)
    o.validate()
    assert sorted(o.utt_ids()) == sorted(d.utt_ids())
    assert read_ctm(out / "phones.ctm").keys() == set(d.utt_ids())
    first = {u: (tmp_path / "wavs" / f"{u}.wav").read_bytes() for u in o.utt_ids()}
    with pytest.raises(SystemExit):
        main(argv)
    assert first == {u: (tmp_path / "wavs" / f"{u}.wav").read_bytes() for u in o.utt_ids()}


def test_word_entries_from_a_character_alignment():
    from speechkd.align.ctm import CTMEntry, word_entries, words_from_char_ctm
    from speechkd.utils.errors import DataError

    chars = [("h", 0.10, 0.05), ("i", 0.15, 0.05), ("<space>", 0.20, 0.10), ("y", 0.30, 0.04),
             ("o", 0.34, 0.06), ("u", 0.40, 0.05)]
    entries = [CTMEntry("u1", s, d, t) for t, s, d in chars]
    words = word_entries(entries, ["hi", "you"])
    assert [(w.token, w.start, w.end) for w in words] == [("hi", 0.10, 0.20), ("you", 0.30, 0.45)]
    # "▁" spaces (sentencepiece-style char units), and the utterance's entries out of time order
    sp = [CTMEntry("u2", e.start, e.dur, "\u2581" if e.token == "<space>" else e.token) for e in entries]
    got = words_from_char_ctm({"u2": sp[::-1], "u3": sp}, {"u2": "hi you"})
    assert list(got) == ["u2"] and [w.token for w in got["u2"]] == ["hi", "you"]
    with pytest.raises(DataError, match="u1: the character alignment has 2 words, the transcript 3"):
        word_entries(entries, ["hi", "yo", "u"])
