import itertools
import math

import pytest
import torch

from speechkd.asr.ctc_search import collapse, ctc_decode, ctc_greedy, ctc_prefix_beam, ctc_prefix_beam_nbest
from speechkd.asr.tokenizer import (CharTokenizer, PhoneTokenizer, build_tokenizer, load_tokenizer,
                                    read_units)
from speechkd.utils.errors import ConfigError, DataError

TEXTS = ["the cat sat on the mat", "a dog ran far away", "cats and dogs are pets"] * 4


# ------------------------------------------------------------------------------------------- tokenizers
@pytest.mark.parametrize("space", ["<space>", "\u2581"])
def test_char_tokenizer_roundtrip_and_save(tmp_path, space):
    tok = build_tokenizer("char", TEXTS, tmp_path / "tok", space_symbol=space)
    assert tok.blank_id == 0 and tok.units[:2] == ["<blank>", "<unk>"]
    chars = sorted(set("".join(TEXTS).replace(" ", "")))
    assert tok.vocab_size == 2 + len(chars) + 1  # + space
    ids = tok.encode("the  dog")
    assert len(ids) == 7 and 0 not in ids
    assert tok.units[ids[3]] == space
    assert tok.decode(ids) == "the dog"
    tok2 = load_tokenizer(tmp_path / "tok")
    assert isinstance(tok2, CharTokenizer) and tok2.units == tok.units and tok2.encode("the dog") == ids
    assert read_units(tmp_path / "tok" / "units.txt") == tok.units


def test_unknown_units_counted_or_strict_error(tmp_path):
    tok = build_tokenizer("phone", ["h ə l oʊ", "w ɜː l d"], tmp_path / "p")
    assert isinstance(tok, PhoneTokenizer) and tok.vocab_size == 2 + 7
    ids = tok.encode("h ə x l y x")
    assert ids.count(tok.unk_id) == 3 and tok.unk_count == 3
    assert tok.unk_units["x"] == 2
    assert "3 unknown units" in tok.unk_report()
    assert tok.encode("<blank> <unk> h") == [1, 1, tok.unit2id["h"]]  # blank never appears in targets
    with pytest.raises(DataError, match=r"data/train/phones:7.*'x'"):
        tok.encode("h x", where="data/train/phones:7", strict=True)
    strict = load_tokenizer(tmp_path / "p", strict=True)
    with pytest.raises(DataError):
        strict.encode("q")


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_sentencepiece_tiny_data(tmp_path, kind):
    tok = build_tokenizer(kind, TEXTS, tmp_path / "sp", vocab_size=40)
    assert tok.blank_id == 0 and tok.unk_id == 1 and tok.units[:2] == ["<blank>", "<unk>"]
    assert 4 < tok.vocab_size <= 40
    ids = tok.encode("the cat ran")
    assert min(ids) >= 2 and tok.decode(ids) == "the cat ran"
    tok2 = load_tokenizer(tmp_path / "sp")
    assert tok2.encode("the cat ran") == ids and tok2.vocab_size == tok.vocab_size
    assert (tmp_path / "sp" / "sp.model").exists()
    assert tok2.encode("zzz cat").count(1) >= 1 and tok2.unk_count >= 1


def test_bad_units_file_names_line(tmp_path):
    (tmp_path / "units.txt").write_text("<blank> 0\n<unk> 1\na 3\n")
    with pytest.raises(DataError, match=r"units.txt:3"):
        read_units(tmp_path / "units.txt")
    with pytest.raises(ConfigError):
        build_tokenizer("nope", TEXTS)


def test_make_tokens_cli(tmp_path):
    from speechkd.bin.make_tokens import main

    (tmp_path / "phones").write_text("u1 a b c\nu2 c d\n")
    with pytest.raises(SystemExit) as e:
        main(["--kind", "phone", "--text", str(tmp_path / "phones"), "--out", str(tmp_path / "tok")])
    assert e.value.code == 0
    assert load_tokenizer(tmp_path / "tok").units == ["<blank>", "<unk>", "a", "b", "c", "d"]


