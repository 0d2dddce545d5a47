#!/usr/bin/env bash
# SLURP data prep for pad: one utterance per recording, utt2intent = scenario_action.
#
# Usage (from the recipe folder):
#   local/data.sh --src /data/slurp
# Writes data/{train,devel,test} (+ data/train_synthetic with --synthetic true),
# then checks each with utils/validate_data_dir.sh. The corpus layout read is documented in
# speechkd/corpus/slurp.py (`python -m speechkd.bin.prepare_corpus slurp --help` for all options).
set -euo pipefail

src=            # corpus folder on local disk (required)
out=data        # parent folder of the data dirs
utt2dur=false   # also write utt2dur (reads every audio header)
splits=train,devel,test
synthetic=false
audio_dir=      # folder holding slurp_real/ (default: <src>/audio, <src> or its parent)
help_message="Usage: $0 --src <slurp checkout (dataset/slurp/*.jsonl)> [options]"
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
[ -n "$src" ] || { echo "$0: --src <slurp checkout (dataset/slurp/*.jsonl)> is required" >&2; exit 1; }

steps/prepare_corpus.sh slurp "$out" --src "$src" --utt2dur "$utt2dur" --splits "$splits" --synthetic "$synthetic" --audio-dir "$audio_dir"
