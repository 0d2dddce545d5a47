"""DistilXLSR recipes: mini_espeak smoke run end to end, the LibriSpeech / Common Voice data stages on fake
trees, and the pieces they add (aligner accuracy table, results columns params / mean_of / sections)."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from recipe_runner import assert_rescored, copy_recipe

from speechkd.align.accuracy import accuracy_markdown, boundary_errors
from speechkd.align.ctm import CTMEntry, read_ctm
from speechkd.asr.results import build_results, load_table_spec
from speechkd.asr.scoring import ErrorStats
from speechkd.utils.config import load_config
from speechkd.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ENV = {"date": "2026-01-01", "git": "abc"}


def run_recipe(d: Path, *args, timeout=900, env=None):
    env = dict(os.environ, SPEECHKD_ROOT=str(ROOT), **(env or {}))
    p = subprocess.run(["bash", "run.sh", *args], cwd=d, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-4000:]
    return p.stdout


def train_losses(log: Path, key: str = "loss"):
    pat = re.compile(r"\[train\] .*? " + re.escape(key) + r" ([0-9.eE+-]+)")
    return [float(m.group(1)) for m in pat.finditer(log.read_text(errors="replace"))]


# --------------------------------------------------------------------------------- library pieces
def test_accuracy_markdown_matches_boundary_errors():
    ref = {"u1": [CTMEntry("u1", 0.10, 0.10, "a"), CTMEntry("u1", 0.20, 0.10, "b"),
                  CTMEntry("u1", 0.30, 0.10, "c")]}
    hyp = {"u1": [CTMEntry("u1", 0.12, 0.08, "a"), CTMEntry("u1", 0.20, 0.14, "b"),
                  CTMEntry("u1", 0.34, 0.06, "c")]}
    st = boundary_errors(hyp, ref)       # errors 20, 0, 40 ms -> median 20, 2 of 3 within 20 ms
    assert st["median_abs_ms"] == pytest.approx(20.0)
    assert st["pct_within_tol"] == pytest.approx(200 / 3)
    md = accuracy_markdown({"dev": st})
    row = md.strip().splitlines()[-1].split("|")
    assert [c.strip() for c in row[1:-1]] == ["dev", "1", "3", "20.0", "20.0", "66.7", "0"]
    assert "within 20 ms" in md


def test_results_params_mean_of_and_sections(tmp_path):
    def score(err):   # err % of 100 phones substituted
        return {"units": {"phone": ErrorStats(snt=1, wrd=100, corr=100 - err, sub=err, serr=1).to_dict()}}
    for row, seed, errs, n in [("a", 1, (10, 20), 1e6), ("a", 2, (20, 40), 1e6), ("b", 1, (50, 50), 5e5)]:
        d = tmp_path / f"exp/{row}/seed{seed}"
        for lang, e in zip(("de", "ru"), errs):
            (d / lang / "decode_test").mkdir(parents=True)
            (d / lang / "decode_test" / "score.json").write_text(json.dumps(score(e)))
        (d / "params.json").write_text(json.dumps({"params_M": n / 1e6}))
    (tmp_path / "acc.md").write_text("| set | median |\n|---|---|\n| x | 12.0 |\n")
    spec = {"title": "t", "unit": "phone", "columns": [
        {"name": "params (M)", "file": "params.json", "key": "params_M"},
        {"name": "de", "decode": "de/decode_test"}, {"name": "ru", "decode": "ru/decode_test"},
        {"name": "avg", "mean_of": ["de", "ru"]}],
        "rows": [{"name": "A", "exp": "exp/a/seed*"}, {"name": "B", "exp": "exp/b/seed*"}],
        "sections": [{"title": "Aligner", "file": "acc.md"}]}
    md = build_results(spec, root=tmp_path, env=ENV, strict=True)
    line_a = next(l for l in md.splitlines() if l.startswith("| A |"))
    line_b = next(l for l in md.splitlines() if l.startswith("| B |"))
    # A: avg per seed 15 and 30 -> mean 22.5, sample std 10.6; params 1.0
    assert line_a.split("|")[2].strip() == "1.0 ± 0.0 (n=2)"
    assert "22.5 ± 10.6 (n=2)" in line_a and line_b.split("|")[5].strip() == "50.0"
    assert "## Aligner" in md and "| x | 12.0 |" in md
    assert not any("params" in n for n in md.split("Notes:")[1].split("## ")[0].splitlines() if "better" in n)
    with pytest.raises(ConfigError):
        load_table_spec({**spec, "columns": [{"name": "avg", "mean_of": ["zz"]}]})
    with pytest.raises(ConfigError):
        load_table_spec({**spec, "columns": [{"name": "p", "file": "params.json"}]})
    (tmp_path / "acc.md").unlink()
    with pytest.raises(Exception):
        build_results(spec, root=tmp_path, env=ENV, strict=True)


# ---------------------------------------------------------------------------- mini_espeak smoke run
@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_zoo):
    if shutil.which("speechkd-distill") is None or shutil.which("espeak-ng") is None:
        pytest.skip("console scripts (tools/setup.sh) or espeak-ng missing")
    d = copy_recipe("mini_espeak/distilxlsr", tmp_path_factory.mktemp("dx"))
    out = run_recipe(d, "--conf_tag", "smoke", "--seeds", "1", timeout=1500,
                     env={"SPEECHKD_ZOO": str(smoke_zoo)})
    return d, out


def test_smoke_teacher_comes_from_the_zoo(smoke, smoke_zoo):
    """Stage 8 links the zoo's ssl_ml as the teacher: no private teacher is trained."""
    d, _ = smoke
    link = d / "exp/teacher/model"
    assert link.is_symlink() and link.resolve() == (Path(smoke_zoo) / "ssl_ml").resolve()
    assert not (d / "exp/teacher/train.log").exists()
    assert not list((d / "exp").rglob("pretrain*.log"))


