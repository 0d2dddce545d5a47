"""Generate a recipe's RESULTS.md from ``score.json`` files and a small table spec.

Table spec (YAML or JSON)::

    title: mini_espeak DistilXLSR
    unit: phone                 # unit of score.json to summarise (default: its first unit)
    metric: Err                 # column of the ESPnet table to summarise (Err, Sub, Del, Ins, S.Err, ...)
    columns:                    # test sets: a decode dir under each run dir (+ optional language)
      - {name: en, decode: decode_test_en}
      - {name: de, decode: decode_test_multi, lang: de}    # per-language scores of a mixed test set
      - {name: WER, decode: decode_test, unit: word}       # a unit other than the table's
    rows:                       # methods: a run dir or a glob over seed dirs
      - {name: teacher, exp: exp/teacher_ft}
      - {name: student (shuffled), exp: "exp/student_shuf_seed*/ft"}
      - {name: "cause: ...", exp: exp/pilot/x, compare: false}   # in the table, left out of the notes
      - {name: "v1", exp: "exp/v1/seed*", optional: true}   # left out (with its claims) when not run
    notes: ["Fine-tuned on 50 utterances per language."]
    readings:                   # hand-written readings, each for the table whose fingerprint it names
      - {scores: 3f2a9c0d1b7e, text: "The student keeps the teacher's PER because ..."}

Two more column kinds: ``{name: params (M), file: params.json, key: params_M}`` reads a number from
``<exp>/<file>`` (JSON) instead of a score, and ``{name: avg, mean_of: [de, es]}`` is, per run dir, the mean
of the named columns (then summarised over seeds like the others). ``sections: [{title: ..., file: ...}]``
appends text files (e.g. a markdown table written by a stage) after the summary. ``claims:`` lists
"row A beats row B" claims decided by a paired test over seeds (:mod:`speechkd.asr.claims`); their verdict
sentences, with the numbers, are generated in a "Claims" section (only the explanation of why is written by
hand, under ``readings``: each reading names the ``scores fingerprint`` of the table it was written for,
and is left out, with a note, when a re-run changed the numbers); a target claim (``row``, ``column``,
``at_most``/``at_least``) says whether a row reaches a bound.

Each cell reads ``<exp>/<decode>/score.json`` for every directory the ``exp`` glob matches (one per seed)
and shows ``mean ± std (n=k)`` over seeds (sample std) or the single value. In each column the best row
is compared with the others: when the gap is smaller than the larger seed spread of the two, the notes
say "within seed spread, no winner". RESULTS.md starts with the environment (date, git hash, python,
torch, CPU, GPU), then the summary, then the ESPnet table of every decode dir. Written atomically::

    make_results("conf/results.yaml", "RESULTS.md", root=".")
"""
from __future__ import annotations

import datetime
import glob
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_write_text
from .scoring import COLUMNS, ErrorStats, format_table

__all__ = ["collect_environment", "load_table_spec", "summarize", "compare_rows", "build_results",
           "make_results"]


