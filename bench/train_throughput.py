"""Training throughput in fp32 and bf16: seconds of audio per second of wall time, one optimiser step each.

Three training steps as the recipes run them (forward + backward + AdamW step), each in fp32 and under
``speechkd.train.precision.autocast`` (bf16), side by side in one run (steps alternate between the two
precisions, so load changes on a shared machine hit both):

* ``pretrain``: HuBERT masked prediction (:class:`speechkd.train.hubert.HubertPretrainTask`) with the model
  section of the zoo's ``egs/mini_espeak/ssl/conf/pretrain.yaml`` (8 pre-LN layers x 192, Fbank front-end,
  masking as configured), random CMVN-scale Fbank input, random labels over 100 classes, the config's
  ``data.batch_seconds`` (60 s) per batch;
* ``distill``: DistilXLSR-style distillation (:class:`speechkd.distill.train.DistillTask`, student section
  of ``egs/mini_espeak/distilxlsr/conf/distill.yaml``: 4 x 192, layer-wise heads, L1 + cos on teacher
  layers 2, 4, 6, 8) from a frozen 8-layer teacher built from the zoo config (teacher forward under
  no_grad + student forward/backward), that config's batch (20 s);
* ``finetune``: CTC fine-tuning (:class:`speechkd.train.ctc.CTCTask`, ``egs/mini_espeak/ssl/conf/finetune.yaml``
  model), random targets, 12 s batches.

It also measures the n x n matmul rate in fp32 and bf16 in the same run and counts each step's FLOPs
(forward + backward, ``torch.utils.flop_counter.FlopCounterMode``), giving the achieved GFLOP/s as a
fraction of the bf16 matmul rate.

    python bench/train_throughput.py                         # 1 thread, 3 timed steps per precision
    python bench/train_throughput.py --threads 2 --steps 5 --tasks pretrain,distill
    python bench/train_throughput.py --device cuda           # says so and exits 0 when CUDA is absent
    python bench/train_throughput.py --scale 0.05 --steps 1 --matmul-n 128   # tiny (smoke test)
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRETRAIN_CONF = ROOT / "egs/mini_espeak/ssl/conf/pretrain.yaml"
DISTILL_CONF = ROOT / "egs/mini_espeak/distilxlsr/conf/distill.yaml"
FINETUNE_CONF = ROOT / "egs/mini_espeak/ssl/conf/finetune.yaml"
TASKS = ("pretrain", "distill", "finetune")
N_LABELS = 100        # k-means classes of the HuBERT targets
VOCAB = 60            # CTC vocabulary (phones + blank)
FPS = 100             # Fbank frames per second


def _yaml(path):
    from speechkd.utils.config import load_yaml

    return load_yaml(path)


def teacher_model_cfg() -> dict:
    """The zoo HuBERT's model section (pretrain.yaml over PRETRAIN_DEFAULTS) with a 100-class head."""
    from speechkd.train.hubert import PRETRAIN_DEFAULTS
    from speechkd.utils.config import merge

    cfg = merge(PRETRAIN_DEFAULTS, {"model": _yaml(PRETRAIN_CONF)["model"]})["model"]
    cfg = {k: v for k, v in cfg.items() if k != "type"}
    cfg["num_labels"] = N_LABELS
    return cfg


def fbank_batch(seconds: float, utt_seconds: float, device, gen):
    """(B, T, 80) random CMVN-scale Fbank + lengths: ``seconds`` of audio in utterances of ~utt_seconds."""
    import torch

    n = max(1, round(seconds / utt_seconds))
    T = max(8, int(round(seconds / n * FPS)))
    x = torch.randn(n, T, 80, generator=gen).to(device)
    return {"x": x, "x_lengths": torch.full((n,), T, dtype=torch.long, device=device)}, n * T / FPS


