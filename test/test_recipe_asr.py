"""Smoke test of the foundation recipe egs/mini_espeak/asr (issue 2): every stage runs end to end."""
from __future__ import annotations

import json

from recipe_runner import copy_recipe, log_values, run_recipe


def test_mini_asr_smoke(tmp_path):
    rdir = copy_recipe("mini_espeak/asr", tmp_path)
    run_recipe(rdir, "--conf_tag", "smoke", "--seeds", "1")
    # corpus + features
    for s in ("train", "dev", "test"):
        assert (rdir / "data" / s / "feats.scp").stat().st_size > 0
    # teacher pretraining learned something (masked-prediction loss went down)
    losses = log_values(rdir / "exp" / "teacher" / "train.log", "loss_m")
    assert len(losses) >= 3 and losses[-1] < losses[0], losses
    for init in ("teacher", "scratch"):
        exp = rdir / "exp" / f"ft_{init}" / "seed1"
        ctc = log_values(exp / "train.log", "ctc")
        assert ctc[-1] < ctc[0], ctc
        score = json.loads((exp / "decode_test" / "score.json").read_text())
        assert "phone" in json.dumps(score)
    results = (rdir / "RESULTS_smoke.md").read_text()
    assert "fine-tuned from HuBERT-iter1 teacher" in results and "| Snt | Wrd |" in results
    assert "torch" in results  # environment header
