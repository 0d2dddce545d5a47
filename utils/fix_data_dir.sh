#!/usr/bin/env bash
# Fix a Kaldi data dir: sort every file, keep only utterances present in wav.scp, text (non-empty) and
# utt2spk (and segments/feats.scp when present), rebuild spk2utt. Old files go to <data-dir>/.backup/.
#
# Usage: utils/fix_data_dir.sh <data-dir>
#   e.g. utils/fix_data_dir.sh data/train
# Thin wrapper over speechkd-validate-data-dir --fix (speechkd/bin/validate_data_dir.py).
if [ $# -ne 1 ]; then
  echo "Usage: $0 <data-dir>" >&2
  exit 1
fi
if command -v speechkd-validate-data-dir >/dev/null 2>&1; then
  exec speechkd-validate-data-dir --fix "$1"
fi
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} exec python3 -m speechkd.bin.validate_data_dir --fix "$1"
