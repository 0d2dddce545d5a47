#!/usr/bin/env bash
# Extract features of a data dir in parallel jobs, merge into <data>/feats.scp, optionally global CMVN.
#
#   steps/make_feats.sh [--nj 2] [--cmd utils/run.py] [--kind fbank] [--cmvn true] [--config conf/fbank.yaml] \
#       data/train dump/fbank/train
#
# Writes <dump>/feats.<job>.{ark,scp}, <data>/feats.scp + utt2num_frames (sorted) and, with --cmvn true,
# <dump>/cmvn.npz. Job logs: <dump>/log/feats.<job>.log. Re-running redoes the extraction.
set -euo pipefail
nj=2
cmd=utils/run.py
kind=fbank
cmvn=true
config=
help_message="Usage: $0 [options] <data-dir> <dump-dir>"
. utils/parse_options.sh
[ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
data=$1
dump=$2

utils/validate_data_dir.sh "$data"
mkdir -p "$dump/log" "$dump/split$nj"
n_spk=$(wc -l < "$data/spk2utt")
[ "$nj" -le "$n_spk" ] || nj=$n_spk
utils/split_scp.py --utt2spk "$data/utt2spk" --keys-only --nj "$nj" "$data/utt2spk" "$dump/split$nj"
opts=()
[ -n "$config" ] && opts+=(--config "$config")
$cmd JOB=1:"$nj" "$dump/log/feats.JOB.log" \
  speechkd-compute-fbank --data "$data" --out "$dump" --kind "$kind" --job JOB \
    --utt-list "$dump/split$nj/JOB" --no-progress "${opts[@]}"
speechkd-compute-fbank --merge --data "$data" --out "$dump"
if [ "$cmvn" = true ]; then
  speechkd-compute-cmvn --feats "$data/feats.scp" --out "$dump/cmvn.npz" --no-progress
fi
echo "$0: $(wc -l < "$data/feats.scp") utterances of $kind features in $data/feats.scp"