# ------------------------------------------------------------------------------------------- environment
def _git(root, *args) -> Optional[str]:
    try:
        p = subprocess.run(["git", *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_environment(root=".") -> Dict[str, str]:
    """Date (UTC), git hash (+ ``-dirty``; of ``root``'s repository, else speechkd's), python, torch,
    CPU (name, cores) and GPU of this machine."""
    import torch

    # the recipe's repository, else the one speechkd itself was loaded from
    git, where = "unknown", None
    for cand in (root, Path(__file__).resolve().parent):
        h = _git(cand, "rev-parse", "--short", "HEAD")
        if h:
            git, where = h, cand
            break
    if where is not None and _git(where, "status", "--porcelain", "--untracked-files=no"):
        git += "-dirty"
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "platform": f"{platform.system()} {platform.release()}",
        "cpu": f"{_cpu_name()} ({os.cpu_count()} cores)",
        "gpu": ", ".join(gpus) if gpus else "none",
    }


# ------------------------------------------------------------------------------------------- spec
def load_table_spec(spec: Union[str, Path, dict]) -> dict:
    """Read and check a table spec (YAML/JSON path or dict); ConfigError names the file and the problem."""
    where = "table spec"
    if not isinstance(spec, dict):
        from ..utils.config import load_yaml  # YAML is a superset of JSON

        where = str(spec)
        spec = load_yaml(spec)
    spec = dict(spec)
    for key in ("rows", "columns"):
        if not isinstance(spec.get(key), list) or not spec[key]:
            raise ConfigError(f"{where}: '{key}' must be a non-empty list")
    cols = []
    for i, c in enumerate(spec["columns"]):
        if isinstance(c, str):
            c = {"name": c, "decode": c}
        if not isinstance(c, dict) or "name" not in c or not ("decode" in c or "file" in c or "mean_of" in c):
            raise ConfigError(f"{where}: columns[{i}] needs 'name' and one of 'decode', 'file' (+ 'key'), 'mean_of'")
        if "file" in c and "key" not in c:
            raise ConfigError(f"{where}: columns[{i}] with 'file' needs 'key'")
        if "mean_of" in c and not set(c["mean_of"]) <= {x["name"] for x in cols}:
            raise ConfigError(f"{where}: columns[{i}] mean_of must name earlier columns")
        cols.append(dict(c))
    rows = []
    for i, r in enumerate(spec["rows"]):
        if not isinstance(r, dict) or "name" not in r or "exp" not in r:
            raise ConfigError(f"{where}: rows[{i}] needs 'name' and 'exp'")
        rows.append(dict(r))
    metric = spec.get("metric", "Err")
    if metric not in COLUMNS[2:]:
        raise ConfigError(f"{where}: metric '{metric}' is not one of {', '.join(COLUMNS[2:])}")
    sections = spec.get("sections") or []
    if not isinstance(sections, list) or not all(isinstance(x, dict) and "file" in x for x in sections):
        raise ConfigError(f"{where}: 'sections' must be a list of {{title, file}}")
    claims = spec.get("claims") or []
    row_names = {r["name"] for r in rows}
    col_names = {c["name"] for c in cols}
    for i, c in enumerate(claims):
        if isinstance(c, dict) and "row" in c:   # a target: one row must reach a bound in one column
            if not ({"name", "column"} <= set(c) and (("at_most" in c) != ("at_least" in c))):
                raise ConfigError(f"{where}: claims[{i}] (a target) needs 'name', 'row', 'column' and one "
                                  "of 'at_most', 'at_least'")
            if c["row"] not in row_names:
                raise ConfigError(f"{where}: claims[{i}] names a row that is not in 'rows'")
            if c["column"] not in col_names:
                raise ConfigError(f"{where}: claims[{i}] names unknown column(s) {c['column']}")
            continue
        if not isinstance(c, dict) or not {"name", "better", "worse"} <= set(c):
            raise ConfigError(f"{where}: claims[{i}] needs 'name', 'better' and 'worse' (or 'row', 'column' "
                              "and 'at_most'/'at_least')")
        if not {c["better"], c["worse"]} <= row_names:
            raise ConfigError(f"{where}: claims[{i}] names a row that is not in 'rows'")
        used = set(c.get("columns") or []) | set((c.get("count") or {}).get("columns") or [])
        if not used <= col_names:
            raise ConfigError(f"{where}: claims[{i}] names unknown column(s) {', '.join(sorted(used - col_names))}")
    readings = spec.get("readings") or []
    for i, r in enumerate(readings):
        if not isinstance(r, dict) or not {"scores", "text"} <= set(r):
            raise ConfigError(f"{where}: readings[{i}] needs 'scores' (the table's fingerprint) and 'text'")
    unknown = set(spec) - {"title", "unit", "metric", "columns", "rows", "notes", "digits", "sections", "claims",
                           "readings"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return {"title": spec.get("title", "Results"), "unit": spec.get("unit"), "metric": metric,
            "columns": cols, "rows": rows, "notes": list(spec.get("notes") or []),
            "digits": int(spec.get("digits", 1)), "sections": sections, "claims": claims, "readings": readings}


def scores_fingerprint(per_run: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """12 hex digits identifying the numbers of a table: every (row, run dir, column, value) it read.

    A hand-written reading in the spec carries the fingerprint of the table it was written for
    (``readings: [{scores: <fp>, text: ...}]``); a re-run with other numbers has another fingerprint, and
    the stale reading is left out instead of being printed under the new numbers.
    """
    import hashlib

    items = sorted(f"{row}\t{run}\t{col}\t{val:.4f}" for row, runs in per_run.items()
                   for run, cols in runs.items() for col, val in cols.items())
    return hashlib.sha1("\n".join(items).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------- statistics
def summarize(values: Sequence[float]) -> Tuple[float, float, int]:
    """``(mean, spread, n)`` with spread the sample standard deviation (0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, spread, n


def compare_rows(cells: Dict[str, Tuple[float, float, int]], column: str, lower_is_better: bool = True,
                 digits: int = 1) -> List[str]:
    """Notes for one column (``cells``: row -> :func:`summarize` output).

    Every pair of rows whose means differ by less than the larger of their seed spreads gets
    "within seed spread, no winner"; the best row gets "better than X" for each row it beats by more
    than the spread; when the best two rows have a single seed each the spread is reported unknown.
    """
    have = {r: c for r, c in cells.items() if c[2] > 0}
    if len(have) < 2:
        return []
    ranked = sorted(have, key=lambda r: have[r][0], reverse=not lower_is_better)
    notes = []
    for i, a in enumerate(ranked):
        for b in ranked[i + 1:]:
            (ma, sa, na), (mb, sb, nb) = have[a], have[b]
            gap, spread = abs(ma - mb), max(sa, sb)
            if max(na, nb) >= 2 and gap < spread:
                notes.append(f"{column}: {a} vs {b}: gap {gap:.{digits}f} < seed spread {spread:.{digits}f}: "
                             "within seed spread, no winner")
            elif i == 0 and max(na, nb) >= 2:
                notes.append(f"{column}: {a} better than {b} by {gap:.{digits}f} (seed spread {spread:.{digits}f})")
    best, second = ranked[0], ranked[1]
    if have[best][2] < 2 and have[second][2] < 2:
        gap = abs(have[best][0] - have[second][0])
        notes.append(f"{column}: {best} vs {second}: gap {gap:.{digits}f}, single seed each (spread unknown)")
    return notes


def _run_key(run_dir: str) -> str:
    """Key that pairs runs of two rows: the last ``seed<N>`` in the path (else the dir name)."""
    import re

    found = re.findall(r"seed\d+", run_dir)
    return found[-1] if found else Path(run_dir).name


def _fmt(cell: Tuple[float, float, int], digits: int) -> str:
    m, s, n = cell
    if n == 0:
        return "–"
    return f"{m:.{digits}f}" if n == 1 else f"{m:.{digits}f} ± {s:.{digits}f} (n={n})"


def _load_score(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"invalid JSON: {e.msg}") from None


def _stats_of(score: dict, unit: Optional[str], lang: Optional[str], path: Path) -> Tuple[str, dict]:
    table = score.get("units", {}) if lang is None else score.get("per_lang", {}).get(lang)
    if not table:
        raise DataError(path, None, f"no scores{'' if lang is None else f' for language {lang!r}'}")
    unit = unit or next(iter(table))
    if unit not in table:
        raise DataError(path, None, f"no '{unit}' scores (has {', '.join(table)})")
    return unit, table[unit]


# ------------------------------------------------------------------------------------------- document
def build_results(spec, root=".", env: Optional[dict] = None, strict: bool = False,
                  spec_name: str = "") -> str:
    """Return RESULTS.md text for a table spec (see module doc); paths are relative to ``root``."""
    spec = load_table_spec(spec)
    root = Path(root)
    env = env if env is not None else collect_environment(root)
    from .claims import fit_claims

    not_run = [r["name"] for r in spec["rows"] if r.get("optional") and not glob.glob(str(root / r["exp"]))]
    if not_run:   # optional rows (e.g. an earlier version's runs) are left out, with their claims, when absent
        spec = dict(spec, rows=[r for r in spec["rows"] if r["name"] not in not_run],
                    claims=fit_claims(spec["claims"], {r["name"] for r in spec["rows"]} - set(not_run),
                                      {c["name"] for c in spec["columns"]})[0],
                    notes=list(spec["notes"]) + [f"Not run, left out: {', '.join(not_run)}."])
    digits, metric = spec["digits"], spec["metric"]
    lower_better = metric not in ("Corr",)
    cells: Dict[str, Dict[str, Tuple[float, float, int]]] = {c["name"]: {} for c in spec["columns"]}
    details: List[str] = []
    missing: List[str] = []
    per_run: Dict[str, Dict[str, Dict[str, float]]] = {}   # row -> run dir name (seed) -> column -> value
    unit_used = spec["unit"]
    for row in spec["rows"]:
        run_dirs = sorted(glob.glob(str(root / row["exp"]))) if any(ch in row["exp"] for ch in "*?[") \
            else [str(root / row["exp"])]
        if not run_dirs:
            missing.append(f"{row['exp']} (no run dir matches)")
        detail_rows: Dict[str, List[Tuple[str, ErrorStats]]] = {}
        per_dir: Dict[str, Dict[str, float]] = {d: {} for d in run_dirs}
        per_run[row["name"]] = {_run_key(d): per_dir[d] for d in run_dirs}
        for col in spec["columns"]:
            vals = []
            if "decode" not in col:
                for d in run_dirs:
                    if "mean_of" in col:
                        got = [per_dir[d][n] for n in col["mean_of"] if n in per_dir[d]]
                        v = sum(got) / len(got) if got and len(got) == len(col["mean_of"]) else None
                    else:
                        p = Path(d) / col["file"]
                        got_file = _load_score(p) if p.exists() else {}
                        v = float(got_file[col["key"]]) if col["key"] in got_file else None
                        if v is None:
                            where = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
                            if p.exists() and strict:
                                raise DataError(p, None, f"no key '{col['key']}' (has {', '.join(got_file)})")
                            missing.append(where if not p.exists() else f"{where}: {col['key']}")
                    if v is not None:
                        per_dir[d][col["name"]] = v
                        vals.append(v)
                cells[col["name"]][row["name"]] = summarize(vals)
                continue
            for d in run_dirs:
                p = Path(d) / col["decode"] / "score.json"
                if not p.exists():
                    missing.append(str(p.relative_to(root)) if p.is_relative_to(root) else str(p))
                    continue
                score = _load_score(p)
                if col.get("lang") and col["lang"] not in score.get("per_lang", {}) and not strict:
                    missing.append(f"{p}: {col['lang']}")   # e.g. a dry run on fewer languages: an empty cell
                    continue
                unit, st = _stats_of(score, col.get("unit") or spec["unit"], col.get("lang"), p)
                unit_used = unit_used or unit
                vals.append(float(st[metric]))
                per_dir[d][col["name"]] = float(st[metric])
                label = os.path.relpath(p.parent, root) + (f"/{col['lang']}" if col.get("lang") else "")
                detail_rows.setdefault(unit, []).append((label, ErrorStats.from_dict(st)))
            cells[col["name"]][row["name"]] = summarize(vals)
        for unit, rows in detail_rows.items():
            details.append(f"### {row['name']} ({unit})\n\n{format_table(rows, digits)}\n")
    missing += [sec["file"] for sec in spec["sections"] if not (root / sec["file"]).exists()]
    if missing and strict:
        raise DataError(missing[0], None, "score.json missing (run the decode/score stages)")

    out = [f"# {spec['title']}", "",
           f"<!-- Generated by speechkd-make-results{(' from ' + spec_name) if spec_name else ''}; "
           "do not edit by hand. -->", "", "## Environment", ""]
    out += [f"- {k}: {v}" for k, v in env.items()]
    fingerprint = scores_fingerprint(per_run)
    out.append(f"- scores fingerprint: {fingerprint} (a reading in the spec's readings: applies to these numbers "
               "only when its scores: field equals it)")
    if len({c.get("unit") or unit_used for c in spec["columns"] if "decode" in c}) > 1:
        unit_used = None   # columns of different units (their names say which)
    out += ["", f"## Summary: {unit_used or ''} {metric} (%)".replace("  ", " "), ""]
    if any(n > 1 for col in cells.values() for (_, _, n) in col.values()):
        out += ["Mean ± sample standard deviation over seeds (n = number of seeds).", ""]
    names = [c["name"] for c in spec["columns"]]
    out.append("| method | " + " | ".join(names) + " |")
    out.append("|---|" + "---|" * len(names))
    for row in spec["rows"]:
        out.append(f"| {row['name']} | " + " | ".join(_fmt(cells[c][row['name']], digits) for c in names) + " |")
    notes = list(spec["notes"])
    quiet = {r["name"] for r in spec["rows"] if r.get("compare") is False}   # e.g. single-seed cause rows
    for c in spec["columns"]:
        if "file" not in c:
            cmp_cells = {r: v for r, v in cells[c["name"]].items() if r not in quiet}
            notes += compare_rows(cmp_cells, c["name"], lower_better, digits)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        notes.append(f"{len(missing)} score file(s) missing: {', '.join(missing[:5])}{more}")
    if notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    if spec["claims"]:
        from .claims import claim_lines, target_lines

        out += ["", "## Claims (generated from the score files)", ""]
        for claim in spec["claims"]:
            out += target_lines(claim, per_run, digits) if "row" in claim else \
                claim_lines(claim, per_run, lower_better, digits)
    current = [r["text"] for r in spec["readings"] if str(r["scores"]) == fingerprint]
    stale = [str(r["scores"]) for r in spec["readings"] if str(r["scores"]) != fingerprint]
    if current or stale:
        out += ["", "## Reading (written by hand for these numbers)", ""] + [f"- {t}" for t in current]
        if stale:
            out.append(f"- {len(stale)} reading(s) written for other numbers (scores {', '.join(stale)}) left out: "
                       "the table changed since; re-read it and update conf (readings, scores: the fingerprint "
                       "above).")
    for sec in spec["sections"]:
        p = root / sec["file"]
        body = p.read_text(encoding="utf-8").strip() if p.exists() else f"(missing: {sec['file']})"
        out += ["", f"## {sec.get('title', sec['file'])}", "", body]
    out += ["", "## Details (ESPnet-style tables per decode dir)", ""] + details
    return "\n".join(out).rstrip() + "\n"


def make_results(spec, out_path, root=".", strict: bool = False) -> str:
    """Build RESULTS.md (see :func:`build_results`) and write it atomically to ``out_path``."""
    name = str(spec) if not isinstance(spec, dict) else ""
    text = build_results(spec, root=root, strict=strict, spec_name=name)
    atomic_write_text(out_path, text)
    return text
