"""Paired decisions of a results table's claims: "row A beats row B", decided over seeds, never by hand.

A claim in a table spec (``speechkd-make-results``)::

    claims:
      - name: the teacher beats training from scratch
        better: fine-tuned from ssl_ml          # row expected to have the lower error
        worse: trained from scratch
        columns: [all]                          # where the claim is decided (each one separately)
        count: {columns: [en, de, es, it, ru, pl, ga], at_least: 5}   # optional: won on >= 5 of these
        margin: 2                               # optional: the mean gap must exceed margin x seed spread

Runs of the two rows are paired by their directory name (``seed1`` with ``seed1``: same seed, same data
order). For each column: the paired differences d_i = worse_i - better_i (positive = claim holds for an
error metric), their mean, a two-sided paired t-test (p-value; needs >= 2 pairs) and the rule of the
spec: **reproduced** when the mean gap is positive, p < ``alpha`` (default 0.05) and the gap exceeds
``margin`` x the larger seed standard deviation of the two rows; **reversed** when the same holds the
other way; otherwise **not decided** (within the noise). With a single pair the verdict is
"single seed: not decided". The sentence is generated from the numbers, so a re-run rewrites it.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence

__all__ = ["paired_t", "decide_claim", "claim_lines", "target_lines", "fit_claims"]


def _t_sf(t: float, df: int) -> float:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom."""
    try:
        from scipy.stats import t as student_t

        return float(2.0 * student_t.sf(abs(t), df))
    except ImportError:  # normal approximation (conservative enough for a note)
        return math.erfc(abs(t) / math.sqrt(2.0))


def paired_t(diffs: Sequence[float]) -> Dict[str, float]:
    """``{n, mean, sd, t, p}`` of a two-sided paired t-test of ``diffs`` against 0 (p = nan for n < 2)."""
    n = len(diffs)
    mean = sum(diffs) / n if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "sd": math.nan, "t": math.nan, "p": math.nan}
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0.0:
        t = math.copysign(math.inf, mean) if mean else 0.0
        p = 0.0 if mean else 1.0
    else:
        t = mean / (sd / math.sqrt(n))
        p = _t_sf(t, n - 1)
    return {"n": n, "mean": mean, "sd": sd, "t": t, "p": p}


def _sd(vals: Sequence[float]) -> float:
    n = len(vals)
    if n < 2:
        return 0.0
    m = sum(vals) / n
    return math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))


def decide_claim(better: Mapping[str, float], worse: Mapping[str, float], lower_is_better: bool = True,
                 margin: float = 0.0, alpha: float = 0.05) -> Dict:
    """Verdict of one claim in one column; ``better``/``worse``: {run name (seed): value}."""
    keys = sorted(set(better) & set(worse))
    sign = 1.0 if lower_is_better else -1.0
    diffs = [sign * (worse[k] - better[k]) for k in keys]
    st = paired_t(diffs)
    spread = max(_sd([better[k] for k in keys]), _sd([worse[k] for k in keys])) if keys else math.nan
    out = dict(st, spread=spread, pairs=keys, margin=margin, alpha=alpha)
    if st["n"] == 0:
        out["verdict"] = "no paired runs"
    elif st["n"] < 2:
        out["verdict"] = "single seed: not decided"
    elif abs(st["mean"]) > margin * spread and st["p"] < alpha:
        out["verdict"] = "reproduced" if st["mean"] > 0 else "reversed"
    else:
        out["verdict"] = "not decided (within the noise)"
    return out


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def claim_lines(claim: Mapping, per_run: Mapping[str, Mapping[str, Mapping[str, float]]],
                lower_is_better: bool = True, digits: int = 1) -> List[str]:
    """Markdown lines deciding ``claim`` (see module doc); ``per_run``: row -> run -> column -> value."""
    a, b = claim["better"], claim["worse"]
    if a not in per_run or b not in per_run:
        return [f"- **{claim['name']}**: rows '{a}' / '{b}' not in the table"]
    margin = float(claim.get("margin", 0.0))
    alpha = float(claim.get("alpha", 0.05))
    rule = (f"paired t-test over seeds, α = {alpha}" + (f", gap > {margin:g} × seed spread" if margin else ""))
    lines = [f"- **{claim['name']}** ({a} vs {b}; {rule}):"]

    def col_vals(row, col):
        return {run: v[col] for run, v in per_run[row].items() if col in v}

    for col in claim.get("columns", []):
        d = decide_claim(col_vals(a, col), col_vals(b, col), lower_is_better, margin, alpha)
        if d["n"] == 0:
            lines.append(f"  - {col}: no paired runs")
            continue
        lines.append(f"  - {col}: {d['verdict']}: gap {d['mean']:+.{digits}f} (positive = {a} better), "
                     f"seed spread {d['spread']:.{digits}f}, {_fmt_p(d['p'])}, n = {d['n']} pairs")
    cnt = claim.get("count")
    if cnt:
        won = []
        for col in cnt["columns"]:
            d = decide_claim(col_vals(a, col), col_vals(b, col), lower_is_better, margin, alpha)
            if d["verdict"] == "reproduced":
                won.append(col)
        ok = len(won) >= int(cnt["at_least"])
        lines.append(f"  - decided for {a} on {len(won)} of {len(cnt['columns'])} columns "
                     f"({', '.join(won) or 'none'}); the claim asks for at least {cnt['at_least']}: "
                     f"{'met' if ok else 'not met'}")
    return lines


def target_lines(claim: Mapping, per_run: Mapping[str, Mapping[str, Mapping[str, float]]],
                 digits: int = 1) -> List[str]:
    """Markdown line of a target claim (``row``, ``column``, ``at_most`` or ``at_least``; module doc)."""
    row, col = claim["row"], claim["column"]
    vals = [v[col] for v in per_run.get(row, {}).values() if col in v]
    if not vals:
        return [f"- **{claim['name']}**: no runs of '{row}' with column '{col}'"]
    mean = sum(vals) / len(vals)
    if "at_most" in claim:
        bound, worst, rel = float(claim["at_most"]), max(vals), "≤"
        ok = mean <= bound
    else:
        bound, worst, rel = float(claim["at_least"]), min(vals), "≥"
        ok = mean >= bound
    return [f"- **{claim['name']}** ({row}, {col} {rel} {bound:g}): {'met' if ok else 'not met'}: "
            f"mean {mean:.{digits}f} ± {_sd(vals):.{digits}f} over {len(vals)} run(s), worst {worst:.{digits}f}"]


def fit_claims(claims, rows, columns):
    """The claims a table with these ``rows`` and ``columns`` (names) can decide, restricted to the columns
    present: ``(kept, [(claim name, why dropped), ...])``. Used for optional rows that were not run and by
    recipes that trim a spec to what they ran (hubert_kd's local/add_params_rtf.py)."""
    kept, dropped = [], []
    for c in claims:
        missing = [c[k] for k in ("better", "worse", "row") if k in c and c[k] not in rows]
        if missing:
            dropped.append((c["name"], f"row '{missing[0]}' not run"))
            continue
        if "columns" in c:
            cols = [x for x in c["columns"] if x in columns]
            if not cols:
                dropped.append((c["name"], "none of its columns in this run"))
                continue
            c = dict(c, columns=cols)
        elif "column" in c and c["column"] not in columns:
            dropped.append((c["name"], f"column '{c['column']}' not in this run"))
            continue
        kept.append(c)
    return kept, dropped
