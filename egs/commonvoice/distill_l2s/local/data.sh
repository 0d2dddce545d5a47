#!/usr/bin/env bash
# Common Voice data prep (distill_l2s and distilxlsr share it): per-language CTC fine-tuning/evaluation sets
# with normalised text.
#
# Usage (from the recipe folder):
#   local/data.sh --src /data/cv-corpus-15.0-2023-09-08 --langs es,fr,it,ky,nl,ru,sv,tr,tt,zh-CN
# Writes data/{train,dev,test}_<lang>,
# then checks each with utils/validate_data_dir.sh. The corpus layout read is documented in
# speechkd/corpus/commonvoice.py (`python -m speechkd.bin.prepare_corpus commonvoice --help` for all options).
set -euo pipefail

src=            # corpus folder on local disk (required)
out=data        # parent folder of the data dirs
utt2dur=false   # also write utt2dur (reads every audio header)
langs=          # comma-separated language folders (default: all found)
splits=train,dev,test
audio=path      # path (soundfile decodes mp3) or ffmpeg (pipe to 16 kHz wav)
help_message="Usage: $0 --src <cv-corpus-* folder> [options]"
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
[ -n "$src" ] || { echo "$0: --src <cv-corpus-* folder> is required" >&2; exit 1; }

steps/prepare_corpus.sh commonvoice "$out" --src "$src" --utt2dur "$utt2dur" --langs "$langs" --splits "$splits" --audio "$audio"
