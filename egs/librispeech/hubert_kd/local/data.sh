#!/usr/bin/env bash
# LibriSpeech data prep for hubert_kd: train-clean-100 (distillation), dev/test-clean, Libri-Light 10h/1h/10min (fine-tuning).
#
# Usage (from the recipe folder):
#   local/data.sh --src /data/LibriSpeech --finetune_src /data/librispeech_finetuning
# Writes data/{train_clean_100,dev_clean,test_clean,test_other} (+ data/train_{10h,1h,10min} with --finetune_src),
# then checks each with utils/validate_data_dir.sh. The corpus layout read is documented in
# speechkd/corpus/librispeech.py (`python -m speechkd.bin.prepare_corpus librispeech --help` for all options).
set -euo pipefail

src=            # corpus folder on local disk (required)
out=data        # parent folder of the data dirs
utt2dur=false   # also write utt2dur (reads every audio header)
subsets=train-clean-100,dev-clean,test-clean,test-other
finetune_src=   # librispeech_finetuning folder (optional)
lowercase=false
help_message="Usage: $0 --src <LibriSpeech folder> [options]"
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
[ -n "$src" ] || { echo "$0: --src <LibriSpeech folder> is required" >&2; exit 1; }

steps/prepare_corpus.sh librispeech "$out" --src "$src" --utt2dur "$utt2dur" --subsets "$subsets" --finetune-src "$finetune_src" --lowercase "$lowercase"
