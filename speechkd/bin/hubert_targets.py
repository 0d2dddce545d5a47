"""Make HuBERT pretraining targets once into ark/scp: k-means of MFCC (iteration 1) or of a layer of a
trained model (iteration 2+).

Usage:

    # iteration 1: data dirs whose feats.scp holds 13-dim MFCC (steps/make_feats.sh --kind mfcc)
    speechkd-hubert-targets --kind mfcc --out exp/targets/iter1 --kmeans.n_clusters 100 \
        --set train=data/pool_mfcc/train --set dev=data/pool_mfcc/dev
    # iteration 2: layer 6 of the iteration-1 model over the data dirs it reads (Fbank feats.scp or wav.scp)
    speechkd-hubert-targets --kind model --model exp/iter1/model --layer 6 --out exp/targets/iter2 \
        --kmeans.n_clusters 200 --set train=data/pool/train --set dev=data/pool/dev

Writes ``<out>/kmeans.pt``, ``<out>/stats.json`` (inertia, cluster usage; phone purity, cluster purity and
PNMI against the data dir's ``phones.ctm`` where there is one) and ``<out>/<set>/labels.{ark,scp}``; then
``speechkd-pretrain --targets.train <out>/train/labels.scp --targets.valid <out>/dev/labels.scp
--targets.kmeans <out>/kmeans.pt``. The first ``--set`` is the one k-means is fitted on.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main

KMEANS_DEFAULTS = {"n_clusters": 100, "max_fit_frames": 100000, "max_iter": 30, "batch_size": None, "seed": 0}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=["mfcc", "model"], required=True, help="features to cluster")
    p.add_argument("--set", action="append", required=True, metavar="NAME=DATA_DIR",
                   help="a set to label (repeatable); k-means is fitted on the first")
    p.add_argument("--out", required=True, help="output dir")
    p.add_argument("--model", help="--kind model: SSL checkpoint dir")
    p.add_argument("--layer", type=int, help="--kind model: transformer layer (1-based; default: layer: in --config)")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="--kind model: audio per batch")
    p.add_argument("--precision", default="auto", help="--kind model: auto | fp32 | bf16")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--config", help="YAML with a kmeans: section")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    from ..train.hubert_targets import make_targets, mfcc_frames, model_layer_frames
    from ..utils.config import load_config
    from ..utils.errors import ConfigError

    cfg = load_config(args.config, args.overrides, defaults={"kmeans": KMEANS_DEFAULTS, "layer": None})
    layer = args.layer if args.layer is not None else cfg["layer"]
    sets = []
    for s in args.set:
        name, sep, path = s.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--set takes NAME=DATA_DIR, got '{s}'")
        sets.append((name, path))
    if args.kind == "model" and (not args.model or layer is None):
        raise ConfigError("--kind model needs --model and --layer (or layer: in --config)")
    feats, meta = {}, {"kind": args.kind}
    for name, path in sets:
        if args.kind == "mfcc":
            feats[name] = mfcc_frames(path)
        else:
            try:
                feats[name] = model_layer_frames(args.model, path, int(layer), args.batch_seconds, args.precision,
                                                 progress=not args.no_progress)
            except ValueError as e:
                raise ConfigError(str(e)) from None
    if args.kind == "model":
        meta.update(model=str(args.model), layer=int(layer))
    stats = make_targets(feats, cfg["kmeans"], args.out, fit_set=sets[0][0], phones_from=dict(sets), meta=meta)
    print(args.out)
    return 0 if stats else 1


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
