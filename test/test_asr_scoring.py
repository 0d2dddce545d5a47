import json

import pytest

from speechkd.asr.scoring import ErrorStats, format_alignment, format_table, score, score_files, split_units
from speechkd.utils.errors import DataError


def test_hand_counted_word_example():
    st, al = score({"u1": "a b c d"}, {"u1": "a x c d e"}, "word")
    assert (st.snt, st.wrd, st.corr, st.sub, st.dele, st.ins, st.err, st.serr) == (1, 4, 3, 1, 0, 1, 2, 1)
    assert al[0].ops == [("C", "a", "a"), ("S", "b", "x"), ("C", "c", "c"), ("C", "d", "d"), ("I", None, "e")]
    table = format_table([("test", st)])
    assert table.splitlines()[0] == "| dataset | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |"
    assert table.splitlines()[2] == "| test | 1 | 4 | 75.0 | 25.0 | 0.0 | 25.0 | 50.0 | 100.0 |"
    block = format_alignment(al[0]).splitlines()
    assert block[1] == "Scores: (#C #S #D #I) 3 1 0 1"
    assert block[2].split() == ["REF:", "a", "B", "c", "d", "***"]
    assert block[3].split() == ["HYP:", "a", "X", "c", "d", "E"]
    assert block[4].split() == ["Eval:", "S", "I"]


def test_several_utterances_deletions_and_empty():
    refs = {"u1": "a b c", "u2": "x y", "u3": "p q r s", "u4": "ok"}
    hyps = {"u1": "a c", "u2": "", "u3": "p q r s", "u4": "ok ok"}
    # u1: C D C; u2: D D; u3: 4 C; u4: C I
    st, _ = score(refs, hyps, "word")
    assert (st.snt, st.wrd, st.corr, st.sub, st.dele, st.ins, st.serr) == (4, 10, 7, 0, 3, 1, 3)
    p = st.percentages()
    assert p["Err"] == pytest.approx(40.0) and p["S.Err"] == pytest.approx(75.0) and p["Corr"] == 70.0


def test_char_units_count_spaces():
    assert split_units("ab  c", "char") == ["a", "b", "<space>", "c"]
    st, _ = score({"u": "ab c"}, {"u": "abc"}, "char")
    # ref a b <space> c (4), hyp a b c: one deletion
    assert (st.wrd, st.corr, st.dele, st.sub, st.ins) == (4, 3, 1, 0, 0)


def test_score_files_per_language_and_json(tmp_path):
    (tmp_path / "text").write_text("u1 a b c d\nu2 hello world\nu3 x\n")
    (tmp_path / "utt2lang").write_text("u1 en\nu2 de\nu3 de\n")
    dec = tmp_path / "decode_test"
    dec.mkdir()
    (dec / "text").write_text("u1 a x c d e\nu2 hello world\nu3\n")
    res = score_files(tmp_path / "text", dec / "text", units=("word", "char"), utt2lang=tmp_path / "utt2lang")
    w = res["units"]["word"]
    assert (w["Snt"], w["Wrd"], w["counts"]["sub"], w["counts"]["del"], w["counts"]["ins"]) == (3, 7, 1, 1, 1)
    assert w["Err"] == pytest.approx(300 / 7, abs=1e-3)
    assert res["per_lang"]["en"]["word"]["Err"] == 50.0
    assert res["per_lang"]["de"]["word"]["counts"]["del"] == 1 and res["per_lang"]["de"]["word"]["Wrd"] == 3
    assert json.loads((dec / "score.json").read_text())["name"] == "decode_test"
    txt = (dec / "result.txt").read_text()
    assert "| decode_test/de | 2 | 3 |" in txt and "id: (u1)" in txt and "## char" in txt
    st = ErrorStats.from_dict(w)
    assert st.err == 3 and st.wrd == 7


def test_unknown_hyp_utt_names_file_and_line(tmp_path):
    (tmp_path / "ref").write_text("u1 a\n")
    (tmp_path / "hyp").write_text("u1 a\nu9 b\n")
    with pytest.raises(DataError, match=r"hyp:2: utterance 'u9'"):
        score_files(tmp_path / "ref", tmp_path / "hyp", tmp_path)


def test_score_cli_phones(tmp_path):
    from speechkd.bin.score import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "phones").write_text("u1 h ə l oʊ\nu2 w ɜː l d\n")
    dec = tmp_path / "dec"
    dec.mkdir()
    (dec / "text").write_text("u1 h ə l oʊ\nu2 w l d d\n")
    with pytest.raises(SystemExit) as e:
        main(["--data", str(data), "--ref-file", "phones", "--decode", str(dec)])
    assert e.value.code == 0
    res = json.loads((dec / "score.json").read_text())
    assert list(res["units"]) == ["phone"] and res["units"]["phone"]["Err"] == 25.0  # 2 errors / 8
