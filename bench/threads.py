"""Threads vs jobs: does 2 threads ever lose to 1, and what do 2 one-thread jobs at once give?

For two workloads, Fbank extraction (``speechkd.features.kaldi.fbank`` on a batch of waveforms) and one
training step (HuBERT pretraining at the zoo config, bf16 where the CPU has it, as bench/train_throughput.py
builds it, on a smaller batch), it measures in separate processes (each started with OMP_NUM_THREADS /
MKL_NUM_THREADS set, as utils/run.py does for its jobs):

* 1 thread, alone;
* 2 threads, alone;
* 2 jobs x 1 thread: two processes at once (they start timing together, after a warm-up), throughput summed.

and prints the median seconds per call and the ratio lines ``2 threads / 1 thread speed`` (issue 14's
target: >= 0.9, i.e. 2 threads never slower than 1 by more than 10 %) and ``2 jobs x 1 thread / 1 thread
throughput``. Run it with the cores you mean to measure: under ``taskset -c 1`` both threads (or both jobs)
share one core, which is the oversubscribed case the runner's thread default avoids.

    python bench/threads.py                          # fbank 4 x 10 s, train step 12 s batch, 5 reps
    python bench/threads.py --workloads fbank --reps 3 --fbank-seconds 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
WORKLOADS = ("fbank", "train")


# ------------------------------------------------------------------------------------------ worker
def _make_work(args):
    import torch

    if args.worker == "fbank":
        from speechkd.features.kaldi import fbank

        wav = torch.randn(args.fbank_batch, int(args.fbank_seconds * 16000)) * 0.1
        return lambda: fbank(wav)
    from train_throughput import Stepper, build_task

    from speechkd.train.precision import resolve_precision

    task, batch, _ = build_task("pretrain", args.train_seconds / 60.0, 3.0, torch.device("cpu"))
    _, dtype = resolve_precision("auto", torch.device("cpu"), quiet=True)
    return Stepper(task, batch, torch.device("cpu"), dtype)


def _barrier(path: str, n: int, me: int, timeout: float = 120.0) -> None:
    """Wait until ``n`` workers have touched their file in directory ``path``."""
    Path(path, f"ready.{me}").touch()
    t0 = time.time()
    while len(list(Path(path).glob("ready.*"))) < n and time.time() - t0 < timeout:
        time.sleep(0.01)


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = _make_work(args)
    work()                                              # warm-up
    if args.barrier:
        _barrier(args.barrier, args.n_jobs, args.job)
    walls = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        work()
        walls.append(time.perf_counter() - t0)
    print(json.dumps({"threads": torch.get_num_threads(), "walls": walls}), flush=True)


# ------------------------------------------------------------------------------------------ driver
def _cmd(args, workload: str, threads: int, barrier=None, n_jobs=1, job=0):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", workload, "--threads", str(threads),
           "--reps", str(args.reps), "--fbank-batch", str(args.fbank_batch), "--fbank-seconds",
           str(args.fbank_seconds), "--train-seconds", str(args.train_seconds)]
    if barrier:
        cmd += ["--barrier", barrier, "--n-jobs", str(n_jobs), "--job", str(job)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return cmd, env


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_alone(args, workload: str, threads: int) -> float:
    cmd, env = _cmd(args, workload, threads)
    r = _result(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    if r["threads"] != threads:
        print(f"warning: worker ran {r['threads']} threads, asked for {threads}")
    return statistics.median(r["walls"])


def run_jobs(args, workload: str, n_jobs: int) -> list:
    with tempfile.TemporaryDirectory() as d:
        procs = []
        for j in range(n_jobs):
            cmd, env = _cmd(args, workload, 1, barrier=d, n_jobs=n_jobs, job=j)
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return [statistics.median(_result(p)["walls"]) for p in procs]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of fbank, train")
    p.add_argument("--reps", type=int, default=5, help="timed calls per process (after one warm-up)")
    p.add_argument("--fbank-batch", type=int, default=4)
    p.add_argument("--fbank-seconds", type=float, default=10.0, help="seconds per waveform")
    p.add_argument("--train-seconds", type=float, default=12.0, help="audio seconds per training batch")
    p.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--barrier", help=argparse.SUPPRESS)
    p.add_argument("--n-jobs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--job", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from _common import summary

    loads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in loads if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {', '.join(bad)}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available to this process: {cores} (of {os.cpu_count()})")
    print("| workload | setting | s per call (median) | calls per s (all jobs) |")
    print("|---|---|---:|---:|")
    rows = {}
    for w in loads:
        t1 = run_alone(args, w, 1)
        t2 = run_alone(args, w, 2)
        tj = run_jobs(args, w, 2)
        rows[w] = (t1, t2, tj)
        print(f"| {w} | 1 thread | {t1:.4f} | {1 / t1:.2f} |")
        print(f"| {w} | 2 threads | {t2:.4f} | {1 / t2:.2f} |")
        print(f"| {w} | 2 jobs x 1 thread | {' / '.join(f'{t:.4f}' for t in tj)} | {sum(1 / t for t in tj):.2f} |",
              flush=True)
    for w, (t1, t2, tj) in rows.items():
        summary(f"{w}: 2 threads / 1 thread speed ({cores} cores)", t1 / t2,
                "issue 14 target >= 0.9 (2 threads never > 10 % slower)")
        summary(f"{w}: 2 jobs x 1 thread / 1 thread throughput ({cores} cores)", sum(1 / t for t in tj) * t1,
                "summed calls/s of two 1-thread jobs at once over one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
