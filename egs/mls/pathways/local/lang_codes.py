#!/usr/bin/env python3
"""MLS language names (comma-separated, as --languages takes them) -> the codes the data dirs use.

    local/lang_codes.py german,french,pl      # -> de fr pl
"""
import sys

from speechkd.corpus.mls import LANG_CODES

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lang_codes.py NAME[,NAME...]")
    print(" ".join(LANG_CODES.get(x, x) for x in sys.argv[1].split(",")))
