"""Shared bench helpers: device-synchronised timing and the machine-readable ratio lines.

Each bench prints its own human table, then ``summary(name, ratio, meaning)`` lines of the form
``RATIO<TAB>name<TAB>value<TAB>meaning`` that bench/run_all.sh collects into one table.
"""
import resource
import statistics
import sys
import time


def sync(device) -> None:
    """Wait for queued CUDA work so that wall-clock timings are honest."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(fn, device):
    """(wall seconds, process CPU seconds) of one call; CPU time is steadier on a shared machine."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def median_wall(fn, device, runs: int) -> float:
    """Median wall time of ``runs`` calls after one warm-up call."""
    fn()
    return statistics.median(timed(fn, device)[0] for _ in range(runs))


def summary(name: str, value: float, meaning: str = "") -> None:
    print(f"RATIO\t{name}\t{value:.3f}\t{meaning}", flush=True)


def peak_rss() -> int:
    """This process's peak resident set size in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux
