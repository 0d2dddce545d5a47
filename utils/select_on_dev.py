#!/usr/bin/env python3
"""Per seed, pick the candidate run with the lowest dev error and link <out>/seedN to it
(speechkd.asr.selection.select_on_dev): a results row over <out>/seed* then reports the test decodes
of the hyper-parameter chosen on dev.

    utils/select_on_dev.py --out exp/lam_dev --langs "de ru pl" --unit char 0.25=exp/lam0.25 0.5=exp/lam0.5
"""
import argparse
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidates", nargs="+", help="NAME=RUN_ROOT (a dir with seed* dirs)")
    p.add_argument("--out", required=True, help="dir for the seed links and selection.json")
    p.add_argument("--decode", default="decode_dev", help="decode dir of the dev set under each seed[/lang]")
    p.add_argument("--langs", default="", help="languages (sub-dirs of each seed dir); empty: none")
    p.add_argument("--unit", default="char")
    args = p.parse_args(argv)
    from speechkd.asr.selection import select_on_dev
    from speechkd.utils.errors import ConfigError

    cands = {}
    for c in args.candidates:
        name, sep, root = c.partition("=")
        if not sep or not name or not root:
            sys.exit(f"select_on_dev.py: candidate '{c}' is not NAME=RUN_ROOT")
        cands[name] = root
    try:
        res = select_on_dev(cands, args.out, args.decode, args.langs.split(), args.unit)
    except ConfigError as e:
        sys.exit(f"select_on_dev.py: {e}")
    for seed, r in res.items():
        print(f"{seed}: {r['chosen']} (dev {args.unit} error: "
              + ", ".join(f"{n} {e:.2f}" for n, e in r["dev"].items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
