"""Padding collate for the datasets in :mod:`speechkd.data.dataset`.

Each item is a dict with ``utt`` (str), ``x`` (tensor (T,) waveform or (T, F) features), optionally
``tokens`` (1-D int tensor) and any extra per-utterance fields (``lang``, ``intent``, ``text``, ...)::

    batch = collate([{"utt": "a", "x": torch.ones(3, 2), "tokens": torch.tensor([4, 5])},
                     {"utt": "b", "x": torch.ones(1, 2), "tokens": torch.tensor([6])}])
    batch["x"].shape          # (2, 3, 2), zero padded
    batch["x_lengths"]        # tensor([3, 1])
    batch["tokens"]           # tensor([[4, 5], [6, -1]])  (padded with -1)
    batch["token_lengths"]    # tensor([2, 1])
    batch["utts"]             # ["a", "b"]

Extra fields: tensors of equal shape are stacked, 1-D tensors of differing length are padded with
-1 (their lengths go to ``<name>_lengths``), anything else is returned as a list.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

TOKEN_PAD = -1


def pad_sequence(seqs: Sequence[torch.Tensor], value: float = 0.0) -> torch.Tensor:
    """Pad tensors of shape (T_i, ...) into (B, max T_i, ...)."""
    n = max(int(s.shape[0]) for s in seqs)
    out = seqs[0].new_full((len(seqs), n, *seqs[0].shape[1:]), value)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


def collate(items: List[Dict]) -> Dict:
    """Collate a list of dataset items into a padded batch dict (see module doc)."""
    if not items:
        raise ValueError("collate: empty batch")
    batch: Dict = {"utts": [it["utt"] for it in items]}
    xs = [torch.as_tensor(it["x"]) for it in items]
    batch["x"] = pad_sequence(xs, 0.0)
    batch["x_lengths"] = torch.tensor([x.shape[0] for x in xs], dtype=torch.long)
    if "tokens" in items[0]:
        toks = [torch.as_tensor(it["tokens"], dtype=torch.long) for it in items]
        batch["token_lengths"] = torch.tensor([t.numel() for t in toks], dtype=torch.long)
        if max(t.numel() for t in toks) == 0:
            batch["tokens"] = torch.full((len(toks), 0), TOKEN_PAD, dtype=torch.long)
        else:
            batch["tokens"] = pad_sequence(toks, TOKEN_PAD)
    for key in items[0]:
        if key in ("utt", "x", "tokens"):
            continue
        vals = [it[key] for it in items]
        if all(isinstance(v, torch.Tensor) for v in vals):
            if all(v.shape == vals[0].shape for v in vals):
                batch[key] = torch.stack(vals)
            elif all(v.dim() >= 1 for v in vals):
                batch[key] = pad_sequence(vals, TOKEN_PAD)
                batch[f"{key}_lengths"] = torch.tensor([v.shape[0] for v in vals], dtype=torch.long)
            else:
                batch[key] = vals
        else:
            batch[key] = vals
    return batch
