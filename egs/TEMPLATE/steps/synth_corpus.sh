#!/usr/bin/env bash
# Synthesise a mini_espeak corpus once and link its splits under a data root:
#   steps/synth_corpus.sh [--nj 2] [--seed 1] [--force false] [--splits train,dev,test] conf/corpus.yaml \
#       data/corpus data
#   -> data/corpus/{wav,data/<split>,corpus.yaml}, data/<split> -> corpus/data/<split>
# (--splits test: only the test split, the utterances a full build would make)
# The build is deterministic given config and seed, so an existing corpus.yaml means it is done
# (--force true rebuilds).
set -euo pipefail
nj=2
seed=1
force=false
splits=train,dev,test
help_message="Usage: $0 [--nj N] [--seed S] [--force true|false] [--splits train,dev,test] <corpus.yaml> <out-dir> <link-root>"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo "$help_message" >&2; exit 1; }
conf=$1; out=$2; root=$3
if [ "$force" = true ] || [ ! -f "$out/corpus.yaml" ]; then
  speechkd-synth-corpus --config "$conf" --out "$out" --nj "$nj" --seed "$seed" --splits "$splits"
else
  echo "$0: $out/corpus.yaml exists: corpus already made (--force true to rebuild)"
fi
mkdir -p "$root"
for d in "$out"/data/*/; do
  s=$(basename "$d")
  ln -sfn "$(realpath --relative-to="$root" "$out/data/$s")" "$root/$s"
done
