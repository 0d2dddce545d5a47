"""utils/lang_results_spec.py: per-language columns, rows and notes of a results spec (distilxlsr recipes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "utils" / "lang_results_spec.py"


def _run(tmp_path, *args, cwd=None):
    tpl = tmp_path / "tpl.yaml"
    tpl.write_text(yaml.safe_dump({"title": "t", "columns": [{"name": "x", "decode": "d"}], "notes": ["n1"],
                                   "rows": [{"name": "r", "exp": "e"}]}))
    out = tmp_path / "spec.yaml"
    p = subprocess.run([sys.executable, str(TOOL), str(tpl), str(out), *args], cwd=cwd or tmp_path,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, (yaml.safe_load(out.read_text()) if out.exists() else None)


def test_per_lang_columns_and_command_note(tmp_path):
    rec = tmp_path / "egs" / "mini_espeak" / "distilxlsr"
    rec.mkdir(parents=True)
    p, spec = _run(tmp_path, "--langs", "de ru", "--ft_mode", "per_lang", "--ft_note", "--command", "./run.sh -x",
                   cwd=rec)
    assert p.returncode == 0, p.stderr
    assert spec["columns"] == [{"name": "x", "decode": "d"}, {"name": "de", "decode": "de/decode_test"},
                               {"name": "ru", "decode": "ru/decode_test"}, {"name": "avg", "mean_of": ["de", "ru"]}]
    assert spec["notes"][0] == "Command: `./run.sh -x` in egs/mini_espeak/distilxlsr."
    assert spec["notes"][1] == "n1" and spec["notes"][-1].startswith("Fine-tuning: one CTC model per language")
    assert spec["rows"] == [{"name": "r", "exp": "e"}]            # rows kept without --rows


def test_joint_columns_and_rows(tmp_path):
    p, spec = _run(tmp_path, "--langs", "ky", "--ft_mode", "joint", "--rows", "teacher=a/b student")
    assert p.returncode == 0, p.stderr
    assert spec["columns"][1] == {"name": "ky", "decode": "all/decode_test", "lang": "ky"}
    assert spec["rows"] == [{"name": "teacher", "exp": "exp/ft_teacher/seed*"},
                            {"name": "student", "exp": "exp/ft_student/seed*"}]
    assert spec["notes"] == ["n1"]


def test_bad_mode_is_an_error_and_writes_nothing(tmp_path):
    p, spec = _run(tmp_path, "--langs", "de", "--ft_mode", "both")
    assert p.returncode != 0 and "per_lang or joint" in p.stderr and spec is None


def test_drop_unrun_rows(tmp_path):
    tpl = tmp_path / "tpl.yaml"
    tpl.write_text(yaml.safe_dump({"title": "t", "rows": [{"name": "λ=0", "exp": "exp/lam0/seed*"},
                                                          {"name": "λ=0.5", "exp": "exp/lam0.5/seed*"}]}))
    (tmp_path / "exp" / "lam0" / "seed1").mkdir(parents=True)
    out = tmp_path / "spec.yaml"
    p = subprocess.run([sys.executable, str(TOOL), str(tpl), str(out), "--langs", "de", "--drop_unrun"],
                       cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, p.stderr
    spec = yaml.safe_load(out.read_text())
    assert [r["name"] for r in spec["rows"]] == ["λ=0"] and spec["notes"] == ["Not run: λ=0.5."]