def build_task(name: str, scale: float, utt_seconds: float, device, seed: int = 0):
    """``(task module, batch dict, audio seconds per batch)`` for one of :data:`TASKS`."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if name == "pretrain":
        from speechkd.models.ssl import SSLModel
        from speechkd.train.hubert import HubertPretrainTask

        conf = _yaml(PRETRAIN_CONF)
        batch, secs = fbank_batch(float(conf["data"]["batch_seconds"]) * scale, utt_seconds, device, gen)
        task = HubertPretrainTask(SSLModel(teacher_model_cfg()), float(conf["loss"]["unmasked_weight"]))
        L = (batch["x"].shape[1] + 1) // 2                      # 50 Hz labels
        batch["labels"] = torch.randint(0, N_LABELS, (batch["x"].shape[0], L), generator=gen).to(device)
    elif name == "distill":
        from speechkd.distill.student import build_student_from_config
        from speechkd.distill.train import DistillTask, _normalise_cfg
        from speechkd.models.ssl import SSLModel

        conf = _normalise_cfg({k: v for k, v in _yaml(DISTILL_CONF).items() if k in
                               ("student", "distill", "loss", "spec_augment", "data")})
        batch, secs = fbank_batch(float(conf["data"]["batch_seconds"]) * scale, utt_seconds, device, gen)
        teacher = SSLModel(teacher_model_cfg())
        student = build_student_from_config(teacher, conf["student"])
        task = DistillTask(teacher, student, conf)
    elif name == "finetune":
        from speechkd.train.ctc import FINETUNE_DEFAULTS, CTCTask, build_ctc_model
        from speechkd.utils.config import merge

        conf = merge(FINETUNE_DEFAULTS, {k: v for k, v in _yaml(FINETUNE_CONF).items() if k in ("model", "data")})
        batch, secs = fbank_batch(float(conf["data"]["batch_seconds"]) * scale, utt_seconds, device, gen)
        task = CTCTask(build_ctc_model(conf, VOCAB))
        B, T = batch["x"].shape[:2]
        U = max(1, T // 2 // 4)                                  # ~12 phones/s at 50 Hz output frames
        batch["tokens"] = torch.randint(1, VOCAB, (B, U), generator=gen).to(device)
        batch["token_lengths"] = torch.full((B,), U, dtype=torch.long, device=device)
    else:
        raise ValueError(f"unknown task {name}")
    return task.to(device).train(), batch, secs


class Stepper:
    """One optimiser step (zero_grad, forward + backward under autocast ``dtype``, AdamW step) of a task."""

    def __init__(self, task, batch, device, dtype):
        import torch

        from speechkd.train.precision import autocast

        self.task, self.batch, self.device, self.dtype, self._autocast = task, batch, device, dtype, autocast
        params = [p for p in task.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=1e-4)

    def forward_backward(self):
        with self._autocast(self.device, self.dtype):
            loss, _ = self.task(self.batch)
        loss.backward()
        return loss

    def __call__(self):
        self.opt.zero_grad(set_to_none=True)
        self.forward_backward()
        self.opt.step()


def step_flops(stepper) -> int:
    """FLOPs of one forward + backward (FlopCounterMode; the optimiser's element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    stepper.opt.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        stepper.forward_backward()
    stepper.opt.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_gflops(n: int, dtype, device, runs: int = 5) -> float:
    """Median n x n @ n x n rate in GFLOP/s (one warm-up call)."""
    import torch

    from _common import median_wall

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n ** 3 / median_wall(lambda: a @ b, device, runs) / 1e9


def measure_task(name: str, args, device, precisions):
    """{precision: {"wall"/"cpu": median wall/process-CPU s per step, "audio": s audio per batch,
    "flops": per step, "params": trainable}}."""
    from _common import timed

    task, batch, secs = build_task(name, args.scale, args.utt_seconds, device)
    steppers = {}
    for p, dtype in precisions.items():
        steppers[p] = Stepper(copy.deepcopy(task) if steppers else task, batch, device, dtype)
    flops = step_flops(steppers[next(iter(steppers))])
    for s in steppers.values():              # warm-up (allocator, autocast weight casts, oneDNN kernels)
        s()
    times = {p: [] for p in steppers}
    for _ in range(args.steps):              # alternate so load changes hit every precision alike
        for p, s in steppers.items():
            times[p].append(timed(s, device))
    n_params = sum(p.numel() for p in task.parameters() if p.requires_grad)
    return {p: {"wall": statistics.median(w for w, _ in t), "cpu": statistics.median(c for _, c in t),
                "audio": secs, "flops": flops, "params": n_params} for p, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=",".join(TASKS), help="comma list of %s" % ", ".join(TASKS))
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per precision (after one warm-up)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every batch's seconds (tiny runs)")
    p.add_argument("--utt-seconds", type=float, default=7.5, help="utterance length inside a batch")
    p.add_argument("--matmul-n", type=int, default=1024)
    args = p.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        p.error(f"unknown task(s) {', '.join(bad)}")

    import torch

    from _common import summary
    from speechkd.train.precision import cpu_bf16_flags

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"device {args.device}: CUDA is not available on this machine, skipped")
        return 0
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    precisions = {"fp32": None, "bf16": torch.bfloat16}
    hw = ("/".join(cpu_bf16_flags()) or "no bf16 units: emulated") if device.type == "cpu" else \
        torch.cuda.get_device_name(device)
    print(f"device {device} ({hw}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    peak = {k: matmul_gflops(args.matmul_n, dt or torch.float32, device) for k, dt in precisions.items()}
    print(f"matmul {args.matmul_n}^2: fp32 {peak['fp32']:.1f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s "
          f"(bf16/fp32 {peak['bf16'] / peak['fp32']:.2f}x)")
    summary(f"matmul bf16/fp32 GFLOP/s (n={args.matmul_n}, {device})", peak["bf16"] / peak["fp32"],
            "bf16 matmul rate over fp32 on this machine")

    print("\n| task | params | batch s | GFLOP/step | precision | s/step | CPU s/step | "
          "audio-s per s | GFLOP/s | of bf16 matmul |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    results = {}
    for name in tasks:
        res = results[name] = measure_task(name, args, device, precisions)
        for prec, r in res.items():
            gf = r["flops"] / r["wall"] / 1e9
            print(f"| {name} | {r['params'] / 1e6:.2f}M | {r['audio']:.1f} | {r['flops'] / 1e9:.1f} | {prec} | "
                  f"{r['wall']:.3f} | {r['cpu']:.3f} | {r['audio'] / r['wall']:.1f} | {gf:.1f} | {gf / peak['bf16']:.3f} |",
                  flush=True)
    print()
    for name, res in results.items():
        f32, b16 = res["fp32"], res["bf16"]
        summary(f"{name} train step bf16/fp32 audio-s per s ({device}, {args.threads} thr)",
                (b16["audio"] / b16["wall"]) / (f32["audio"] / f32["wall"]), "issue 14 target >= 3")
        summary(f"{name} train step bf16: fraction of bf16 matmul rate ({device})",
                b16["flops"] / b16["wall"] / 1e9 / peak["bf16"], "achieved GFLOP/s / bf16 matmul GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
