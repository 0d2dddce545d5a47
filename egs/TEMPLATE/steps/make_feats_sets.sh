#!/usr/bin/env bash
# Features of several data dirs under one root (<data>/<set> -> <dump>/<set>, each by steps/make_feats.sh),
# with the global CMVN computed on one of them (the training set).
#
#   steps/make_feats_sets.sh [--nj 2] [--cmd utils/run.py] [--cmvn_set train] data dump/fbank train dev test
set -euo pipefail
nj=2
cmd=utils/run.py
cmvn_set=train
help_message="Usage: $0 [--nj N] [--cmd CMD] [--cmvn_set train] <data-root> <dump-root> <set> [<set> ...]"
. utils/parse_options.sh
[ $# -ge 3 ] || { echo "$help_message" >&2; exit 1; }
data=$1
dump=$2
shift 2
for s in "$@"; do
  steps/make_feats.sh --nj "$nj" --cmd "$cmd" --cmvn "$([ "$s" = "$cmvn_set" ] && echo true || echo false)" \
    "$data/$s" "$dump/$s"
done
