#!/usr/bin/env bash
# LibriSpeech data prep for distilxlsr: English speech to distil with (phone-aligned and shuffled later).
#
# Usage (from the recipe folder):
#   local/data.sh --src /data/LibriSpeech --subsets train-clean-100,dev-clean
# Writes data/{train_clean_100,dev_clean},
# then checks each with utils/validate_data_dir.sh. The corpus layout read is documented in
# speechkd/corpus/librispeech.py (`python -m speechkd.bin.prepare_corpus librispeech --help` for all options).
set -euo pipefail

src=            # corpus folder on local disk (required)
out=data        # parent folder of the data dirs
utt2dur=false   # also write utt2dur (reads every audio header)
subsets=train-clean-100,dev-clean
lowercase=true
help_message="Usage: $0 --src <LibriSpeech folder> [options]"
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
[ -n "$src" ] || { echo "$0: --src <LibriSpeech folder> is required" >&2; exit 1; }

steps/prepare_corpus.sh librispeech "$out" --src "$src" --utt2dur "$utt2dur" --subsets "$subsets" --lowercase "$lowercase"
