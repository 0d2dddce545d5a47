"""The benchmarks still run and print their machine-readable ratio lines (tiny sizes; no timing asserted)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

CASES = {
    "fbank": ["--seconds", "1", "--batch", "2", "--batch-seconds", "0.5", "--runs", "1"],
    "encoder": ["--layers", "1", "--dim", "64", "--conv-dim", "16", "--batch", "1", "--seconds", "0.5", "--runs", "1"],
    "frontend": ["--layers", "1", "--dim", "64", "--fbank-channels", "64", "--seconds", "0.5", "--runs", "1",
                 "--threads", "1", "--device", "cpu"],
    "rnnt_loss": ["--sizes", "6x2", "--big", "", "--batch", "1", "--vocab", "8", "--repeats", "1", "--device", "cpu"],
    "student_roofline": ["--layers", "1", "--d-model", "64", "--seconds", "0.5", "--matmul-n", "128", "--runs", "1"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bench_prints_ratios(name):
    p = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *CASES[name]], capture_output=True, text=True,
                       cwd=BENCH, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    ratios = [ln.split("\t") for ln in p.stdout.splitlines() if ln.startswith("RATIO\t")]
    assert ratios, p.stdout[-2000:]
    for _, label, value, _meaning in ratios:
        assert float(value) > 0, label
