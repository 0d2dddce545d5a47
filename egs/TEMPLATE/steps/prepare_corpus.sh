#!/usr/bin/env bash
# Prepare a real corpus from a local path (speechkd-prepare-corpus), then validate every data dir it wrote.
#
#   steps/prepare_corpus.sh <corpus> <out-dir> [speechkd-prepare-corpus options ...]
#   steps/prepare_corpus.sh librispeech data --src /data/LibriSpeech --subsets train-clean-100,dev-clean
#
# The recipes' local/data.sh hold each corpus' options (with parse_options.sh) and call this.
set -euo pipefail
[ $# -ge 2 ] || { echo "Usage: $0 <corpus> <out-dir> [options]" >&2; exit 1; }
corpus=$1
out=$2
shift 2
if command -v speechkd-prepare-corpus >/dev/null 2>&1; then
  prep=(speechkd-prepare-corpus)
else
  prep=(python3 -m speechkd.bin.prepare_corpus)
fi
mkdir -p "$out"
"${prep[@]}" "$corpus" --out "$out" "$@" > "$out/.prepared_$corpus"
while read -r dir _; do
  utils/validate_data_dir.sh "${dir%:}"
done < "$out/.prepared_$corpus"
