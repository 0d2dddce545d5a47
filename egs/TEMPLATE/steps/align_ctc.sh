#!/usr/bin/env bash
# CTC forced alignment of a data dir's transcripts in parallel jobs, merged into one CTM; optionally the
# boundary accuracy against a reference CTM (e.g. mini_espeak's exact phones.ctm from espeak-ng).
#
#   steps/align_ctc.sh [--nj 2] [--cmd utils/run.py] [--text_file phones] [--mode start] \
#       [--ref_ctm data/train_en/phones.ctm] [--tolerance_ms 20] [--words false] \
#       exp/aligner/model data/train_en exp/align_train_en
#
# Writes <out>/phones.ctm and, with --ref_ctm, <out>/accuracy.json (median |error| ms, % within the
# tolerance, ...) and <out>/accuracy.md (the same as a markdown table). Job logs: <out>/log/align.<job>.log.
# --words true (a character CTC model, --text_file text): also <out>/words.ctm, the word spans.
set -euo pipefail
nj=2
cmd=utils/run.py
text_file=phones
mode=start
ref_ctm=
tolerance_ms=20
words=false
help_message="Usage: $0 [options] <ckpt-dir> <data-dir> <align-dir>"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo "$help_message" >&2; exit 1; }
ckpt=$1
data=$2
out=$3

mkdir -p "$out/log"
n_utt=$(wc -l < "$data/utt2spk")
[ "$nj" -le "$n_utt" ] || nj=$n_utt
$cmd JOB=1:"$nj" "$out/log/align.JOB.log" \
  speechkd-align --ckpt "$ckpt" --data "$data" --out "$out" --text-file "$text_file" --mode "$mode" \
    --nj "$nj" --job JOB --no-progress
acc_opts=()
[ -n "$ref_ctm" ] && acc_opts=(--ref-ctm "$ref_ctm" --tolerance-ms "$tolerance_ms")
[ "$words" = true ] && acc_opts+=(--words --text-file "$text_file")
speechkd-align --data "$data" --out "$out" --nj "$nj" --merge "${acc_opts[@]}"
[ -z "$ref_ctm" ] || cat "$out/accuracy.md"
