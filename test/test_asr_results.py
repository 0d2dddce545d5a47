import json
import math

import pytest

from speechkd.asr.results import build_results, collect_environment, compare_rows, load_table_spec, summarize
from speechkd.asr.scoring import ErrorStats
from speechkd.utils.errors import ConfigError, DataError


def _write_score(path, err_en, err_de=None):
    """score.json with word Err = err_en % (100 reference words) and an optional per-language 'de'."""
    def st(err):
        return ErrorStats(snt=10, wrd=100, corr=100 - err, sub=err, serr=min(err, 10)).to_dict()

    data = {"name": path.name, "units": {"word": st(err_en)}, "per_lang": {}}
    if err_de is not None:
        data["per_lang"] = {"de": {"word": st(err_de)}}
    path.mkdir(parents=True, exist_ok=True)
    (path / "score.json").write_text(json.dumps(data))


SPEC = {
    "title": "toy results",
    "unit": "word",
    "columns": [{"name": "en", "decode": "decode_en"}, {"name": "de", "decode": "decode_multi", "lang": "de"}],
    "rows": [{"name": "teacher", "exp": "exp/teacher"},
             {"name": "student", "exp": "exp/student_seed*"},
             {"name": "student_shuf", "exp": "exp/shuf_seed*"}],
    "notes": ["toy data"],
}
ENV = {"date": "2026-11-23 15:00 UTC", "git": "abc1234", "torch": "2.13.0"}


def test_summarize_and_compare():
    m, s, n = summarize([20.0, 30.0])
    assert (m, n) == (25.0, 2) and s == pytest.approx(math.sqrt(50))
    assert summarize([7.0]) == (7.0, 0.0, 1)
    notes = compare_rows({"A": (25.0, 7.07, 2), "B": (26.0, 2.83, 2), "C": (10.0, 0.0, 1)}, "en")
    assert "en: A vs B: gap 1.0 < seed spread 7.1: within seed spread, no winner" in notes
    assert "en: C better than A by 15.0 (seed spread 7.1)" in notes
    assert not any("C vs" in n and "no winner" in n for n in notes)
    single = compare_rows({"A": (5.0, 0.0, 1), "B": (6.0, 0.0, 1)}, "de")
    assert single == ["de: A vs B: gap 1.0, single seed each (spread unknown)"]


def test_build_results_table_notes_and_details(tmp_path):
    _write_score(tmp_path / "exp/teacher/decode_en", 10)
    _write_score(tmp_path / "exp/teacher/decode_multi", 40, err_de=12)
    for seed, (en, de) in {1: (20, 30), 2: (30, 34)}.items():
        _write_score(tmp_path / f"exp/student_seed{seed}/decode_en", en)
        _write_score(tmp_path / f"exp/student_seed{seed}/decode_multi", 50, err_de=de)
    for seed, en in {1: 24, 2: 28}.items():
        _write_score(tmp_path / f"exp/shuf_seed{seed}/decode_en", en)   # no decode_multi: missing cells
    md = build_results(SPEC, root=tmp_path, env=ENV)
    lines = md.splitlines()
    assert lines[0] == "# toy results" and "- git: abc1234" in lines
    assert "| method | en | de |" in lines
    assert "| teacher | 10.0 | 12.0 |" in lines
    assert "| student | 25.0 ± 7.1 (n=2) | 32.0 ± 2.8 (n=2) |" in lines
    assert "| student_shuf | 26.0 ± 2.8 (n=2) | – |" in lines
    assert any("en: student vs student_shuf: gap 1.0 < seed spread 7.1: within seed spread, no winner" in l
               for l in lines)
    assert any("de: teacher better than student by 20.0" in l for l in lines)
    assert any("2 score file(s) missing" in l for l in lines)
    assert "- toy data" in lines
    # details: ESPnet table rows per seed dir
    assert "| exp/student_seed2/decode_en | 10 | 100 | 70.0 | 30.0 | 0.0 | 0.0 | 30.0 | 100.0 |" in lines
    assert "| exp/teacher/decode_multi/de | 10 | 100 | 88.0 | 12.0 | 0.0 | 0.0 | 12.0 | 100.0 |" in lines
    md2 = build_results({**SPEC, "rows": SPEC["rows"] + [{"name": "x", "exp": "exp/none_seed*"}]}, root=tmp_path, env=ENV)
    assert "exp/none_seed* (no run dir matches)" in md2 and "| x | – | – |" in md2
    with pytest.raises(DataError, match="score.json"):
        build_results(SPEC, root=tmp_path, env=ENV, strict=True)


