"""Benchmark: Kaldi fbank throughput (frames/s) of speechkd.features.kaldi vs kaldi-native-fbank.

Usage:

    python bench/fbank.py                 # 60 s of audio, and a batch of 8 x 10 s
    python bench/fbank.py --seconds 30 --runs 9 --threads 2

Both compute 80-bin fbank with dither 0 on the same speech-like audio; each timing is the median of
``--runs`` runs after one warm-up. kaldi-native-fbank processes batch items one after another (including
reading the frames back into a numpy array); ours runs the (B, S) batch in one call. CUDA rows appear
when a GPU is available (synchronised timings). The last column is ours / knf throughput (> 1: ours faster).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _common import summary  # bench/_common.py (beside this script)

from speechkd.features.kaldi import fbank, num_frames


def speech_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(130 + 30 * np.sin(2 * np.pi * 0.4 * t)) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 21)) * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)
    x += 0.02 * rng.standard_normal(t.shape)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def knf_fbank(batch: np.ndarray, sr: int = 16000, bins: int = 80) -> list:
    import kaldi_native_fbank as knf

    out = []
    for x in batch:
        o = knf.FbankOptions()
        o.frame_opts.dither = 0.0
        o.frame_opts.samp_freq = sr
        o.mel_opts.num_bins = bins
        comp = knf.OnlineFbank(o)
        comp.accept_waveform(sr, x * 32768)
        comp.input_finished()
        out.append(np.stack([comp.get_frame(i) for i in range(comp.num_frames_ready)]))
    return out


def median_time(fn, runs: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="length of the single utterance")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batch-seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import kaldi_native_fbank  # noqa: F401
        have_knf = True
    except ImportError:
        have_knf = False

    cases = [(f"1 x {args.seconds:g} s", speech_like(args.seconds)[None]),
             (f"{args.batch} x {args.batch_seconds:g} s",
              np.stack([speech_like(args.batch_seconds, seed=i) for i in range(args.batch)]))]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, 80-bin fbank, dither 0, "
          f"median of {args.runs}")
    print(f"{'case':<14} {'impl':<12} {'ms':>9} {'frames/s':>12} {'ours/knf':>9}")
    for name, batch in cases:
        frames = batch.shape[0] * num_frames(batch.shape[1])
        knf_t = None
        if have_knf:
            knf_t = median_time(lambda: knf_fbank(batch), args.runs)
            print(f"{name:<14} {'knf':<12} {1e3 * knf_t:9.1f} {frames / knf_t:12.0f} {'1.00':>9}")
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for dev in devices:
            x = torch.from_numpy(batch).to(dev)
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            with torch.no_grad():
                t = median_time(lambda: fbank(x), args.runs, sync)
            ratio = f"{knf_t / t:9.2f}" if knf_t else f"{'-':>9}"
            print(f"{name:<14} {'ours-' + dev:<12} {1e3 * t:9.1f} {frames / t:12.0f} {ratio}")
            if knf_t:
                summary(f"fbank ours/knf speed ({name}, {dev})", knf_t / t, "> 1: ours is faster")


if __name__ == "__main__":
    main()
