"""Peak memory and time of the RNN-T loss (forward + backward): whole logits vs the joiner in frame chunks.

Cases, each in a fresh process (peak RSS from ``VmHWM``, reset after the inputs are built, so a peak is
what the loss step adds):

* ``full``: ``rnnt_loss(joiner(enc, pred))`` -- the (B, T, U+1, V) logits, the joiner's (B, T, U+1, J)
  activations and their gradients all exist at once;
* ``chunk N``: ``rnnt_loss_from_joiner(..., frame_chunk=N)`` -- N frames of them at a time (checkpointed);
  the loss and the gradients are the same (test_transducer.py checks it).

The cases run with glibc's ``MALLOC_MMAP_THRESHOLD_=131072`` (see main) so that freed blocks leave the
peak RSS; with glibc's default dynamic threshold the heap keeps every freed chunk and RSS overstates what
is live (CPU training can set the same variable). Prints a table and ``RATIO`` lines: the memory the full loss adds over what the chunked one adds, and the
chunked/full time (recomputing the joiner in the backward costs one more joiner forward).

    python bench/rnnt_joiner_memory.py                       # B 8, T 200 frames (8 s), U 60, V 500, J 256
    python bench/rnnt_joiner_memory.py --B 16 --T 400 --U 120 --V 1000 --chunks 8 32
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _common import peak_rss, summary  # noqa: E402

MiB = 2 ** 20


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:   # "5": reset the peak RSS to the current RSS
        f.write("5")


def one_case(args, chunk: int) -> dict:
    import torch

    import torch.utils.checkpoint  # noqa: F401  (imported before the measured region)

    from speechkd.asr.rnnt_loss import rnnt_loss, rnnt_loss_from_joiner

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)                                  # the same joiner weights in every case
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(args.B, args.T, args.J, generator=g, requires_grad=True)
    pred = torch.randn(args.B, args.U + 1, args.J, generator=g, requires_grad=True)
    out = torch.nn.Linear(args.J, args.V)
    joint = lambda e, p: out(torch.tanh(e + p))          # noqa: E731  (the Joiner's joint)
    targets = torch.randint(1, args.V, (args.B, args.U), generator=g)
    T_b = torch.full((args.B,), args.T)
    U_b = torch.full((args.B,), args.U)
    reset_peak()
    base = peak_rss()
    t0 = time.perf_counter()
    if chunk > 0:
        loss = rnnt_loss_from_joiner(joint, enc, pred, targets, T_b, U_b, frame_chunk=chunk)
    else:
        loss = rnnt_loss(joint(enc[:, :, None], pred[:, None]), targets, T_b, U_b)
    loss.backward()
    wall = time.perf_counter() - t0
    return {"chunk": chunk, "added_MiB": (peak_rss() - base) / MiB, "wall_s": wall, "loss": float(loss)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--T", type=int, default=200, help="encoder frames (40 ms each in the mini transducer)")
    p.add_argument("--U", type=int, default=60)
    p.add_argument("--V", type=int, default=500)
    p.add_argument("--J", type=int, default=256, help="joiner dim")
    p.add_argument("--chunks", type=int, nargs="+", default=[16, 4])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--case", type=int, help=argparse.SUPPRESS)   # internal: run one case, print JSON
    args = p.parse_args(argv)
    if args.case is not None:
        print(json.dumps(one_case(args, args.case)))
        return 0
    base_args = [a for a in (argv if argv is not None else sys.argv[1:])]
    # glibc raises its mmap threshold after the first large free, and the heap then keeps freed chunks: RSS
    # grows with every same-sized chunk and hides what is live. A fixed threshold returns big blocks to the
    # OS, so the peak RSS is the live memory (both cases run under it; on GPU the caching allocator applies)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072"))
    rows = []
    for chunk in [0, *args.chunks]:
        r = subprocess.run([sys.executable, __file__, *base_args, "--case", str(chunk)], capture_output=True,
                           text=True, check=True, env=env)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    logits_mib = args.B * args.T * (args.U + 1) * args.V * 4 / MiB
    print(f"B {args.B}, T {args.T}, U {args.U}, V {args.V}, J {args.J}: logits {logits_mib:.0f} MiB in fp32, "
          f"{args.threads} thread(s)")
    print(f"{'case':>10} {'added peak MiB':>15} {'wall s':>8} {'loss':>10}")
    for r in rows:
        name = "full" if r["chunk"] == 0 else f"chunk {r['chunk']}"
        print(f"{name:>10} {r['added_MiB']:15.1f} {r['wall_s']:8.2f} {r['loss']:10.4f}")
    full = rows[0]
    for r in rows[1:]:
        summary(f"rnnt_joiner_memory_full_over_chunk{r['chunk']}", full["added_MiB"] / max(r["added_MiB"], 1e-9),
                "peak memory the loss step adds: whole logits / joiner in frame chunks (higher = chunks save more)")
        summary(f"rnnt_joiner_time_chunk{r['chunk']}_over_full", r["wall_s"] / full["wall_s"],
                "wall time of forward + backward: chunked / whole (the price of recomputing the joiner)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
