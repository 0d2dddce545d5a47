"""Numeric precision of training and inference: ``fp32``, ``bf16`` or ``fp16`` autocast, chosen per device.

One config key, ``train.precision`` (``auto | fp32 | bf16 | fp16``), read by the trainer and by the decoding
CLIs (``--precision``)::

    from speechkd.train.precision import resolve_precision, autocast
    name, dtype = resolve_precision("auto", torch.device("cpu"))   # ('bf16', torch.bfloat16) on a CPU
                                                                     # with AVX512-BF16/AMX, else ('fp32', None)
    with autocast(torch.device("cpu"), dtype):
        loss = model(x)          # matmuls/convs in bf16; the losses cast their inputs to fp32 themselves

``auto`` takes the environment variable ``SPEECHKD_PRECISION`` when set (e.g. ``fp32`` for bit-exact
comparisons across machines; the test suite sets it), else picks bf16 where the hardware has bf16 matrix units (CUDA: ``torch.cuda.is_bf16_supported()``;
CPU: the ``avx512_bf16`` or ``amx_bf16`` flag in ``/proc/cpuinfo``), fp16 on an older GPU, fp32 otherwise,
and logs why. An explicit ``bf16`` on a CPU without those units still runs (emulated, slow) with a warning.
Losses that need fp32 (CTC, RNN-T, KL, cross-entropy over codebooks, regression losses) cast to fp32
inside the loss functions, so they are exact whatever the autocast region.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from typing import Optional, Tuple

import torch

log = logging.getLogger("speechkd")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_ALIASES = {"none": "fp32", "float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> Tuple[str, ...]:
    """The bf16 matrix-unit flags this CPU advertises (``avx512_bf16``, ``amx_bf16``); () if none/unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(fl for fl in _CPU_BF16_FLAGS if fl in flags)
    except OSError:
        pass
    return ()


def normalize_precision(name) -> str:
    """Canonical precision name (``none`` -> ``fp32`` ...); raises ValueError for an unknown one."""
    key = str(name if name is not None else "auto").lower()
    key = _ALIASES.get(key, key)
    if key not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{name}'")
    return key


def resolve_precision(name, device: torch.device, quiet: bool = False) -> Tuple[str, Optional[torch.dtype]]:
    """``(name, autocast dtype or None)`` for a requested precision on ``device`` (see module doc)."""
    key = normalize_precision(name)
    if key == "auto" and os.environ.get("SPEECHKD_PRECISION"):
        key = normalize_precision(os.environ["SPEECHKD_PRECISION"])
    device = torch.device(device)
    say = (lambda *a: None) if quiet else log.info
    if key == "auto":
        if device.type == "cuda":
            key = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            say("precision auto: %s on %s", key, torch.cuda.get_device_name(device))
        elif device.type == "cpu" and cpu_bf16_flags():
            key = "bf16"
            say("precision auto: bf16 (CPU has %s)", "/".join(cpu_bf16_flags()))
        else:
            key = "fp32"
            say("precision auto: fp32 (no bf16 matrix units on %s)", device.type)
    elif key == "bf16" and device.type == "cpu" and not cpu_bf16_flags() and not quiet:
        log.warning("precision bf16 on a CPU without avx512_bf16/amx_bf16: emulated, likely slower than fp32")
    elif key == "fp16" and device.type == "cpu" and not quiet:
        log.warning("precision fp16 on CPU: few kernels support it; bf16 or fp32 is usually faster")
    return key, _DTYPES[key]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op context for fp32 (None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
