"""Run a recipe's ``run.sh`` in a scratch copy of its folder, as the recipe smoke tests do.

The copy lives at ``<tmp>/egs/<corpus>/<method>`` with ``<tmp>/egs/TEMPLATE``, ``<tmp>/egs/<corpus>/conf``
and ``<tmp>/utils`` linked to the repository's, so the recipe's relative links (``utils``, ``steps``,
``path.sh``, ``cmd.sh``) resolve as in the repository while data/, dump/ and exp/ stay in the scratch dir.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_recipe(recipe: str, tmp: Path) -> Path:
    """``recipe`` like ``"mini_espeak/asr"``; returns the scratch recipe dir. The other recipes of the same
    corpus get their ``conf/`` linked (a corpus config may name a sibling's, e.g. the zoo pool excludes every
    recipe corpus's sentences); a later ``copy_recipe`` of one of them replaces that stub by a full copy."""
    src = REPO / "egs" / recipe
    dst = tmp / "egs" / recipe
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and [p.name for p in dst.iterdir()] == ["conf"] and (dst / "conf").is_symlink():
        shutil.rmtree(dst)   # a sibling's conf stub
    shutil.copytree(src, dst, symlinks=True,
                    ignore=shutil.ignore_patterns("data", "dump", "exp", "data_*", "dump_*", "exp_*", "run.log",
                                                  "RESULTS*.md", "*.png"))
    for link, target in ((tmp / "egs" / "TEMPLATE", REPO / "egs" / "TEMPLATE"), (tmp / "utils", REPO / "utils")):
        if not link.exists():   # several recipes may share one scratch tree
            link.symlink_to(target)
    corpus_conf = src.parent / "conf"
    if corpus_conf.is_dir() and not (dst.parent / "conf").exists():
        (dst.parent / "conf").symlink_to(corpus_conf)
    for link in [p for p in dst.rglob("*") if p.is_symlink() and not p.exists()]:
        # a link into a sibling recipe (e.g. local/data.sh -> ../../distill_l2s/local/data.sh): the scratch
        # tree has no such sibling, so point it at the repository's file
        target = (src / link.relative_to(dst)).resolve()
        link.unlink()
        link.symlink_to(target)
    for sib in src.parent.iterdir():
        stub = dst.parent / sib.name
        if sib.is_dir() and (sib / "conf").is_dir() and (sib / "run.sh").exists() and not stub.exists():
            stub.mkdir()
            (stub / "conf").symlink_to(sib / "conf")
    return dst


def run_recipe(recipe_dir: Path, *args: str, timeout: int = 1500, backend: str = "local"
               ) -> subprocess.CompletedProcess:
    """Run ``run.sh args`` with ``cmd_backend=backend``; on failure raise with the output's tail."""
    env = {**os.environ, "SPEECHKD_ROOT": str(REPO), "cmd_backend": backend}
    proc = subprocess.run(["bash", "run.sh", *args], cwd=recipe_dir, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"run.sh {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def log_values(log: Path, key: str, tag: str = "[train]") -> list:
    """Values of ``key`` in the trainer's ``train.log`` lines carrying ``tag``."""
    vals = []
    for line in log.read_text().splitlines():
        if tag in line:
            parts = line.split()
            if key in parts:
                vals.append(float(parts[parts.index(key) + 1]))
    return vals


def run_data_sh(recipe: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``egs/<recipe>/local/data.sh`` from a scratch recipe folder (``utils`` and ``steps`` linked to the
    repository's), with the current Python's bin folder on PATH. Returns the completed process."""
    import sys

    work = tmp_path / "recipe"
    work.mkdir(parents=True)
    (work / "utils").symlink_to(REPO / "utils")
    (work / "steps").symlink_to(REPO / "egs" / "TEMPLATE" / "steps")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "LC_ALL": "C"}
    return subprocess.run(["bash", str(REPO / "egs" / recipe / "local" / "data.sh"), *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)


def _text_file(path: Path) -> dict:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            utt, _, txt = line.strip().partition(" ")
            out[utt] = " ".join(txt.split())
    return out


def assert_rescored(score_json: Path, base: Path | None = None) -> dict:
    """Re-score a decode's ``score.json`` with jiwer, an independent scorer, from the ref and hyp files it
    names: every unit's Err (word and phone: WER over space-separated tokens; char: CER over the text with
    single spaces, the space counted as ESPnet does) and its sentence/token counts must agree.
    A broken decode or scoring step (a lost utterance, a wrong unit, a stale file) fails here, whatever the
    mini model's error rate is. Returns ``{unit: Err}``."""
    import json

    import jiwer

    score = json.loads(Path(score_json).read_text())
    base = Path(base) if base is not None else Path(score_json).parents[2]

    def _path(p):
        p = Path(p)
        if p.is_absolute() or p.exists():
            return p
        for root in (base, *base.parents):
            if (root / p).exists():
                return root / p
        raise AssertionError(f"{score_json}: cannot find {p}")

    refs, hyps = _text_file(_path(score["ref"])), _text_file(_path(score["hyp"]))
    utts = sorted(refs)
    assert utts and set(hyps) <= set(refs), score_json
    ref_l, hyp_l = [refs[u] for u in utts], [hyps.get(u, "") for u in utts]
    errs = {}
    for unit, st in score["units"].items():
        assert st["Snt"] == len(utts), (score_json, unit)
        if unit in ("word", "phone"):
            n = sum(len(r.split()) for r in ref_l)
            ours_ref = jiwer.wer(ref_l, hyp_l)
        elif unit == "char":
            n = sum(len(r) for r in ref_l)
            ours_ref = jiwer.cer(ref_l, hyp_l)
        else:
            continue
        assert st["Wrd"] == n, (score_json, unit, st["Wrd"], n)
        assert abs(st["Err"] - 100.0 * ours_ref) < 1e-3, (score_json, unit, st["Err"], 100.0 * ours_ref)
        errs[unit] = st["Err"]
    return errs
