"""What fraction of this machine's matmul rate does a distilled student's inference reach?

Measures (1) the matmul rate of this machine (n x n @ n x n, GFLOP/s, median of several runs) in fp32 and,
where the hardware has bf16 units (CPU flags ``avx512_bf16``/``amx_bf16``, or a bf16 GPU), in bf16, and
(2) the FLOPs and time of a student's inference (Fbank front-end included) in each of those precisions
(bf16: ``speechkd.train.precision.autocast``), counting FLOPs with ``torch.utils.flop_counter.FlopCounterMode``,
then prints achieved GFLOP/s and their ratio to the peaks. The roofline ratio line uses the machine's best
dtype: the student's best achieved rate divided by the larger of the two matmul peaks (a bf16 machine is
not judged against its slower fp32 ceiling).

    python bench/student_roofline.py                       # HuBERT-Base-width 2-layer Fbank student, 10 s
    python bench/student_roofline.py --layers 4 --d-model 384 --seconds 4 --device cuda

The ratio is the "fraction of the physical ceiling" the model reaches: attention soft-max, layer norms,
convolutions and memory traffic keep it below 1.
"""
from __future__ import annotations

import argparse

import torch
from _common import median_wall, summary  # bench/_common.py (beside this script)
from torch.utils.flop_counter import FlopCounterMode

from speechkd.features.kaldi import FbankExtractor
from speechkd.models.ssl import mini_ssl
from speechkd.train.precision import autocast, cpu_bf16_flags


def has_bf16(device) -> bool:
    """Whether ``device`` has bf16 matrix units (then bf16 is measured too)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_bf16_flags())


def matmul_gflops(n: int, device, runs: int, dtype=torch.float32) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = median_wall(lambda: a @ b, device, runs)
    return 2 * n ** 3 / t / 1e9


def student_gflops(layers: int, d_model: int, seconds: float, batch: int, device, runs: int, dtype=None):
    model = mini_ssl(frontend="fbank", n_layers=layers, d_model=d_model, n_heads=max(1, d_model // 64),
                     ffn_dim=4 * d_model, pos_conv_kernel=32, pos_conv_groups=16).eval().to(device)
    fbank = FbankExtractor(num_mel_bins=80).to(device)
    wav = torch.randn(batch, int(16000 * seconds), device=device) * 0.1

    def infer():
        with torch.no_grad():  # (inference_mode breaks weight-norm parametrizations under FlopCounterMode)
            feats, flen = fbank(wav)                 # Fbank in fp32, the model under autocast (as decoding)
            with autocast(device, dtype):
                return model(feats, flen)

    with FlopCounterMode(display=False) as counter:
        infer()
    flops = counter.get_total_flops()
    t = median_wall(infer, device, runs)
    n_params = sum(p.numel() for p in model.parameters())
    return flops, t, n_params


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtypes = {"fp32": None}
    if has_bf16(device):
        dtypes["bf16"] = torch.bfloat16
    peak = {k: matmul_gflops(args.matmul_n, device, args.runs, dt or torch.float32) for k, dt in dtypes.items()}
    print(f"device {device}, torch threads {torch.get_num_threads()}, bf16 units: "
          f"{'/'.join(cpu_bf16_flags()) if device.type == 'cpu' else has_bf16(device)}")
    achieved = {}
    for k, dt in dtypes.items():
        flops, t, n_params = student_gflops(args.layers, args.d_model, args.seconds, args.batch, device, args.runs,
                                            dt)
        achieved[k] = flops / t / 1e9
        print(f"matmul {args.matmul_n}x{args.matmul_n} {k}: {peak[k]:.1f} GFLOP/s")
        print(f"student {args.layers}x{args.d_model} ({n_params / 1e6:.1f}M params) {k}, {args.batch} x "
              f"{args.seconds:g} s: {flops / 1e9:.2f} GFLOP in {t * 1000:.1f} ms = {achieved[k]:.1f} GFLOP/s, "
              f"RTF {t / (args.seconds * args.batch):.4f}, {achieved[k] / peak[k]:.3f} of the {k} matmul peak")
    best_peak = max(peak, key=peak.get)
    best_run = max(achieved, key=achieved.get)
    ratio = achieved[best_run] / peak[best_peak]
    print(f"ratio student_inference/matmul_peak {ratio:.3f} (student {best_run}, peak {best_peak})")
    shape = f"{args.layers}x{args.d_model}, {device}"
    summary(f"student inference / matmul peak ({shape}, {best_run} / {best_peak} peak)", ratio,
            f"fraction of the machine's best matmul rate ({best_peak})")
    if "bf16" in dtypes:
        if (best_run, best_peak) != ("fp32", "fp32"):
            summary(f"student inference / matmul peak ({shape}, fp32 / fp32 peak)", achieved["fp32"] / peak["fp32"],
                    "fraction of the machine's fp32 matmul rate")
        summary(f"matmul bf16/fp32 GFLOP/s (n={args.matmul_n}, {device})", peak["bf16"] / peak["fp32"],
                "bf16 matmul rate over fp32")


if __name__ == "__main__":
    main()
