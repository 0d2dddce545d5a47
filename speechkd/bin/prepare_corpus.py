"""Prepare Kaldi data dirs from a real corpus on local disk (one sub-command per corpus).

Usage::

    # LibriSpeech subsets (+ the Libri-Light 10 h / 1 h / 10 min split) -> data/train_clean_100 ...
    speechkd-prepare-corpus librispeech --src /data/LibriSpeech --out data \\
        --subsets train-clean-100,dev-clean,test-clean --finetune-src /data/librispeech_finetuning

    # Common Voice (v7+): data/{train,dev,test}_{ky,sw}; --audio ffmpeg writes "ffmpeg ... |" pipes
    speechkd-prepare-corpus commonvoice --src /data/cv-corpus-15.0-2023-09-08 --out data --langs ky,sw

    # Multilingual LibriSpeech: data/{train,dev,test}_{de,pl} + train_{10min,1h,10h}_{de,pl}
    speechkd-prepare-corpus mls --src /data/mls --out data --languages german,polish

    # SLURP: data/{train,devel,test} with utt2intent (scenario_action)
    speechkd-prepare-corpus slurp --src /data/slurp --out data

    # Fluent Speech Commands: data/{train,valid,test} with utt2intent (action_object_location)
    speechkd-prepare-corpus fsc --src /data/fluent_speech_commands_dataset --out data

(``python -m speechkd.bin.prepare_corpus ...`` works the same.) Each output dir is written atomically,
sorted and validated; malformed metadata stops with one line ``file:line: problem``. Prints one line per
data dir: ``<dir>: <utterances> utts, <speakers> spks``.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main


def _bool(v: str) -> bool:
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{v}'")


def _list(v: str) -> list:
    return [x for x in v.replace(",", " ").split() if x]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="corpus", required=True, metavar="CORPUS")

    def add(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--src", required=True, help="corpus folder on local disk")
        s.add_argument("--out", default="data", help="parent folder of the data dirs (default: data)")
        s.add_argument("--check-audio", type=_bool, default=True, help="check every audio file exists")
        s.add_argument("--utt2dur", type=_bool, default=False, help="also write utt2dur (reads audio headers)")
        return s

    s = add("librispeech", "LibriSpeech (+ Libri-Light fine-tuning split)")
    s.add_argument("--subsets", type=_list, default=["train-clean-100", "dev-clean", "test-clean"])
    s.add_argument("--finetune-src", default="", help="librispeech_finetuning folder (optional)")
    s.add_argument("--lowercase", type=_bool, default=False)

    s = add("commonvoice", "Common Voice v7+ (tsv + clips/*.mp3)")
    s.add_argument("--langs", type=_list, default=[], help="language folders (default: all found)")
    s.add_argument("--splits", type=_list, default=["train", "dev", "test"])
    s.add_argument("--audio", choices=("path", "ffmpeg"), default="path")
    s.add_argument("--sample-rate", type=int, default=16000, help="ffmpeg pipe output rate")
    s.add_argument("--lower", type=_bool, default=True)
    s.add_argument("--strip-punct", type=_bool, default=True)

    s = add("mls", "Multilingual LibriSpeech")
    s.add_argument("--languages", type=_list, default=[], help="names or codes (default: all found)")
    s.add_argument("--splits", type=_list, default=["train", "dev", "test"])
    s.add_argument("--limited", type=_bool, default=True, help="also write train_{10min,1h,10h}_<lang>")

    s = add("slurp", "SLURP")
    s.add_argument("--splits", type=_list, default=["train", "devel", "test"])
    s.add_argument("--synthetic", type=_bool, default=False, help="also write train_synthetic")
    s.add_argument("--normalize", type=_bool, default=False, help="lower case, no punctuation")
    s.add_argument("--audio-dir", default="", help="folder holding slurp_real/ and slurp_synth/")

    s = add("fsc", "Fluent Speech Commands")
    s.add_argument("--splits", type=_list, default=["train", "valid", "test"])
    s.add_argument("--normalize", type=_bool, default=False, help="lower case, no punctuation")
    return p


def prepare_from_args(args) -> dict:
    """Dispatch parsed arguments to ``speechkd.corpus.<corpus>.prepare``; returns ``{name: DataDir}``."""
    common = dict(check_audio=args.check_audio, utt2dur=args.utt2dur)
    if args.corpus == "librispeech":
        from ..corpus.librispeech import prepare

        return prepare(args.src, args.out, subsets=args.subsets, finetune_src=args.finetune_src or None,
                       lowercase=args.lowercase, **common)
    if args.corpus == "commonvoice":
        from ..corpus.commonvoice import prepare

        return prepare(args.src, args.out, langs=args.langs or None, splits=args.splits, audio=args.audio,
                       sample_rate=args.sample_rate, lower=args.lower, strip_punct=args.strip_punct, **common)
    if args.corpus == "mls":
        from ..corpus.mls import prepare

        return prepare(args.src, args.out, languages=args.languages or None, splits=args.splits,
                       limited=args.limited, **common)
    if args.corpus == "slurp":
        from ..corpus.slurp import prepare

        return prepare(args.src, args.out, splits=args.splits, synthetic=args.synthetic,
                       normalize=args.normalize, audio_dir=args.audio_dir or None, **common)
    from ..corpus.fsc import prepare

    return prepare(args.src, args.out, splits=args.splits, normalize=args.normalize, **common)


def _main(argv=None) -> int:
    args = parse_args(get_parser(), argv, allow_overrides=False)
    for name, d in sorted(prepare_from_args(args).items()):
        utt2spk = d.read("utt2spk")
        print(f"{d.path}: {len(utt2spk)} utts, {len(set(utt2spk.values()))} spks")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
