"""Write a tiny fake copy of a real corpus, in its published layout, for dry runs and tests.

Usage::

    speechkd-make-fake-corpus librispeech --out data/dryrun_src     # LibriSpeech/ + librispeech_finetuning/
    speechkd-make-fake-corpus commonvoice --out data/dryrun_src --langs ky,sw
    speechkd-make-fake-corpus mls --out data/dryrun_src --langs german,polish
    speechkd-make-fake-corpus slurp --out data/dryrun_src
    speechkd-make-fake-corpus fsc --out data/dryrun_src

Prints the folder(s) to pass as the recipe's --src (``name=path`` per line). The audio is short noise
(0.2-0.4 s), the transcripts a few words: the layout and the file formats are the real ones, so
``speechkd-prepare-corpus`` and every later stage run on it as on the real corpus.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main

CORPORA = ("librispeech", "commonvoice", "mls", "slurp", "fsc")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", choices=CORPORA)
    p.add_argument("--out", required=True, help="folder the fake corpus is written under")
    p.add_argument("--langs", default="", help="commonvoice: language codes; mls: language names (comma list)")
    p.add_argument("--n-utts", type=int, default=4, help="librispeech, mls: utterances per speaker/book")
    return p


def make_fake_corpus(corpus: str, out, langs=(), n_utts: int = 4) -> dict:
    """Write the fake ``corpus`` under ``out``; returns ``{name: folder}`` (``src``, and ``finetune_src`` for
    LibriSpeech's Libri-Light split)."""
    if corpus == "librispeech":
        from ..corpus.librispeech import make_fake_tree

        tree = make_fake_tree(out, subsets=("train-clean-100", "dev-clean", "test-clean", "test-other"),
                              n_utts=n_utts)
        return {"src": tree["librispeech"], "finetune_src": tree["finetune"]}
    if corpus == "commonvoice":
        from ..corpus.commonvoice import FAKE_SENTENCES, make_fake_tree

        langs = list(langs) or list(FAKE_SENTENCES)[:2]
        unknown = [lang for lang in langs if lang not in FAKE_SENTENCES]
        if unknown:
            from ..utils.errors import ConfigError

            raise ConfigError(f"no fake Common Voice sentences for {', '.join(unknown)} "
                              f"(known: {', '.join(FAKE_SENTENCES)})")
        return {"src": make_fake_tree(out, langs=langs)}
    if corpus == "mls":
        from ..corpus.mls import make_fake_tree

        return {"src": make_fake_tree(out, **({"languages": list(langs)} if langs else {}), n_utts=max(4, n_utts))}
    if corpus == "slurp":
        from ..corpus.slurp import make_fake_tree

        return {"src": make_fake_tree(out)}
    from ..corpus.fsc import make_fake_tree

    return {"src": make_fake_tree(out)}


def _main(argv) -> int:
    args = parse_args(get_parser(), argv, allow_overrides=False)
    langs = [x for x in args.langs.replace(",", " ").split() if x]
    for name, path in make_fake_corpus(args.corpus, args.out, langs, args.n_utts).items():
        print(f"{name}={path}")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
