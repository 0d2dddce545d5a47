"""What fraction of this machine's matmul rate does a distilled student's inference reach?

Measures (1) the fp32 matmul rate of this machine (n x n @ n x n, GFLOP/s, median of several runs) and
(2) the FLOPs and time of a student's inference (Fbank front-end included), counting FLOPs with
``torch.utils.flop_counter.FlopCounterMode``, then prints achieved GFLOP/s and their ratio.

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



def matmul_gflops(n: int, device, runs: int) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t = median_wall(lambda: a @ b, device, runs)
    return 2 * n ** 3 / t / 1e9


def student_gflops(layers: int, d_model: int, seconds: float, batch: int, device, runs: int):
    model = mini_ssl(frontend="fbank", n_layers=layers, d_model=d_model, n_heads=max(1, d_model // 64),
                     ffn_dim=4 * d_model, pos_conv_kernel=32, pos_conv_groups=16).eval().to(device)
    fbank = FbankExtractor(num_mel_bins=80).to(device)
    wav = torch.randn(batch, int(16000 * seconds), device=device) * 0.1

    def infer():
        with torch.no_grad():  # (inference_mode breaks weight-norm parametrizations under FlopCounterMode)
            feats, flen = fbank(wav)
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
    peak = matmul_gflops(args.matmul_n, device, args.runs)
    flops, t, n_params = student_gflops(args.layers, args.d_model, args.seconds, args.batch, device, args.runs)
    achieved = flops / t / 1e9
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"matmul {args.matmul_n}x{args.matmul_n} fp32: {peak:.1f} GFLOP/s")
    print(f"student {args.layers}x{args.d_model} ({n_params / 1e6:.1f}M params), {args.batch} x {args.seconds:g} s: "
          f"{flops / 1e9:.2f} GFLOP in {t * 1000:.1f} ms = {achieved:.1f} GFLOP/s, RTF {t / (args.seconds * args.batch):.4f}")
    print(f"ratio student_inference/matmul_peak {achieved / peak:.3f}")
    summary(f"student inference / matmul peak ({args.layers}x{args.d_model}, {device})", achieved / peak,
            "fraction of the machine's fp32 matmul rate")


if __name__ == "__main__":
    main()
