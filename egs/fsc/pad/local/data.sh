#!/usr/bin/env bash
# Fluent Speech Commands data prep for pad: utt2intent = action_object_location.
#
# Usage (from the recipe folder):
#   local/data.sh --src /data/fluent_speech_commands_dataset
# Writes data/{train,valid,test},
# then checks each with utils/validate_data_dir.sh. The corpus layout read is documented in
# speechkd/corpus/fsc.py (`python -m speechkd.bin.prepare_corpus fsc --help` for all options).
set -euo pipefail

src=            # corpus folder on local disk (required)
out=data        # parent folder of the data dirs
utt2dur=false   # also write utt2dur (reads every audio header)
splits=train,valid,test
normalize=false # lower case, no punctuation
help_message="Usage: $0 --src <fluent_speech_commands_dataset folder> [options]"
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
[ -n "$src" ] || { echo "$0: --src <fluent_speech_commands_dataset folder> is required" >&2; exit 1; }

steps/prepare_corpus.sh fsc "$out" --src "$src" --utt2dur "$utt2dur" --splits "$splits" --normalize "$normalize"
