"""Hyper-parameter selection on dev (speechkd.asr.selection): per seed the lowest dev error wins, the seed
link points at the winner's run, a re-run swaps the link, and missing decodes are named."""
import json

import pytest

from speechkd.asr.selection import dev_error, select_on_dev
from speechkd.utils.errors import ConfigError


def _score(path, err, unit="char"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "score.json").write_text(json.dumps({"units": {unit: {"Err": err}}}))


def _runs(tmp_path, table):
    """table: {cand: {seed: {lang: dev err}}}"""
    for cand, seeds in table.items():
        for seed, langs in seeds.items():
            for lang, err in langs.items():
                _score(tmp_path / cand / seed / lang / "decode_dev", err)
                _score(tmp_path / cand / seed / lang / "decode_test", 100 - err)


def test_lowest_mean_dev_error_per_seed_wins(tmp_path):
    _runs(tmp_path, {"lam0.25": {"seed1": {"de": 30, "ru": 20}, "seed2": {"de": 10, "ru": 10}},
                     "lam0.5": {"seed1": {"de": 20, "ru": 20}, "seed2": {"de": 12, "ru": 12}, "seed3": {"de": 1, "ru": 1}}})
    cands = {"0.25": tmp_path / "lam0.25", "0.5": tmp_path / "lam0.5"}
    assert dev_error(tmp_path / "lam0.25/seed1", "decode_dev", ["de", "ru"], "char") == 25.0
    res = select_on_dev(cands, tmp_path / "lam_dev", langs=["de", "ru"], unit="char")
    assert {s: r["chosen"] for s, r in res.items()} == {"seed1": "0.5", "seed2": "0.25"}
    assert (tmp_path / "lam_dev/seed1").resolve() == (tmp_path / "lam0.5/seed1").resolve()
    assert not (tmp_path / "lam_dev/seed1").readlink().is_absolute()          # relative: the tree can move
    summary = json.loads((tmp_path / "lam_dev/selection.json").read_text())
    assert summary["skipped"] == ["seed3"] and summary["seeds"]["seed2"]["dev"] == {"0.25": 10.0, "0.5": 12.0}
    # a re-run after new dev scores swaps the link in place
    _score(tmp_path / "lam0.25/seed1/de/decode_dev", 0)
    select_on_dev(cands, tmp_path / "lam_dev", langs=["de", "ru"], unit="char")
    assert (tmp_path / "lam_dev/seed1").resolve() == (tmp_path / "lam0.25/seed1").resolve()
    # ties go to the candidate named first
    _runs(tmp_path / "tie", {"a": {"seed1": {"de": 5}}, "b": {"seed1": {"de": 5}}})
    tie = select_on_dev({"b": tmp_path / "tie/b", "a": tmp_path / "tie/a"}, tmp_path / "tie/out", langs=["de"])
    assert tie["seed1"]["chosen"] == "b"


def test_missing_dev_decode_or_unit_is_named(tmp_path):
    _runs(tmp_path, {"a": {"seed1": {"de": 5}}})
    (tmp_path / "b/seed1/de").mkdir(parents=True)
    with pytest.raises(ConfigError, match="b/seed1/de/decode_dev/score.json: not found"):
        select_on_dev({"a": tmp_path / "a", "b": tmp_path / "b"}, tmp_path / "out", langs=["de"])
    with pytest.raises(ConfigError, match="no 'word' scores"):
        select_on_dev({"a": tmp_path / "a"}, tmp_path / "out", langs=["de"], unit="word")
    with pytest.raises(ConfigError, match="no seed dir common"):
        select_on_dev({"a": tmp_path / "a", "c": tmp_path / "c"}, tmp_path / "out", langs=["de"])
