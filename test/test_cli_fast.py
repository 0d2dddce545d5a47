"""Instant CLIs: ``--help`` and argument errors of every ``speechkd-*`` command import no torch.

Heavy imports (torch, scipy, transformers) live inside the functions that need them; each
``speechkd/bin/<verb>.py`` imports, builds its parser and rejects bad arguments
without them. Times are printed (ratio to ``python -c pass``), never asserted.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERBS = sorted(p.stem for p in (ROOT / "speechkd" / "bin").glob("*.py")
               if p.stem != "__init__")
HEAVY = ("torch", "scipy", "transformers")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

CHECK = """
import sys
import speechkd.bin.{verb} as m
heavy = [h for h in {heavy!r} if h in sys.modules]
assert not heavy, f"importing speechkd.bin.{verb} imports {{heavy}}"
parser = m.get_parser()
assert not [h for h in {heavy!r} if h in sys.modules], "get_parser() imports a heavy module"
if any(a.required for a in parser._actions):  # an argument error must not need them either
    import contextlib, io
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            m.main([])
        except SystemExit as e:
            assert e.code == 2, e.code
    heavy = [h for h in {heavy!r} if h in sys.modules]
    assert not heavy, f"an argument error of {verb} imports {{heavy}}"
"""


def _run(args):
    t = time.perf_counter()
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=ENV)
    return r, time.perf_counter() - t


@pytest.fixture(scope="module")
def baseline():
    return min(_run(["-c", "pass"])[1] for _ in range(3))


def test_verbs_found():
    assert len(VERBS) > 10 and "distill" in VERBS and "compute_fbank" in VERBS


@pytest.mark.parametrize("verb", VERBS)
def test_import_and_parser_without_torch(verb):
    r, _ = _run(["-c", CHECK.format(verb=verb, heavy=HEAVY)])
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("verb", VERBS)
def test_help(verb, baseline):
    r, dt = _run(["-m", f"speechkd.bin.{verb}", "--help"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout
    print(f"{verb} --help: {dt:.2f}s ({dt / baseline:.1f}x python -c pass)")
