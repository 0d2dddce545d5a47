"""Benchmark: our SSLModel vs transformers' Wav2Vec2Model at the same config and weights.

Measures a training step (forward + backward, train mode, no masking/layer drop) and inference
(eval, no_grad) on the same inputs in one process, alternating the two models, and prints the
median time of each and the speed ratio ours/HF = HF time / our time (> 1.0: ours is faster).

Usage:
    python bench/encoder.py                                  # 4 layers x 256, batch 8 x 4 s, 5 runs
    python bench/encoder.py --layers 4 --dim 256 --batch 8 --seconds 4 --runs 7 --threads 2 --padded
    python bench/encoder.py --device cuda --batch 32 --runs 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch
from _common import summary, timed as _time  # bench/_common.py (beside this script)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from speechkd.models.convert.export_huggingface import build_hf_model  # noqa: E402
from speechkd.models.ssl import mini_ssl  # noqa: E402



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--conv-dim", type=int, default=64, help="waveform CNN channels (thin, as mini teachers)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    p.add_argument("--padded", action="store_true", help="ragged lengths (attention mask) instead of full")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    c = args.conv_dim
    ours = mini_ssl(n_layers=args.layers, d_model=args.dim, n_heads=max(1, args.dim // 64), ffn_dim=4 * args.dim,
                    conv_layers=[[c, 10, 5]] + [[c, 3, 2]] * 4 + [[c, 2, 2]] * 2, conv_norm="layer_norm",
                    pos_conv_kernel=32, pos_conv_groups=8, mask_time_prob=0.0, layerdrop=0.0)
    hf = build_hf_model(ours)  # same weights
    hf.config._attn_implementation = "sdpa"
    ours.to(device)
    hf.to(device)
    n = int(args.seconds * 16000)
    x = torch.randn(args.batch, n, device=device)
    if args.padded:
        lengths = torch.linspace(n // 2, n, args.batch, device=device).long()
        for i, ln in enumerate(lengths.tolist()):
            x[i, ln:] = 0
    else:
        lengths = torch.full((args.batch,), n, device=device, dtype=torch.long)
    att = (torch.arange(n, device=device)[None] < lengths[:, None]).long()

    with torch.no_grad():  # same outputs before timing anything
        diff = (ours.eval()(x, lengths).last_hidden_state - hf.eval()(x, attention_mask=att).last_hidden_state)
        valid = ~ours(x, lengths).padding_mask
        print(f"max abs diff ours vs HF (eval): {diff.abs()[valid].max().item():.2e}")

    def train_ours():
        ours.train()
        ours(x, lengths).last_hidden_state.pow(2).mean().backward()

    def train_hf():
        hf.train()
        hf(x, attention_mask=att).last_hidden_state.pow(2).mean().backward()

    def infer_ours():
        ours.eval()
        with torch.no_grad():
            ours(x, lengths)

    def infer_hf():
        hf.eval()
        with torch.no_grad():
            hf(x, attention_mask=att)

    results = {}
    for name, fo, fh in [("train step (fwd+bwd)", train_ours, train_hf), ("inference", infer_ours, infer_hf)]:
        fo(), fh()  # warm-up
        to, th = [], []
        for _ in range(args.runs):
            to.append(_time(fo, device))
            th.append(_time(fh, device))
            ours.zero_grad(set_to_none=True)
            hf.zero_grad(set_to_none=True)
        mo, mh = (statistics.median(t[0] for t in to), statistics.median(t[0] for t in th))
        co, ch = (statistics.median(t[1] for t in to), statistics.median(t[1] for t in th))
        results[name] = (mo, mh)
        summary(f"encoder ours/transformers speed ({name.split(' (')[0]}, {device})", mh / mo, "> 1: ours is faster")
        print(f"{name:22s} wall: ours {mo * 1000:8.1f} ms  HF {mh * 1000:8.1f} ms  speed ours/HF {mh / mo:5.2f}x"
              f" | CPU time: ours {co * 1000:8.1f} ms  HF {ch * 1000:8.1f} ms  ratio {ch / co:5.2f}x")
    audio = args.batch * args.seconds
    print(f"config: {args.layers} layers x {args.dim}, CNN {c} ch, batch {args.batch} x {args.seconds} s "
          f"({'padded' if args.padded else 'full'}), device {device}, threads {torch.get_num_threads()}, "
          f"runs {args.runs}; inference ours {audio / results['inference'][0]:.0f} s audio/s")


if __name__ == "__main__":
    main()
