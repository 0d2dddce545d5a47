"""Global random-number state of a training run: seeding, and the states a checkpoint stores so that a
resumed run draws the same numbers as an uninterrupted one.

States are tensors and plain containers, so ``train_state.pt`` loads with ``torch.load(weights_only=True)``::

    seed_everything(1)
    st = get_rng_state(); a = torch.rand(3)
    set_rng_state(st);    assert torch.equal(a, torch.rand(3))
"""
from __future__ import annotations

import random
from typing import Dict

import numpy as np
import torch


def get_rng_state() -> Dict:
    """All global RNG states as tensors and plain containers (so ``train_state.pt`` loads with
    ``torch.load(weights_only=True)``: no numpy arrays, no pickled Python objects)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                        "gauss": gauss},
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict) -> None:
    """Inverse of :func:`get_rng_state` (also accepts the legacy tuple / numpy-array form)."""
    py, npst = state["python"], state["numpy"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"])
    random.setstate(py)
    if isinstance(npst, dict):
        npst = (npst["kind"], np.asarray(npst["keys"].numpy(), dtype=np.uint32), npst["pos"],
                npst["has_gauss"], npst["cached_gaussian"])
    np.random.set_state(npst)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
