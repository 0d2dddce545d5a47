"""Boundary accuracy of a hypothesis CTM against a reference CTM with the same token sequence.

The boundaries compared are the start time of every token (its onset; for contiguous segmentations this
is also the previous token's end), optionally plus the end of the last token.

Example::

    >>> st = boundary_errors(read_ctm("exp/align/phones.ctm"), read_ctm("data/train_en/phones.ctm"))
    >>> st["median_abs_ms"], st["pct_within_tol"]          # e.g. 12.0, 78.5 (tolerance 20 ms)

Utterances missing from either side or whose token sequences differ are skipped and counted
(``n_missing``, ``n_mismatch``; the first few mismatching ids in ``mismatch_examples``).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np

from .ctm import CTMEntry

__all__ = ["boundaries", "boundary_errors", "accuracy_markdown"]


def boundaries(entries: Sequence[CTMEntry], include_last_end: bool = False) -> List[float]:
    b = [e.start for e in entries]
    if include_last_end and entries:
        b.append(entries[-1].end)
    return b


def boundary_errors(hyp: Mapping[str, Sequence[CTMEntry]], ref: Mapping[str, Sequence[CTMEntry]],
                    tolerance_ms: float = 20.0, include_last_end: bool = False,
                    compare_tokens: bool = True) -> Dict[str, object]:
    """Statistics of |hyp boundary - ref boundary| (ms) over utterances present in both CTMs.

    Returns a dict: ``n_utts``, ``n_boundaries``, ``n_missing``, ``n_mismatch``, ``mismatch_examples``,
    ``median_abs_ms``, ``mean_abs_ms``, ``p90_abs_ms``, ``max_abs_ms``, ``mean_signed_ms`` (hyp - ref;
    > 0 means late), ``tolerance_ms``, ``pct_within_tol`` (percentage of boundaries with error <= tol).
    With ``compare_tokens=False`` only the token counts must agree.
    """
    errs: List[float] = []
    n_utts = n_missing = 0
    mismatch: List[str] = []
    for utt in sorted(set(hyp) | set(ref)):
        if utt not in hyp or utt not in ref:
            n_missing += 1
            continue
        h, r = list(hyp[utt]), list(ref[utt])
        same = [e.token for e in h] == [e.token for e in r] if compare_tokens else len(h) == len(r)
        if not same:
            mismatch.append(utt)
            continue
        n_utts += 1
        hb, rb = boundaries(h, include_last_end), boundaries(r, include_last_end)
        errs += [1000.0 * (a - b) for a, b in zip(hb, rb)]
    e = np.asarray(errs, dtype=np.float64)
    a = np.abs(e)
    nan = float("nan")
    return {
        "n_utts": n_utts, "n_boundaries": int(e.size), "n_missing": n_missing, "n_mismatch": len(mismatch),
        "mismatch_examples": mismatch[:5],
        "median_abs_ms": float(np.median(a)) if a.size else nan,
        "mean_abs_ms": float(a.mean()) if a.size else nan,
        "p90_abs_ms": float(np.percentile(a, 90)) if a.size else nan,
        "max_abs_ms": float(a.max()) if a.size else nan,
        "mean_signed_ms": float(e.mean()) if e.size else nan,
        "tolerance_ms": float(tolerance_ms),
        "pct_within_tol": float(100.0 * (a <= tolerance_ms + 1e-9).mean()) if a.size else nan,
    }


def accuracy_markdown(named: Mapping[str, Mapping[str, object]], digits: int = 1) -> str:
    """Markdown table of :func:`boundary_errors` results, one row per name (e.g. per data set).

    Example::

        >>> print(accuracy_markdown({"train_en": st}))
        | set | utts | boundaries | median abs err (ms) | mean abs err (ms) | within 20 ms (%) | mismatched utts |
        |---|---|---|---|---|---|---|
        | train_en | 1000 | 31012 | 8.0 | 11.3 | 84.1 | 2 |
    """
    tols = {float(st["tolerance_ms"]) for st in named.values()} or {20.0}
    tol = f"{max(tols):g}" if len(tols) == 1 else "tol"
    lines = [f"| set | utts | boundaries | median abs err (ms) | mean abs err (ms) | within {tol} ms (%) "
             "| mismatched utts |", "|---|---|---|---|---|---|---|"]
    for name, st in named.items():
        lines.append(f"| {name} | {st['n_utts']} | {st['n_boundaries']} | {float(st['median_abs_ms']):.{digits}f} | "
                     f"{float(st['mean_abs_ms']):.{digits}f} | {float(st['pct_within_tol']):.{digits}f} | "
                     f"{st['n_mismatch']} |")
    return "\n".join(lines) + "\n"
