#!/usr/bin/env bash
# Validate a Kaldi data dir (sorted files, keys agree, spk2utt matches utt2spk).
#
# Usage: utils/validate_data_dir.sh [--need feats.scp] [--no-check-sorted] [--allow-empty-text] <data-dir>
#   e.g. utils/validate_data_dir.sh --need feats.scp data/train
# Thin wrapper over speechkd-validate-data-dir (speechkd/bin/validate_data_dir.py); Kaldi's --no-feats,
# --no-wav and --no-spk-sort are accepted and ignored.
if command -v speechkd-validate-data-dir >/dev/null 2>&1; then
  exec speechkd-validate-data-dir "$@"
fi
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} exec python3 -m speechkd.bin.validate_data_dir "$@"
