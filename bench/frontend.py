"""Benchmark: Fbank-front-end student vs waveform-CNN student at an equal encoder (hubert_kd, arXiv 2210.15631).

Builds HuBERT-Base-sized students (default: 2 layers x 768, DistilHuBERT's shallow & wide shape) that
differ only in the front-end: the wav2vec 2.0 / HuBERT 7-layer CNN (512 channels) on the waveform, or
our torch Kaldi Fbank (computed from the same waveform, inside the timed region) + global CMVN + the
2-conv Fbank front-end (x2 subsampling). Measures inference (eval, no_grad) on a few seconds of audio
and prints a table with median wall time, process CPU time (steadier on a shared machine), the speed
ratio CNN time / Fbank time (> 1: the Fbank student is faster) and the parameter ratio. The paper
reports ~2x speed and 17 % fewer parameters.

Usage:
    python bench/frontend.py                                   # 2 x 768, batch 1 x 4 s, CPU (+ CUDA if present)
    python bench/frontend.py --layers 2 --dim 768 --seconds 4 --batch 1 --runs 7 --threads 2
    python bench/frontend.py --fbank-channels 256 768          # Fbank front-end widths to compare
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch
from _common import summary, timed as _time  # bench/_common.py (beside this script)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from speechkd.features.kaldi import FbankExtractor  # noqa: E402
from speechkd.models.ssl import SSLConfig, SSLModel  # noqa: E402



def build_pair(layers: int, dim: int, fbank_channels: int):
    """(CNN student, Fbank student) with the same encoder config (HuBERT Base layer shape)."""
    base = dict(n_layers=layers, d_model=dim, n_heads=max(1, dim // 64), ffn_dim=4 * dim, layerdrop=0.0)
    cnn = SSLModel(SSLConfig.from_dict(base)).eval()
    fb = SSLModel(SSLConfig.from_dict({**base, "frontend": "fbank", "fbank_channels": fbank_channels})).eval()
    return cnn, fb


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def bench(device: torch.device, args, fbank_channels: int):
    torch.manual_seed(0)
    cnn, fb = build_pair(args.layers, args.dim, fbank_channels)
    cnn, fb = cnn.to(device), fb.to(device)
    ext = FbankExtractor(num_mel_bins=80).to(device).eval()
    mean = torch.zeros(80, device=device)
    std = torch.ones(80, device=device)
    wav = (0.1 * torch.randn(args.batch, int(args.seconds * 16000))).to(device)
    lengths = torch.full((args.batch,), wav.shape[1], dtype=torch.long, device=device)

    @torch.no_grad()
    def run_cnn():
        return cnn(wav, lengths).last_hidden_state

    @torch.no_grad()
    def run_fb():
        feats, flen = ext(wav, lengths)
        return fb((feats - mean) / std, flen).last_hidden_state

    a, b = run_cnn(), run_fb()                      # warm-up; same encoder frame rate (50 Hz)
    assert abs(a.shape[1] - b.shape[1]) <= 1, (a.shape, b.shape)
    res = {"cnn": [], "fbank": []}
    for _ in range(args.runs):                      # alternate so load changes hit both equally
        res["cnn"].append(_time(run_cnn, device))
        res["fbank"].append(_time(run_fb, device))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}
    return {"device": device.type, "fbank_ch": fbank_channels, "cnn_params": n_params(cnn),
            "fb_params": n_params(fb), "cnn_wall": med["cnn"][0], "fb_wall": med["fbank"][0],
            "cnn_cpu": med["cnn"][1], "fb_cpu": med["fbank"][1],
            "cnn_fe_params": n_params(cnn.feature_extractor) + n_params(cnn.feature_projection),
            "fb_fe_params": n_params(fb.feature_extractor) + n_params(fb.feature_projection)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--fbank-channels", type=int, nargs="+", default=[768, 256])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"students: {args.layers} x {args.dim} (HuBERT Base layers), input {args.batch} x {args.seconds:g} s, "
          f"median of {args.runs} runs, {args.threads} CPU threads")
    print("| device | Fbank ch | CNN params | Fbank params | params Fbank/CNN | front-end+proj CNN / Fbank | "
          "CNN ms | Fbank ms (incl. fbank) | speed ratio (wall) | speed ratio (CPU time) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dev in devices:
        for ch in args.fbank_channels:
            r = bench(dev, args, ch)
            cpu_ratio = r["cnn_cpu"] / r["fb_cpu"] if dev.type == "cpu" and r["fb_cpu"] > 0 else float("nan")
            print(f"| {r['device']} | {ch} | {r['cnn_params'] / 1e6:.2f}M | {r['fb_params'] / 1e6:.2f}M | "
                  f"{r['fb_params'] / r['cnn_params']:.3f} ({100 * (1 - r['fb_params'] / r['cnn_params']):.1f} % fewer) | "
                  f"{r['cnn_fe_params'] / 1e6:.2f}M / {r['fb_fe_params'] / 1e6:.2f}M | "
                  f"{1e3 * r['cnn_wall']:.1f} | {1e3 * r['fb_wall']:.1f} | {r['cnn_wall'] / r['fb_wall']:.2f}x | "
                  f"{cpu_ratio:.2f}x |")
            summary(f"Fbank-student/CNN-student inference speed ({args.layers}x{args.dim}, Fbank {ch} ch, {dev.type})",
                    r["cnn_wall"] / r["fb_wall"], "> 1: the Fbank student is faster (paper: ~2)")
            summary(f"Fbank-student/CNN-student params ({args.layers}x{args.dim}, Fbank {ch} ch)",
                    r["fb_params"] / r["cnn_params"], "< 1: fewer params (paper: 0.83)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
