#!/usr/bin/env python3
"""Fit the results table spec to what run.sh ran, and write per-run parameter counts and real-time factors.

Usage (run.sh stage 9)::

    python3 local/add_params_rtf.py --spec conf/results.yaml --sizes "100 10 2" --out exp/results_spec.yaml \
        --command "./run.sh --conf_tag default"

Writes ``<run dir>/summary.json`` for every run dir of every row: ``params_k`` (thousands of parameters
of the fine-tuned model's encoder = the SSL teacher/student, CTC head excluded, read from
``<run>/ft<first size>/model``) and ``rtf_x1000`` (mean decoding real-time factor x 1000 = milliseconds
of compute per second of audio, over the run's ``ft*/decode_test/decode.yaml``; one-job decoding on
this machine's CPU, Fbank models reading precomputed features). The output spec keeps only the rows
that were run and finished (the others become notes; unfinished seeds of a row are left out with a
note), only the score columns of the sizes given, only the claims whose rows were run (restricted to those
columns), and adds the ``params (k)`` and ``RTF x1000`` columns
read from ``summary.json``; the notes also get the teacher's validation accuracy and per-layer spread.
"""
import argparse
import glob
import json
import sys
from pathlib import Path

from speechkd.asr.claims import fit_claims
from speechkd.models.checkpoint import load_checkpoint
from speechkd.utils.config import load_yaml, save_config
from speechkd.utils.fileio import atomic_write_text


def summarise_run(run: Path, sizes) -> dict:
    model, _ = load_checkpoint(run / f"ft{sizes[0]}" / "model")
    rtfs = []
    for s in sizes:
        y = run / f"ft{s}" / "decode_test" / "decode.yaml"
        if y.exists() and load_yaml(y).get("rtf") is not None:
            rtfs.append(float(load_yaml(y)["rtf"]))
    out = {"params_k": sum(q.numel() for q in model.encoder.parameters()) / 1e3,
           "rtf_x1000": 1e3 * sum(rtfs) / len(rtfs) if rtfs else None, "n_decodes": len(rtfs)}
    atomic_write_text(run / "summary.json", json.dumps(out, indent=1) + "\n")
    return out


def teacher_notes(teacher="exp/teacher", data="data/dev") -> list:
    """The teacher's last validation accuracies and the spread over time of each layer's output on one
    dev utterance (a collapsed top layer makes fine-tuning from it slow)."""
    import torch

    from speechkd.data.dataset import WavDataset

    notes = []
    log = Path(teacher) / "train.log"
    valid = [ln for ln in log.read_text().splitlines() if "[valid]" in ln] if log.exists() else []
    model_dir = Path(teacher) / "model"
    if not model_dir.exists():
        return notes
    model, _ = load_checkpoint(model_dir)
    model.eval()
    if valid:
        f = valid[-1].split()
        get = lambda k: f[f.index(k) + 1] if k in f else "?"  # noqa: E731
        k = model.cfg.num_labels
        notes.append(f"Teacher pretraining, last validation: masked-prediction accuracy {get('acc_m')}, "
                     f"unmasked {get('acc_u')} (chance with {k} classes: {1 / max(1, k):.3f}).")
    elif (model_dir / "card.json").exists():   # a zoo teacher: its model card has the pretraining curve
        card = json.loads((model_dir / "card.json").read_text())
        k = model.cfg.num_labels
        for it, d in card.get("iterations", {}).items():
            notes.append(f"Teacher (zoo {card.get('name', model_dir.resolve().name)}, {it}), last validation: "
                         f"masked-prediction accuracy {d.get('valid_acc_m_last', '?')} "
                         f"(chance with {k} classes: {1 / max(1, k):.3f}).")
    if (Path(data) / "wav.scp").exists():
        with torch.no_grad():
            out = model(WavDataset(data)[0]["x"][None])
        stds = ", ".join(f"{h[0].std(0).mean().item():.2f}" for h in out.hidden_states)
        notes.append(f"Teacher hidden states (input, layers 1..{len(out.hidden_states) - 1}): mean std over time "
                     f"on one dev utterance = {stds}.")
    return notes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True)
    p.add_argument("--sizes", required=True, help="fine-tuning sizes, e.g. '100 10 2'")
    p.add_argument("--out", required=True)
    p.add_argument("--command", default="./run.sh")
    args = p.parse_args(argv)
    spec = load_yaml(args.spec)
    sizes = args.sizes.split()
    keep = {f"ft{s}" for s in sizes}
    notes = [f"Produced by `{args.command}` in egs/mini_espeak/hubert_kd."]
    spec["columns"] = [c for c in spec["columns"] if "decode" not in c or c["decode"].split("/")[0] in keep]
    spec["columns"] += [{"name": "params (k)", "file": "summary.json", "key": "params_k"},
                        {"name": "RTF x1000", "file": "summary.json", "key": "rtf_x1000"}]
    rows, partial = [], []
    for row in spec["rows"]:
        runs = sorted(glob.glob(row["exp"]))
        if not runs:
            notes.append(f"{row['name']}: not run (no {row['exp']})")
            continue
        scored = {s: [r for r in runs if (Path(r) / f"ft{s}" / "decode_test" / "score.json").exists()] for s in sizes}
        done = scored[sizes[0]]   # a row needs the first size; later sizes may be missing (empty cells)
        if not done:
            notes.append(f"{row['name']}: not finished (no run with the ft{sizes[0]} decode scored)")
            continue
        lacking = [f"ft{s}" for s in sizes[1:] if len(scored[s]) < len(done)]
        if lacking:
            notes.append(f"{row['name']}: not run (or not for every seed) at {', '.join(lacking)}: empty cells")
            partial.append(row["name"])
        if len(done) < len(runs):   # e.g. a stopped run: keep the finished seeds only (seed dirs seed<N>)
            notes.append(f"{row['name']}: unfinished run(s) left out: {', '.join(sorted(set(runs) - set(done)))}")
            row = dict(row, exp=row["exp"].replace("seed*", "seed[" + "".join(r[-1] for r in done) + "]"))
        rows.append(row)
        for r in done:
            summarise_run(Path(r), sizes)
    spec["rows"] = rows
    spec["claims"], dropped = fit_claims(spec.get("claims") or [], {r["name"] for r in rows},
                                         {c["name"] for c in spec["columns"]})
    notes += [f"Claim '{name}': not decided here ({why})." for name, why in dropped]
    notes += teacher_notes() if Path("exp/teacher").exists() else []
    spec["notes"] = list(spec.get("notes") or []) + notes + [
        "params (k): thousands of parameters of the SSL encoder (CTC head excluded). RTF x1000: milliseconds "
        "of single-thread CPU decoding per second of test audio (mean over the fine-tuned models of a run, "
        "measured on a shared, loaded machine: indicative only; Fbank rows read precomputed features, "
        "bench/frontend.py measures the speed ratio with Fbank extraction included)."]
    save_config(spec, args.out)
    # rows with empty cells: the results stage cannot be --strict (read by run.sh)
    atomic_write_text(Path(args.out).with_suffix(".partial"), "".join(f"{n}\n" for n in partial))
    return 0


if __name__ == "__main__":
    sys.exit(main())
