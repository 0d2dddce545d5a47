"""Import a pretrained wav2vec 2.0 / HuBERT / XLSR checkpoint (Hugging Face directory or fairseq .pt)
into a speechkd checkpoint directory (config.yaml + model.pt).

Usage:
    speechkd-import-checkpoint --src /data/models/wav2vec2-xls-r-300m --out exp/teacher
    speechkd-import-checkpoint --src /data/models/hubert_base_ls960.pt --out exp/teacher --format fairseq
    speechkd-import-checkpoint --src /data/models/wav2vec2-base-960h --out exp/ctc --kind ctc

--format auto picks "hf" for a directory with config.json and "fairseq" for a file.
--kind auto keeps a CTC head when the source has one (HF *ForCTC, fairseq fine-tuned w2v_encoder).
A fairseq .pt is read without running code from it (weights-only load + argparse/omegaconf/numpy classes);
one that pickles anything else is refused, naming the global, unless --trust-checkpoint is given.
A fine-tuned fairseq checkpoint without w2v_args (fairseq's HuBERT fine-tuning) reads its pre-training
config from the file it records in cfg.model.w2v_path; --w2v-path gives that file when the recorded path
is from another machine:
    speechkd-import-checkpoint --src hubert_ft.pt --out exp/ctc --w2v-path /data/models/hubert_base_ls960.pt
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from speechkd.utils.cli import parse_args, run_main
from speechkd.utils.errors import ConfigError

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="HF model directory or fairseq .pt file")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--format", default="auto", choices=["auto", "hf", "fairseq"])
    p.add_argument("--kind", default="auto", choices=["auto", "ssl", "ctc"])
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow full unpickling of a fairseq .pt that needs more than the safe classes "
                        "(argparse.Namespace, omegaconf, numpy): it can run arbitrary code, so only for "
                        "files from a trusted source")
    p.add_argument("--w2v-path", default=None,
                   help="fairseq fine-tuned checkpoint without w2v_args: the pre-training checkpoint to read "
                        "its config from (default: the cfg.model.w2v_path recorded in the checkpoint)")
    return p


def import_checkpoint(src, out, fmt: str = "auto", kind: str = "auto", trust: bool = False, w2v_path=None):
    """Import ``src`` and save it as a speechkd checkpoint in ``out``; returns the model.

    ``trust``: fully unpickle a fairseq file that a weights-only load refuses (trusted files only).
    ``w2v_path``: pre-training checkpoint of a fairseq fine-tuned one without w2v_args."""
    from speechkd.models.checkpoint import save_checkpoint
    src = Path(src)
    if not src.exists():
        raise ConfigError(f"{src}: no such file or directory")
    if fmt == "auto":
        fmt = "hf" if src.is_dir() else "fairseq"
    if fmt == "hf":
        from speechkd.models.convert.import_huggingface import import_huggingface
        if w2v_path is not None:
            raise ConfigError(f"{src}: --w2v-path is for fairseq checkpoints only")
        model = import_huggingface(src, kind=kind)
    else:
        from speechkd.models.convert.import_fairseq import import_fairseq
        model = import_fairseq(src, kind=kind, trust=trust, w2v_path=w2v_path)
    config = {"model": model.model_config(), "source": {"path": str(src), "format": fmt}}
    save_checkpoint(out, model, config)
    n = sum(p.numel() for p in model.parameters())
    log.info("imported %s (%s, %.1fM params) -> %s", src, config["model"]["type"], n / 1e6, out)
    return model


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    import_checkpoint(args.src, args.out, args.format, args.kind, trust=args.trust_checkpoint,
                      w2v_path=args.w2v_path)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
