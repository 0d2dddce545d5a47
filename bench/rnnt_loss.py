#!/usr/bin/env python3
"""Benchmark: vectorised RNN-T loss vs the straightforward per-node DP (forward + backward).

Usage::

    python bench/rnnt_loss.py                                  # default sizes, B=4, V=64
    python bench/rnnt_loss.py --sizes 50x10,100x20 --batch 8 --vocab 128 --repeats 5
    python bench/rnnt_loss.py --big 400x80 --vocab 500         # memory-aware table only at one big size

What is measured (each method × size runs in a **fresh subprocess**, so no allocator state is shared):

- time: median wall time of ``loss = f(logits); loss.backward()`` over ``--repeats`` runs (after one
  warm-up run), 1 intra-op thread on CPU.
- memory: on CUDA ``torch.cuda.max_memory_allocated`` minus the allocation before the call; on CPU
  the growth of the process's peak resident set size (``ru_maxrss``) from just before the first
  fwd+bwd to the end, with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB so freed tensors leave
  the resident set. This is the high-water mark of real memory (allocator caching included), an
  upper bound on the tensors alive at the peak; sizes below a few MB are at the noise level.

Methods: ``vectorised`` = :func:`speechkd.asr.rnnt_loss.rnnt_loss` (anti-diagonal alpha/beta, custom
backward, gathered log-probs); ``chunked`` = the same with ``batch_chunk=1``; ``logsoftmax`` = full
``log_softmax`` through autograd then the vectorised DP (keeps a (B,T,U+1,V) fp32 tensor for backward);
``reference`` = :func:`speechkd.asr.rnnt_loss.rnnt_loss_reference` (Python loop over (t, u), autograd).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from _common import summary  # bench/_common.py (beside this script)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from speechkd.asr.rnnt_loss import rnnt_loss, rnnt_loss_reference  # noqa: E402


def _loss_fn(method: str):
    if method == "vectorised":
        return lambda *a: rnnt_loss(*a)
    if method == "chunked":
        return lambda *a: rnnt_loss(*a, batch_chunk=1)
    if method == "logsoftmax":
        return lambda lg, *a: rnnt_loss(torch.log_softmax(lg.float(), -1), *a, log_probs_input=True)
    if method == "reference":
        return lambda *a: rnnt_loss_reference(*a)
    raise ValueError(method)


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB


def worker(method: str, T: int, U: int, B: int, V: int, repeats: int, device: str) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dev = torch.device(device)
    logits = torch.randn(B, T, U + 1, V, device=dev, requires_grad=True)
    targets = torch.randint(1, V, (B, U), device=dev)
    T_b = torch.full((B,), T, dtype=torch.long, device=dev)
    U_b = torch.full((B,), U, dtype=torch.long, device=dev)
    f = _loss_fn(method)

    def run():
        logits.grad = None
        loss = f(logits, targets, T_b, U_b)
        loss.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return float(loss)

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _peak_bytes()
    value = run()                                                   # warm-up, also the memory sample
    mem = (torch.cuda.max_memory_allocated() - base) if dev.type == "cuda" else (_peak_bytes() - base)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"time_s": statistics.median(times), "mem_bytes": max(0, mem), "loss": value}


def measure(method, T, U, B, V, repeats, device) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, str(T), str(U), str(B), str(V),
           str(repeats), device]
    # a fixed mmap threshold makes glibc return every large block on free (otherwise its dynamic
    # threshold moves big temporaries onto the heap, where freed pages can stay resident and inflate RSS)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sizes(text: str):
    return [tuple(int(v) for v in s.split("x")) for s in text.split(",") if s]


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        m, T, U, B, V, r, dev = sys.argv[2:9]
        print(json.dumps(worker(m, int(T), int(U), int(B), int(V), int(r), dev)))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10x3,25x5,50x10,100x20,150x30", help="TxU list for vectorised vs reference")
    p.add_argument("--big", default="300x60,500x100", help="TxU list for the memory-aware table (no reference)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--big_vocab", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    mem_kind = "cuda max_memory_allocated" if a.device.startswith("cuda") else "peak RSS growth"
    print(f"# device={a.device} B={a.batch} V={a.vocab} repeats={a.repeats}; time = median fwd+bwd; "
          f"mem = {mem_kind} (MiB)")
    print(f"{'T x U':>10} {'vec ms':>9} {'ref ms':>10} {'speedup':>8} {'vec MiB':>8} {'ref MiB':>8} {'|dloss|':>8}")
    for T, U in _sizes(a.sizes):
        v = measure("vectorised", T, U, a.batch, a.vocab, a.repeats, a.device)
        r = measure("reference", T, U, a.batch, a.vocab, max(1, min(a.repeats, 2)), a.device)
        print(f"{f'{T}x{U}':>10} {v['time_s'] * 1e3:9.2f} {r['time_s'] * 1e3:10.1f} "
              f"{r['time_s'] / v['time_s']:7.0f}x {v['mem_bytes'] / 2**20:8.1f} {r['mem_bytes'] / 2**20:8.1f} "
              f"{abs(v['loss'] - r['loss']):8.1e}", flush=True)
        summary(f"rnnt loss vectorised/reference speed ({T}x{U}, {a.device})", r["time_s"] / v["time_s"],
                "> 1: vectorised is faster")
        if v["mem_bytes"] > 0:
            summary(f"rnnt loss reference/vectorised peak memory ({T}x{U}, {a.device})",
                    r["mem_bytes"] / v["mem_bytes"], "> 1: vectorised uses less")
    if a.big:
        logits_mib = lambda T, U: a.batch * T * (U + 1) * a.big_vocab * 4 / 2**20  # noqa: E731
        print(f"\n# memory-aware variants, V={a.big_vocab} (logits alone: B*T*(U+1)*V*4 bytes)")
        print(f"{'T x U':>10} {'logits':>8} {'method':>11} {'ms':>9} {'MiB':>8} {'MiB/logits':>10}")
        for T, U in _sizes(a.big):
            for m in ("vectorised", "chunked", "logsoftmax"):
                r = measure(m, T, U, a.batch, a.big_vocab, a.repeats, a.device)
                lm = logits_mib(T, U)
                print(f"{f'{T}x{U}':>10} {lm:8.1f} {m:>11} {r['time_s'] * 1e3:9.1f} {r['mem_bytes'] / 2**20:8.1f} "
                      f"{r['mem_bytes'] / 2**20 / lm:10.2f}", flush=True)


if __name__ == "__main__":
    main()
