#!/usr/bin/env bash
# Multilingual LibriSpeech data prep for pathways: one train/dev/test set per language (+ limited supervision).
#
# Usage (from the recipe folder):
#   local/data.sh --src /data/mls --languages german,french,spanish,polish
# Writes data/{train,dev,test}_<code> and data/train_{10min,1h,10h}_<code>,
# then checks each with utils/validate_data_dir.sh. The corpus layout read is documented in
# speechkd/corpus/mls.py (`python -m speechkd.bin.prepare_corpus mls --help` for all options).
set -euo pipefail

src=            # corpus folder on local disk (required)
out=data        # parent folder of the data dirs
utt2dur=false   # also write utt2dur (reads every audio header)
languages=      # comma-separated MLS names or codes (default: all found)
splits=train,dev,test
limited=true
help_message="Usage: $0 --src <folder of mls_<language> folders> [options]"
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
[ -n "$src" ] || { echo "$0: --src <folder of mls_<language> folders> is required" >&2; exit 1; }

steps/prepare_corpus.sh mls "$out" --src "$src" --utt2dur "$utt2dur" --languages "$languages" --splits "$splits" --limited "$limited"
