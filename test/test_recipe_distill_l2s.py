"""Distill-L2S recipes: the mini_espeak smoke run end to end, and the Common Voice recipe's data stages
on a fake Common Voice tree."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from recipe_runner import assert_rescored, copy_recipe

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = dict(os.environ, SPEECHKD_ROOT=str(ROOT), OMP_NUM_THREADS="1", **extra)
    env["PATH"] = f"{ROOT / 'tools' / 'venv' / 'bin'}:{env['PATH']}"
    return env


def _run(cmd, cwd, timeout, **env):
    p = subprocess.run(cmd, cwd=cwd, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stdout[-4000:]
    return p.stdout


def _losses(train_log: Path, key: str):
    return [float(x) for x in re.findall(rf"\b{key}[=: ]\s*([0-9.]+(?:e-?\d+)?)", train_log.read_text())]


def test_mini_espeak_distill_l2s_smoke(tmp_path, smoke_zoo):
    d = copy_recipe("mini_espeak/distill_l2s", tmp_path)
    _run(["./run.sh", "--conf_tag", "smoke", "--text_control", "true"], d, timeout=900,
         SPEECHKD_ZOO=str(smoke_zoo))

    # both teachers are the zoo's, linked (no private speech model or text model trained)
    for link, name in (("exp/teacher/model", "ssl_ml"), ("exp/text_lm/model", "text_ml")):
        assert (d / link).is_symlink() and (d / link).resolve() == (Path(smoke_zoo) / name).resolve(), link
    assert not (d / "exp/teacher/train.log").exists() and not (d / "exp/text_lm_log").exists()
    # text teacher in HF format, its MLM loss went down
    lm = json.loads((d / "exp/text_lm/model/train_log.json").read_text())
    assert (d / "exp/text_lm/model/config.json").exists() and lm["num_params"] > 0
    assert sum(lm["losses"][-5:]) / 5 < sum(lm["losses"][:5]) / 5

    for lang in ("de", "ru"):
        plain, l2s = d / f"exp/lam0/seed1/{lang}", d / f"exp/lam0.5/seed1/{lang}"
        for run in (plain, l2s, d / f"exp/std0.5/seed1/{lang}", d / f"exp/scratch/seed1/{lang}"):
            # measured on the smoke run (2026-12-03): last/first CTC loss 0.44-0.64 for every row and language
            ctc = _losses(run / "train.log", "ctc")
            assert len(ctc) >= 2 and ctc[-1] < 0.8 * ctc[0], (run, ctc)
            errs = assert_rescored(run / "decode_test/score.json", d)   # jiwer agrees with our CER/WER
            assert {"char", "word"} <= set(errs)
        assert "l2s" not in (plain / "config.yaml").read_text()
        assert "weight: 0.5" in (l2s / "config.yaml").read_text()
        assert re.search(r"\bl2s[=: ]\s*[0-9.]", (l2s / "train.log").read_text())
        assert (d / f"exp/l2s_text_states/{lang}.pt").exists()

    # chosen on dev among λ = 0.5 on raw and on standardised text states; dev decodes exist for every run
    sel = json.loads((d / "exp/lam_dev/selection.json").read_text())
    chosen = sel["seeds"]["seed1"]["chosen"]
    assert chosen in ("0.5", "std0.5") and (d / "exp/lam_dev/seed1").is_symlink()
    picked = "exp/lam0.5/seed1" if chosen == "0.5" else "exp/std0.5/seed1"
    assert (d / "exp/lam_dev/seed1").resolve() == (d / picked).resolve()
    for lang in ("de", "ru"):
        assert_rescored(d / f"exp/lam0/seed1/{lang}/decode_dev/score.json", d)
        scratch = d / f"exp/scratch/seed1/{lang}"     # the speech teacher's architecture, random weights
        assert "random weights (finetune.init_weights: false)" in (scratch / "train.log").read_text()
        assert_rescored(scratch / "decode_test/score.json", d)

    # the control row: the same L2S term from text_ml's architecture and tokenizer with random weights
    rand = d / "exp/text_rand/model"
    assert json.loads((rand / "config.json").read_text())["hidden_size"] == \
        json.loads((d / "exp/text_lm/model/config.json").read_text())["hidden_size"]
    for lang in ("de", "ru"):
        ctl = d / f"exp/randtext0.5/seed1/{lang}"
        assert "text_rand" in (ctl / "config.yaml").read_text() and "weight: 0.5" in (ctl / "config.yaml").read_text()
        assert (d / f"exp/l2s_text_states_rand/{lang}.pt").exists()
        assert_rescored(ctl / "decode_test/score.json", d)

        std = d / f"exp/std0.5/seed1/{lang}"       # the same term on standardised text states
        assert "target_norm: standardize" in (std / "config.yaml").read_text()
        assert "mean pairwise cosine of token states raw" in (std / "train.log").read_text()
        assert_rescored(std / "decode_test/score.json", d)

    text = (d / "RESULTS_smoke.md").read_text()
    assert "| Distill-L2S λ=0.5, random-weight text model (control) |" in text
    assert "| Distill-L2S λ=0.5, standardised text states |" in text
    assert "the trained text teacher helps beyond" in text
    assert "| Distill-L2S, λ chosen on dev (per seed) |" in text
    assert "the speech teacher beats training from scratch" in text
    assert "| plain fine-tuning (λ=0) |" in text and "| Distill-L2S λ=0.5 |" in text
    assert "WER (%) of the same runs" in text and "avg" in text


def test_commonvoice_distill_l2s_data_stages(tmp_path):
    from speechkd.corpus.commonvoice import make_fake_tree

    cv = make_fake_tree(tmp_path / "cv", langs=("en", "de"))
    d = copy_recipe("commonvoice/distill_l2s", tmp_path)
    out = _run(["./run.sh", "--stage", "1", "--stop_stage", "2", "--cv_root", str(cv), "--langs", "en de",
                "--nj", "1"], d, timeout=300)
    assert "stage 2" in out
    for lang in ("en", "de"):
        for split in ("train", "dev", "test"):
            assert (d / f"data/{split}_{lang}/wav.scp").exists()
        assert (d / f"data/train_sub_{lang}/text").read_text() == (d / f"data/train_{lang}/text").read_text()
        units = (d / f"data/token_char_{lang}/units.txt").read_text()
        assert len(units.splitlines()) > 5
    # a missing XLSR path is a clear error, not a crash further down
    p = subprocess.run(["./run.sh", "--stage", "3", "--stop_stage", "3"], cwd=d, env=_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert p.returncode != 0 and "--xlsr is required" in p.stdout


def test_commonvoice_distill_l2s_dryrun(tmp_path):
    """``--conf_tag dryrun`` of the real recipe on one language: fake Common Voice, XLSR-53 and InfoXLM base
    with random weights as Hugging Face dirs (the text model's tokenizer trained on the fake transcripts),
    conf/finetune.yaml with 2 updates, λ 0 and 0.5 → decode, score, RESULTS_dryrun.md (~1.2 GB a run)."""
    import shutil

    import yaml

    d = copy_recipe("commonvoice/distill_l2s", tmp_path)
    try:
        _run(["bash", "run.sh", "--conf_tag", "dryrun", "--langs", "de"], d, 1500, cmd_backend="local")
        xlsr = yaml.safe_load((d / "exp/xlsr/model/config.yaml").read_text())["model"]
        assert (xlsr["d_model"], xlsr["n_layers"]) == (1024, 24)
        text = json.loads((d / "data/dryrun_src/infoxlm_base_random/config.json").read_text())
        assert (text["hidden_size"], text["num_hidden_layers"], text["vocab_size"]) == (768, 12, 250002)
        for lam in ("0", "0.5"):
            run = d / f"exp/lam{lam}/seed1/de"
            steps = [ln for ln in (run / "train.log").read_text().splitlines() if "[train]" in ln]
            assert len(steps) == 2 and all((" l2s " in ln) == (lam != "0") for ln in steps), steps
            assert_rescored(run / "decode_test" / "score.json", d)
        rows = [ln for ln in (d / "RESULTS_dryrun.md").read_text().splitlines() if ln.startswith("| ")]
        assert rows[0].split("|")[2:4] == [" de ", " avg "], rows[0]
        assert [r.split("|")[1].strip() for r in rows[1:3]] == ["XLSR fine-tuning (λ=0)", "Distill-L2S (InfoXLM) λ=0.5"]
    finally:   # paper-size random weights: not left to pytest's kept temp dirs
        shutil.rmtree(tmp_path / "egs", ignore_errors=True)