def test_spec_errors_and_cli(tmp_path):
    with pytest.raises(ConfigError, match="rows"):
        load_table_spec({"columns": ["a"], "rows": []})
    with pytest.raises(ConfigError, match="metric"):
        load_table_spec({**SPEC, "metric": "WER"})
    import yaml

    from speechkd.bin.make_results import main

    _write_score(tmp_path / "exp/teacher/decode_en", 10)
    spec = {**SPEC, "columns": SPEC["columns"][:1], "rows": SPEC["rows"][:1]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as e:
        main(["--spec", str(tmp_path / "spec.yaml"), "--root", str(tmp_path), "--out", str(tmp_path / "R.md")])
    assert e.value.code == 0
    md = (tmp_path / "R.md").read_text()
    assert "| teacher | 10.0 |" in md and "- torch:" in md and "- gpu:" in md


def test_environment_has_required_fields():
    env = collect_environment(".")
    for k in ("date", "git", "python", "torch", "cpu", "gpu"):
        assert env[k]


# ------------------------------------------------------------------------------------- claims
def test_paired_t_matches_hand_computation():
    from speechkd.asr.claims import paired_t

    st = paired_t([2.0, 4.0, 3.0])
    # mean 3, sd 1, t = 3 / (1 / sqrt 3) = 5.196, df 2: two-sided p = 0.0351
    assert st["mean"] == pytest.approx(3.0) and st["sd"] == pytest.approx(1.0)
    assert st["t"] == pytest.approx(5.196, abs=1e-3) and st["p"] == pytest.approx(0.0351, abs=1e-3)
    assert math.isnan(paired_t([1.0])["p"])


def test_decide_claim_verdicts():
    from speechkd.asr.claims import decide_claim

    better = {"seed1": 20.0, "seed2": 21.0, "seed3": 19.5}
    clear = {"seed1": 30.0, "seed2": 31.5, "seed3": 29.0}
    assert decide_claim(better, clear, margin=2)["verdict"] == "reproduced"
    assert decide_claim(clear, better, margin=2)["verdict"] == "reversed"
    noisy = {"seed1": 22.0, "seed2": 18.0, "seed3": 22.5}   # gap inside the spread
    assert decide_claim(better, noisy, margin=2)["verdict"].startswith("not decided")
    # margin: a consistent gap of 1.5 with seed spread ~0.76 passes margin 1 but not margin 2
    small = {k: v + 1.5 for k, v in better.items()}
    small["seed3"] += 0.01
    assert decide_claim(better, small, margin=1)["verdict"] == "reproduced"
    assert decide_claim(better, small, margin=2)["verdict"].startswith("not decided")
    assert decide_claim({"seed1": 1.0}, {"seed1": 5.0})["verdict"] == "single seed: not decided"
    # pairs by run name: unmatched seeds are left out
    assert decide_claim({"seed1": 1.0, "seed9": 0.0}, {"seed1": 5.0, "seed2": 6.0})["n"] == 1


def test_claims_section_generated_from_scores(tmp_path):
    for seed, (a, b) in {1: (10, 20), 2: (11, 22), 3: (10, 21)}.items():
        _write_score(tmp_path / f"exp/a/seed{seed}/decode_en", a, err_de=a)
        _write_score(tmp_path / f"exp/b/seed{seed}/decode_en", b, err_de=a + 0.5 * (seed - 2))
    spec = {"title": "claims", "unit": "word",
            "columns": [{"name": "en", "decode": "decode_en"}, {"name": "de", "decode": "decode_en", "lang": "de"}],
            "rows": [{"name": "A", "exp": "exp/a/seed*"}, {"name": "B", "exp": "exp/b/seed*"}],
            "claims": [{"name": "A beats B", "better": "A", "worse": "B", "columns": ["en", "de"], "margin": 2,
                        "count": {"columns": ["en", "de"], "at_least": 2}}]}
    text = build_results(spec, root=tmp_path, env=ENV)
    assert "## Claims (generated from the score files)" in text
    assert "- **A beats B** (A vs B; paired t-test over seeds, α = 0.05, gap > 2 × seed spread):" in text
    assert "  - en: reproduced: gap +10.7 (positive = A better)" in text
    assert "  - de: not decided (within the noise)" in text
    assert "decided for A on 1 of 2 columns (en); the claim asks for at least 2: not met" in text
    with pytest.raises(ConfigError, match="names a row"):
        load_table_spec({**spec, "claims": [{"name": "x", "better": "A", "worse": "Z"}]})
    with pytest.raises(ConfigError, match="unknown column"):
        load_table_spec({**spec, "claims": [{"name": "x", "better": "A", "worse": "B", "columns": ["fr"]}]})


def test_target_claim_and_column_units(tmp_path):
    for seed, a in {1: 18, 2: 21, 3: 19}.items():
        d = tmp_path / f"exp/a/seed{seed}/decode_test"
        _write_score(d, a)
        sc = json.loads((d / "score.json").read_text())
        sc["units"]["char"] = ErrorStats(snt=10, wrd=100, corr=100 - a // 3, sub=a // 3, serr=5).to_dict()
        (d / "score.json").write_text(json.dumps(sc))
    spec = {"title": "targets", "unit": "char",
            "columns": [{"name": "CER", "decode": "decode_test"},
                        {"name": "WER", "decode": "decode_test", "unit": "word"}],
            "rows": [{"name": "A", "exp": "exp/a/seed*"}],
            "claims": [{"name": "A reaches WER <= 20", "row": "A", "column": "WER", "at_most": 20},
                       {"name": "A reaches WER <= 19", "row": "A", "column": "WER", "at_most": 19},
                       {"name": "A keeps CER >= 7", "row": "A", "column": "CER", "at_least": 7}]}
    text = build_results(spec, root=tmp_path, env=ENV)
    assert "## Summary: Err (%)" in text                      # mixed units: the column names say which
    assert "| A | 6.3 ± 0.6 (n=3) | 19.3 ± 1.5 (n=3) |" in text   # CER 6/7/6, WER 18/21/19
    assert "- **A reaches WER <= 20** (A, WER ≤ 20): met: mean 19.3 ± 1.5 over 3 run(s), worst 21.0" in text
    assert "- **A reaches WER <= 19** (A, WER ≤ 19): not met: mean 19.3" in text
    assert "- **A keeps CER >= 7** (A, CER ≥ 7): not met: mean 6.3 ± 0.6 over 3 run(s), worst 6.0" in text
    with pytest.raises(ConfigError, match="one of 'at_most', 'at_least'"):
        load_table_spec({**spec, "claims": [{"name": "x", "row": "A", "column": "WER"}]})
    with pytest.raises(ConfigError, match="names a row"):
        load_table_spec({**spec, "claims": [{"name": "x", "row": "Z", "column": "WER", "at_most": 1}]})
    with pytest.raises(ConfigError, match="unknown column"):
        load_table_spec({**spec, "claims": [{"name": "x", "row": "A", "column": "PER", "at_most": 1}]})


def test_rows_left_out_of_the_notes(tmp_path):
    for seed, (a, b) in {1: (10, 20), 2: (11, 22)}.items():
        _write_score(tmp_path / f"exp/a/seed{seed}/decode_en", a)
        _write_score(tmp_path / f"exp/b/seed{seed}/decode_en", b)
    _write_score(tmp_path / "exp/c/decode_en", 5)
    spec = {"title": "t", "unit": "word", "columns": [{"name": "en", "decode": "decode_en"}],
            "rows": [{"name": "A", "exp": "exp/a/seed*"}, {"name": "B", "exp": "exp/b/seed*"},
                     {"name": "C", "exp": "exp/c", "compare": False}]}
    text = build_results(spec, root=tmp_path, env=ENV)
    assert "| C | 5.0 |" in text                        # in the table
    assert "en: A better than B" in text and "C better" not in text and "vs C" not in text


def test_optional_rows_left_out_with_their_claims_when_not_run(tmp_path):
    for seed, (a, b) in {1: (10, 20), 2: (11, 22)}.items():
        _write_score(tmp_path / f"exp/a/seed{seed}/decode_en", a)
        _write_score(tmp_path / f"exp/b/seed{seed}/decode_en", b)
    spec = {"title": "t", "unit": "word", "columns": [{"name": "en", "decode": "decode_en"}],
            "rows": [{"name": "A", "exp": "exp/a/seed*"}, {"name": "B", "exp": "exp/b/seed*"},
                     {"name": "V1", "exp": "exp/v1/seed*", "optional": True}],
            "claims": [{"name": "A beats B", "better": "A", "worse": "B"},
                       {"name": "A beats V1", "better": "A", "worse": "V1"},
                       {"name": "V1 at most 5", "row": "V1", "column": "en", "at_most": 5}]}
    text = build_results(spec, root=tmp_path, env=ENV, strict=True)   # strict: an absent optional row is fine
    assert "| V1 |" not in text and "A beats V1" not in text and "V1 at most 5" not in text
    assert "**A beats B**" in text and "Not run, left out: V1." in text
    with pytest.raises(DataError):   # a required row that is missing still fails a strict build
        build_results({**spec, "rows": spec["rows"][:2] + [{"name": "V1", "exp": "exp/v1/seed*"}]},
                      root=tmp_path, env=ENV, strict=True)
    _write_score(tmp_path / "exp/v1/seed1/decode_en", 4)
    text = build_results(spec, root=tmp_path, env=ENV, strict=True)   # once run, it is a row like the others
    assert "| V1 | 4.0 |" in text and "**V1 at most 5**" in text and "Not run" not in text


def test_fit_claims_keeps_what_the_table_can_decide():
    from speechkd.asr.claims import fit_claims

    claims = [{"name": "a>b", "better": "A", "worse": "B", "columns": ["x", "y"]},
              {"name": "a>c", "better": "A", "worse": "C"},
              {"name": "b<=5", "row": "B", "column": "y", "at_most": 5},
              {"name": "a>b on z", "better": "A", "worse": "B", "columns": ["z"]}]
    kept, dropped = fit_claims(claims, {"A", "B"}, {"x"})
    assert kept == [{"name": "a>b", "better": "A", "worse": "B", "columns": ["x"]}]
    assert dropped == [("a>c", "row 'C' not run"), ("b<=5", "column 'y' not in this run"),
                       ("a>b on z", "none of its columns in this run")]
    assert claims[0]["columns"] == ["x", "y"]        # the input is not modified


def test_readings_apply_only_to_the_numbers_they_were_written_for(tmp_path):
    import re

    for seed, err in ((1, 10), (2, 12)):
        _write_score(tmp_path / f"exp/a/seed{seed}/decode_en", err)
    spec = {"title": "readings", "unit": "word", "columns": [{"name": "en", "decode": "decode_en"}],
            "rows": [{"name": "A", "exp": "exp/a/seed*"}]}
    text = build_results(spec, root=tmp_path, env=ENV)
    fp = re.search(r"- scores fingerprint: ([0-9a-f]{12})", text).group(1)
    assert "## Reading" not in text
    assert build_results(spec, root=tmp_path, env=ENV) == text                        # stable across calls
    read = {**spec, "readings": [{"scores": fp, "text": "A is at 11 % because of X."},
                                 {"scores": "000000000000", "text": "an old reading"}]}
    text = build_results(read, root=tmp_path, env=ENV)
    assert "- A is at 11 % because of X." in text and "an old reading" not in text
    assert "1 reading(s) written for other numbers (scores 000000000000) left out" in text
    # a re-run with other numbers: the reading no longer applies, and says so
    _write_score(tmp_path / "exp/a/seed2/decode_en", 13)
    text = build_results(read, root=tmp_path, env=ENV)
    assert "because of X" not in text and f"scores {fp}, 000000000000" in text
    with pytest.raises(ConfigError, match="readings"):
        load_table_spec({**spec, "readings": [{"text": "no fingerprint"}]})


def test_language_and_key_missing_from_a_score_file_are_empty_cells_unless_strict(tmp_path):
    """A run on fewer languages than the spec (a dry run): its score.json has no per-language entry and its
    params file no key for the others; the table leaves those cells empty, --strict names the file."""
    _write_score(tmp_path / "exp/teacher/decode_en", 10)
    _write_score(tmp_path / "exp/teacher/decode_multi", 40)              # no 'de' in per_lang
    (tmp_path / "exp/teacher/params.json").write_text(json.dumps({"params_en": 5.0}))
    spec = {**SPEC, "rows": SPEC["rows"][:1],
            "columns": SPEC["columns"] + [{"name": "p en", "file": "params.json", "key": "params_en"},
                                          {"name": "p de", "file": "params.json", "key": "params_de"}]}
    md = build_results(spec, root=tmp_path, env=ENV)
    assert "| teacher | 10.0 | – | 5.0 | – |" in md.splitlines()
    with pytest.raises(DataError, match="params_de|'de'"):
        build_results(spec, root=tmp_path, env=ENV, strict=True)
