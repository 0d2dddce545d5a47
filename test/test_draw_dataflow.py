"""docs/draw_dataflow.py: the recipe data-flow picture is drawn from run.sh itself."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("draw_dataflow", ROOT / "docs" / "draw_dataflow.py")
draw_dataflow = importlib.util.module_from_spec(spec)
sys.modules["draw_dataflow"] = draw_dataflow     # dataclasses look their module up
spec.loader.exec_module(draw_dataflow)


def test_stages_of_hubert_kd_follow_its_run_sh():
    stages = draw_dataflow.parse_stages(ROOT / "egs/mini_espeak/hubert_kd/run.sh")
    assert [(s.first, s.last) for s in stages] == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 8), (9, 9)]
    by = {s.first: s for s in stages}
    assert by[1].entries == ["speechkd-synth-corpus"] and "data/corpus" in by[1].writes
    # commands reached through the shell functions a stage calls (distil, finetune_decode)
    assert by[6].entries == ["speechkd-distill"] and "distil" in by[6].title
    assert by[7].entries == ["speechkd-finetune", "steps/decode_score.sh"]
    assert "skipped" not in by[7].title
    assert by[5].title.endswith("zoo ssl_en_cnn (English HuBERT, waveform CNN)")   # ${teacher:-...} -> default


def test_draw_writes_a_picture(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "flow.png"
    assert draw_dataflow.main([str(ROOT / "egs/mini_espeak/ssl/run.sh"), str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.tmp*"))


def test_a_file_without_stages_is_an_error(tmp_path):
    f = tmp_path / "run.sh"
    f.write_text("echo hello\n")
    with pytest.raises(SystemExit, match="no 'if"):
        draw_dataflow.parse_stages(f)
