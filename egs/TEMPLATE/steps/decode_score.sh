#!/usr/bin/env bash
# Decode a data dir with a CTC checkpoint in parallel jobs, merge, and score.
#
#   steps/decode_score.sh [--nj 2] [--cmd utils/run.py] [--beam 1] [--ref_file phones] [--units phone] \
#       exp/ft/model data/test exp/ft/decode_test
#
# Writes <out>/text (hypotheses), <out>/result.txt and <out>/score.json (ESPnet-style tables, per language
# when the data dir has utt2lang). Job logs: <out>/log/decode.<job>.log.
set -euo pipefail
nj=2
cmd=utils/run.py
beam=1
ref_file=text
units=
help_message="Usage: $0 [options] <ckpt-dir> <data-dir> <decode-dir>"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo "$help_message" >&2; exit 1; }
ckpt=$1
data=$2
out=$3

mkdir -p "$out/log"
n_utt=$(wc -l < "$data/utt2spk")
[ "$nj" -le "$n_utt" ] || nj=$n_utt
$cmd JOB=1:"$nj" "$out/log/decode.JOB.log" \
  speechkd-decode --ckpt "$ckpt" --data "$data" --out "$out" --beam "$beam" --nj "$nj" --job JOB --no-progress
[ "$nj" -eq 1 ] || speechkd-decode --ckpt "$ckpt" --data "$data" --out "$out" --nj "$nj" --merge   # nj=1 writes text directly
score_opts=(--data "$data" --decode "$out" --ref-file "$ref_file")
[ -n "$units" ] && score_opts+=(--units "$units")
speechkd-score "${score_opts[@]}" > "$out/log/score.log"
grep -E "^\|" "$out/result.txt" | head -n 12 || true