def test_smoke_aligner_accuracy_is_measured(smoke):
    d, _ = smoke
    st = json.loads((d / "exp/align_train_en/accuracy.json").read_text())
    assert st["n_boundaries"] > 50 and st["n_utts"] > 0
    assert st["tolerance_ms"] == 20.0
    # against an aligner that knows the phones and the speech's start and end and spreads the phones evenly
    # in between (espeak-ng audio has no silences, so this baseline is strong: ~47 ms here): the smoke
    # aligner (tiny, few updates: ~86 ms) stays within 3x of it, while a broken alignment step or an aligner
    # on CTC's blank plateau is off by hundreds of ms (249 ms measured for the post-LN aligner). The default
    # aligner's 13-14 ms (RESULTS.md) beats it.
    ref = read_ctm(d / "data/train_en/phones.ctm")
    hyp = read_ctm(d / "exp/align_train_en/phones.ctm")
    assert boundary_errors(hyp, ref)["median_abs_ms"] == pytest.approx(st["median_abs_ms"])
    uniform = {}
    for utt, es in ref.items():
        t0, t1 = es[0].start, es[-1].start + es[-1].dur
        step = (t1 - t0) / len(es)
        uniform[utt] = [CTMEntry(utt, t0 + k * step, step, e.token) for k, e in enumerate(es)]
    base = boundary_errors(uniform, ref)
    print("aligner median", st["median_abs_ms"], "ms; uniform", base["median_abs_ms"], "ms")
    assert st["median_abs_ms"] < 3.0 * base["median_abs_ms"], (st, base)
    assert "within 20 ms" in (d / "exp/aligner_accuracy.md").read_text()


