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
    "train_throughput": ["--scale", "0.05", "--steps", "1", "--matmul-n", "128", "--threads", "1"],
    "threads": ["--reps", "1", "--fbank-batch", "1", "--fbank-seconds", "0.5", "--train-seconds", "1"],
    "import_memory": ["--small", "--with-optimizer"],
}
# ratio lines (label prefixes) each bench must print, beyond "at least one"
EXPECTED = {
    "train_throughput": [f"{t} train step bf16/fp32 audio-s per s" for t in ("pretrain", "distill", "finetune")]
    + [f"{t} train step bf16: fraction of bf16 matmul rate" for t in ("pretrain", "distill", "finetune")],
    "threads": [f"{w}: {what}" for w in ("fbank", "train")
                for what in ("2 threads / 1 thread speed", "2 jobs x 1 thread / 1 thread throughput")],
    "student_roofline": ["student inference / matmul peak"],
    "import_memory": ["import_fairseq peak RSS / weights", "import_fairseq + weights read peak RSS / weights"],
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
    for prefix in EXPECTED.get(name, []):
        assert any(label.startswith(prefix) for _, label, _, _ in ratios), (prefix, [r[1] for r in ratios])


def test_train_throughput_without_cuda_skips():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: the skip path is not taken")
    p = subprocess.run([sys.executable, str(BENCH / "train_throughput.py"), "--device", "cuda"], capture_output=True,
                       text=True, cwd=BENCH, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "CUDA is not available" in p.stdout