# ------------------------------------------------------------------------------------------- CTC search
def _brute_force_best(probs):
    """Sum path probabilities per collapsed label sequence over all V^T alignments."""
    T, V = probs.shape
    totals = {}
    for path in itertools.product(range(V), repeat=T):
        p = math.prod(float(probs[t, path[t]]) for t in range(T))
        key = tuple(collapse(path))
        totals[key] = totals.get(key, 0.0) + p
    return max(totals.items(), key=lambda kv: kv[1]), totals


def test_greedy_batched_with_lengths():
    # frames: a a blank a b b | padded
    lab = torch.tensor([[1, 1, 0, 1, 2, 2], [2, 0, 2, 2, 1, 1]])
    lp = torch.nn.functional.one_hot(lab, 3).float().mul(10).log_softmax(-1)
    assert ctc_greedy(lp, torch.tensor([6, 4])) == [[1, 1, 2], [2, 2]]
    assert collapse([1, 1, 0, 1, 2, 2]) == [1, 1, 2]


def test_beam_width_one_equals_greedy_on_peaked_inputs():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 30, 6, generator=g) * 8  # peaked
    lp = logits.log_softmax(-1)
    lengths = torch.tensor([30, 25, 17, 30])
    greedy = ctc_greedy(lp, lengths)
    beam1 = [ctc_prefix_beam(lp[b], int(lengths[b]), beam=1) for b in range(4)]
    assert beam1 == greedy
    assert ctc_decode(lp, lengths, beam=1) == greedy


def test_prefix_beam_beats_greedy_on_hand_made_example():
    # labels {blank, a}; each frame blank 0.6, a 0.4: best path is all blanks (""), p = 0.216,
    # but "a" collects 0.688 of the mass over its many alignments.
    probs = torch.tensor([[0.6, 0.4]] * 3, dtype=torch.float64)
    (best, p_best), totals = _brute_force_best(probs)
    assert best == (1,) and abs(p_best - 0.688) < 1e-9 and abs(totals[()] - 0.216) < 1e-9
    lp = probs.log()
    assert ctc_greedy(lp[None])[0] == []
    assert ctc_prefix_beam(lp, beam=4) == [1]
    nb = ctc_prefix_beam_nbest(lp, beam=4)
    assert abs(math.exp(nb[0][1]) - 0.688) < 1e-9
    assert abs(math.exp(dict((tuple(k), v) for k, v in nb)[(1, 1)]) - totals[(1, 1)]) < 1e-9


def test_prefix_beam_matches_brute_force_on_random_small_inputs():
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        probs = torch.randn(4, 3, generator=g, dtype=torch.float64).softmax(-1)
        (best, p_best), totals = _brute_force_best(probs)
        nb = ctc_prefix_beam_nbest(probs.log(), beam=50, token_beam=3, prune_threshold=None)  # exact
        assert tuple(nb[0][0]) == best and abs(math.exp(nb[0][1]) - p_best) < 1e-9
        for ids, lp in nb:
            assert abs(math.exp(lp) - totals[tuple(ids)]) < 1e-9


def test_insertion_bonus_changes_ranking():
    probs = torch.tensor([[0.6, 0.4]] * 3, dtype=torch.float64)
    # a strong negative bonus makes the empty hypothesis win
    assert ctc_prefix_beam(probs.log(), beam=4, insertion_bonus=-5.0) == []


def test_pruned_default_search_agrees_with_exhaustive_settings_on_peaked_inputs():
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        lp = (torch.randn(20, 6, generator=g, dtype=torch.float64) * 4).log_softmax(-1)
        assert ctc_prefix_beam(lp, beam=8) == ctc_prefix_beam(lp, beam=64, token_beam=6, prune_threshold=None)