def test_smoke_shuffled_english_and_students(smoke):
    d, _ = smoke
    src = (d / "data/train_en/utt2spk").read_text().splitlines()
    shuf = (d / "data/train_en_shuf/utt2spk").read_text().splitlines()
    assert len(shuf) == len(src) and (d / "data/train_en_shuf/feats.scp").exists()
    # the shuffled transcripts are permutations of the aligned phones, not the originals
    ph = dict(l.split(" ", 1) for l in (d / "data/train_en/phones").read_text().splitlines())
    ph_s = dict(l.split(" ", 1) for l in (d / "data/train_en_shuf/phones").read_text().splitlines())
    assert all(sorted(ph_s[u].split()) == sorted(ph[u].split()) for u in ph_s)
    assert sum(ph_s[u] != ph[u] for u in ph_s) > len(ph_s) // 2
    # bounds from the smoke run of 2026-12-03 (last/first loss): distillation 0.60 for each student, CTC
    # fine-tuning 0.37-0.74 (teacher ru the highest)
    for name in ("student_en", "distilxlsr", "nojump"):   # distilled with seed 1 (seed N = distillation seed N)
        losses = train_losses(d / f"exp/{name}/seed1/train.log")
        assert len(losses) >= 2 and losses[-1] < 0.8 * losses[0], (name, losses)
    for ft in sorted((d / "exp").glob("ft_*/seed1/*/train.log")):
        losses = train_losses(ft)
        assert len(losses) >= 2 and losses[-1] < 0.9 * losses[0], (ft, losses)
        assert (d / f"exp/{name}/seed1/model/cmvn.npz").exists()
        assert load_config(d / f"exp/{name}/seed1/config.yaml")["train"]["seed"] == 1
    # the from-scratch row: the students' architecture, random weights, its front-end trained too
    for lang in ("de", "ru"):
        ft = d / f"exp/ft_scratch/seed1/{lang}"
        assert "random weights (finetune.init_weights: false)" in (ft / "train.log").read_text()
        assert load_config(ft / "config.yaml")["model"]["freeze_frontend"] is False
    t = json.loads((d / "exp/ft_teacher/seed1/params.json").read_text())["params"]
    s = json.loads((d / "exp/ft_distilxlsr/seed1/params.json").read_text())["params"]
    assert 0.4 * t < s < 0.8 * t        # half the layers; front-end and pos-conv are kept whole


def test_smoke_results_table(smoke):
    d, _ = smoke
    md = (d / "RESULTS_smoke.md").read_text()
    assert "## Phone aligner accuracy" in md
    header = next(l for l in md.splitlines() if l.startswith("| method |"))
    assert [c.strip() for c in header.split("|")[1:-1]] == ["method", "params (M)", "de", "ru", "avg"]
    rows = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| method")
            and ("teacher" in l or "student" in l or "DistilXLSR" in l)]
    assert len(rows) >= 4 and "from scratch (the students' architecture, random weights)" in md
    assert "the distilled student keeps what the teacher gives" in md   # the claims are decided
    for r in rows[:4]:
        cells = [c.strip() for c in r.split("|")[2:-1]]
        per = [float(c.split()[0]) for c in cells[1:]]
        assert not any(math.isnan(p) for p in per), r
    # every decode behind the table is re-scored by an independent scorer (jiwer) and agrees
    scores = sorted((d / "exp").rglob("decode_test*/score.json"))
    assert len(scores) >= 4
    for sc in scores:
        assert "phone" in assert_rescored(sc, d)


# ----------------------------------------------------------------------------- real-corpus data stages
def test_librispeech_recipe_data_stages(tmp_path):
    if shutil.which("speechkd-phonemize") is None:
        pytest.skip("console scripts missing (tools/setup.sh)")
    from speechkd.corpus.librispeech import make_fake_tree

    tree = make_fake_tree(tmp_path / "src", finetune=False)
    d = copy_recipe("librispeech/distilxlsr", tmp_path)
    run_recipe(d, "--librispeech", str(tree["librispeech"]), "--stop_stage", "3", timeout=300)
    phones = (d / "data/train_clean_100/phones").read_text().splitlines()
    text = (d / "data/train_clean_100/text").read_text().splitlines()
    assert len(phones) == len(text) == 4 and all(len(l.split()) > 2 for l in phones)
    assert (d / "data/dev_clean/phones").exists()
    units = (d / "data/token_phone/units.txt").read_text().split()
    assert len(units) > 5


