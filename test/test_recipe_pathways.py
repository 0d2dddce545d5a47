"""Smoke test of egs/mini_espeak/pathways (issue 5): every stage end to end on the smoke config, and the
MLS pathways recipe's data stage on a fake MLS tree."""
from __future__ import annotations

import json
import os
import subprocess

from speechkd.utils.config import load_config

from recipe_runner import REPO, assert_rescored, copy_recipe, log_values, run_recipe

LANGS = ("en", "de", "es", "it")


def test_mini_pathways_smoke(tmp_path):
    rdir = copy_recipe("mini_espeak/pathways", tmp_path)
    run_recipe(rdir, "--conf_tag", "smoke", "--beam", "2")
    exp = rdir / "exp"
    for s in ("train", "dev", "test"):
        assert (rdir / "data" / s / "feats.scp").stat().st_size > 0
    # bounds from the smoke run of 2026-12-03: last/first RNN-T loss 0.54 (dense multilingual), 0.53-0.59
    # (dense monolingual); the pathways/agnostic joint stages log 2 points at smoke size (no trend to bound)
    losses = log_values(exp / "dense_multi" / "train.log", "loss")
    assert len(losses) >= 3 and losses[-1] < 0.75 * losses[0], losses
    for lang in LANGS:
        assert (exp / "dense_mono" / lang / "model" / "model.pt").exists()
        mono = log_values(exp / "dense_mono" / lang / "train.log", "loss")
        assert len(mono) >= 3 and mono[-1] < 0.8 * mono[0], (lang, mono)
        spars = json.loads((exp / "mono_sparse" / lang / "params.json").read_text())["sparsity"]
        assert abs(spars - 0.7) < 0.01
    for seed in ("1", "2"):
        pw = exp / "pathways" / f"seed{seed}"
        info = json.loads((pw / "params.json").read_text())
        for lang in LANGS:
            assert (pw / "export" / lang / "model.pt").exists()
            assert info[f"params_{lang}"] < json.loads((exp / "dense_multi" / "params.json").read_text())["params_total"]
        assert (pw / "overlap.png").stat().st_size > 1000
    # per-language WER from streaming decodes; dense rows 0 % sparse, pruned rows ~70 %
    for run, sparse in (("dense_mono", False), ("dense_multi", False), ("mono_sparse", True),
                        ("agnostic/seed1", True), ("pathways/seed2", True), ("dense_equal/seed1", False)):
        score = json.loads((exp / run / "decode_test" / "score.json").read_text())
        for lang in LANGS:
            assert score["per_lang"][lang]["word"]["Snt"] > 0
        assert_rescored(exp / run / "decode_test" / "score.json", rdir)   # jiwer agrees with our WER/CER
        p = json.loads((exp / run / "decode_test" / "params.json").read_text())
        assert (abs(p["sparsity"] - 70.0) < 1.0) if sparse else p["sparsity"] < 1.0
    assert (exp / "pathways" / "seed1" / "decode_test_beam" / "score.json").exists()
    # the dense baseline at pathways' budget: the dense multilingual model + rounds x round_steps + joint steps
    conf = REPO / "egs" / "mini_espeak" / "pathways" / "conf"
    prune, joint = load_config(conf / "prune_smoke.yaml"), load_config(conf / "pathways_smoke.yaml")
    extra = prune["prune"]["rounds"] * prune["prune"]["round_steps"] + joint["train"]["max_steps"]
    assert load_config(exp / "dense_equal" / "seed1" / "config.yaml")["train"]["max_steps"] == extra
    results = (rdir / "RESULTS_smoke.md").read_text()
    for row in ("dense monolingual", "dense multilingual", "dense multilingual, equal budget",
                "language-agnostic pruned", "monolingual sparse", "pathways"):
        assert f"| {row}" in results
    assert "(n=2)" in results and "overlap_smoke.png" in results and "| IoU | en | de | es | it |" in results
    assert (rdir / "overlap_smoke.png").exists()
    cer = (rdir / "RESULTS_cer_smoke.md").read_text()
    assert "| Snt | Wrd |" in cer
    for claim in ("pathways beat language-agnostic pruning", "pathways beat the dense multilingual model"):
        assert claim in cer
    assert (rdir / "RESULTS_beam_smoke.md").exists()


def test_mls_pathways_data_stage(tmp_path):
    from speechkd.corpus.mls import make_fake_tree

    src = tmp_path / "mls"
    make_fake_tree(src, languages=["german", "italian"])
    rdir = copy_recipe("mls/pathways", tmp_path)
    env = {**os.environ, "SPEECHKD_ROOT": str(REPO), "cmd_backend": "local"}
    proc = subprocess.run(["bash", "run.sh", "--mls_root", str(src), "--languages", "german,italian",
                           "--stop_stage", "1"], cwd=rdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for code in ("de", "it"):
        for split in ("train", "dev", "test"):
            d = rdir / "data" / f"{split}_{code}"
            assert (d / "wav.scp").stat().st_size > 0 and (d / "text").stat().st_size > 0
    assert (rdir / "data" / "train" / "utt2lang").exists()
    langs = set(ln.split()[1] for ln in (rdir / "data" / "train" / "utt2lang").read_text().splitlines())
    assert langs == {"de", "it"}


def test_mls_pathways_dryrun(tmp_path):
    """``--conf_tag dryrun``: every stage of the MLS recipe on a fake MLS (german, polish as the 10 h
    language) with conf/train.yaml's paper-size streaming transducer, 2 updates per training job and one per
    pruning round, then RESULTS_dryrun.md with the two languages' columns."""
    rdir = copy_recipe("mls/pathways", tmp_path)
    env = {**os.environ, "SPEECHKD_ROOT": str(REPO), "cmd_backend": "local", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "run.sh", "--conf_tag", "dryrun"], cwd=rdir, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:]
    exp = rdir / "exp"
    cfg = load_config(exp / "dense_multi" / "model" / "config.yaml")["model"]
    conf = load_config(rdir / "conf" / "train.yaml")["model"]
    assert (cfg["d_model"], cfg["n_layers"]) == (conf["d_model"], conf["n_layers"]) == (512, 16)
    for run in ("dense_multi", "dense_mono/de", "dense_mono/pl", "pathways/seed1", "dense_equal/seed1",
                "agnostic/seed1/joint"):
        assert len(log_values(exp / run / "train.log", "loss")) == 2, run      # the dry run's 2 updates
    for lang in ("de", "pl"):
        spars = json.loads((exp / "mono_sparse" / lang / "params.json").read_text())["sparsity"]
        assert abs(spars - 0.7) < 0.005, (lang, spars)                       # conf/prune.yaml: target 0.7
        assert (exp / "pathways" / "seed1" / "export" / lang / "model.pt").exists()
    assert_rescored(exp / "pathways" / "seed1" / "decode_test" / "score.json", rdir)
    res = (rdir / "RESULTS_dryrun.md").read_text()
    row = next(ln for ln in res.splitlines() if ln.startswith("| pathways |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] != "–" and cells[6] != "–" and cells[2] == "–", row     # de, pl filled; fr not run