def test_commonvoice_recipe_data_stages(tmp_path):
    if shutil.which("speechkd-phonemize") is None:
        pytest.skip("console scripts missing (tools/setup.sh)")
    from speechkd.corpus.commonvoice import make_fake_tree

    tree = make_fake_tree(tmp_path / "src", langs=("de", "tr"), mp3=False)
    d = copy_recipe("commonvoice/distilxlsr", tmp_path)
    run_recipe(d, "--commonvoice", str(tree), "--langs", "de tr", "--n_label", "1", "--stop_stage", "4",
               timeout=300)
    for l in ("de", "tr"):
        assert len((d / f"data/ft_{l}/utt2spk").read_text().splitlines()) == 1
        assert (d / f"data/test_{l}/phones").read_text().strip()
    langs = {l.split()[1] for l in (d / "data/test_all/utt2lang").read_text().splitlines()}
    assert langs == {"de", "tr"}
    assert (d / "data/token_phone/units.txt").exists()


def test_librispeech_and_commonvoice_dryruns(tmp_path):
    """``--conf_tag dryrun`` of both real DistilXLSR recipes, chained as a user runs them: LibriSpeech (fake
    tree, XLSR-53-size teacher with random weights as a Hugging Face dir, imported; the three 12-layer
    students, 2 updates each), then Common Voice on those models (fake tree, one language and two models to
    bound time and disk: an XLSR-53-size fine-tuning writes ~1.3 GB) → RESULTS_dryrun.md."""
    if shutil.which("speechkd-phonemize") is None:
        pytest.skip("console scripts missing (tools/setup.sh)")
    ls = copy_recipe("librispeech/distilxlsr", tmp_path)
    cv = copy_recipe("commonvoice/distilxlsr", tmp_path)
    env = {"cmd_backend": "local", "OMP_NUM_THREADS": "1"}
    try:
        run_recipe(ls, "--conf_tag", "dryrun", timeout=1200, env=env)
        teacher = load_config(ls / "exp/teacher/model/config.yaml")["model"]
        assert (teacher["d_model"], teacher["n_layers"]) == (1024, 24)          # XLSR-53's shape
        for name in ("student_en", "distilxlsr", "nojump"):
            st = load_config(ls / f"exp/{name}/model/config.yaml")["model"]
            assert (st["d_model"], st["n_layers"]) == (1024, 12), name           # half the teacher's depth
            assert len(train_losses(ls / f"exp/{name}/train.log")) == 2, name     # the dry run's 2 updates
            assert not (ls / f"exp/{name}/checkpoints").exists(), name           # keep_final_state false
        assert (ls / "data/train_clean_100_shuf/wav.scp").exists()
        run_recipe(cv, "--conf_tag", "dryrun", "--langs", "de", "--models",
                   f"teacher={ls}/exp/teacher/model distilxlsr={ls}/exp/distilxlsr/model", timeout=1200, env=env)
        for name in ("teacher", "distilxlsr"):
            run = cv / f"exp/ft_{name}/seed1/de"
            assert len(train_losses(run / "train.log")) == 2, name
            assert_rescored(run / "decode_test" / "score.json", cv)
        res = (cv / "RESULTS_dryrun.md").read_text()
        rows = [ln for ln in res.splitlines() if ln.startswith("| teacher") or ln.startswith("| distilxlsr")]
        assert len(rows) == 2 and all("–" not in r.split("|")[-3] for r in rows), res[-3000:]
    finally:   # ~10 GB of random paper-size weights: do not leave them to pytest's kept temp dirs
        shutil.rmtree(tmp_path / "egs", ignore_errors=True)
