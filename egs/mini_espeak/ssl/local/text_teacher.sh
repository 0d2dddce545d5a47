#!/usr/bin/env bash
# Stage 10 of the zoo: the multilingual text teacher text_ml, trained on installed text that no mini recipe
# transcribes, its transcript-only baseline, both evaluated on held-out transcripts, and its model card.
#
#   local/text_teacher.sh [--conf_tag default] [--data data] [--exp exp] exp/zoo/text_ml
set -euo pipefail
conf_tag=default
data=data
exp=exp
help_message="Usage: $0 [--conf_tag TAG] [--data DIR] [--exp DIR] <out-dir>"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "$help_message" >&2; exit 1; }
out=$1
sfx=""; [ "$conf_tag" = default ] || sfx="_$conf_tag"
pool_opts=()
[ "$conf_tag" = default ] || pool_opts=(--langs en de --sources fortunes)   # smoke: seconds, not minutes

# the transcripts every mini recipe corpus speaks (planned, no audio): none of them may be in the pool
tr=$data/text_transcripts
excl=()
for conf in ../conf/corpus_default.yaml ../conf/corpus_smoke.yaml ../*/conf/corpus_default.yaml \
            ../*/conf/corpus_smoke.yaml; do
  name=$(basename "$(dirname "$(dirname "$(realpath "$conf")")")")_$(basename "$conf" .yaml)
  speechkd-make-text-pool --plan-corpus "$conf" --plan-seed 1 --plan-splits train dev test --out "$tr/$name" >/dev/null
  for s in train dev test; do excl+=(--exclude "$tr/$name/$s"); done
done
held=$tr/mini_espeak_corpus_${conf_tag}/test       # held-out text: the asr-style test transcripts
train_tr=$tr/mini_espeak_corpus_${conf_tag}/train

speechkd-make-text-pool --out "$data/text_pool" "${excl[@]}" "${pool_opts[@]}"
speechkd-train-text-model --config "conf/text_lm${sfx}.yaml" --lines "$data/text_pool/text" --out "$out"
speechkd-train-text-model --config "conf/text_lm${sfx}.yaml" --lines "$train_tr" --out "$exp/text_transcripts_only"
local/text_card.py --root . --pool "$data/text_pool" --train-transcripts "$train_tr" --held-out "$held" \
  --teacher "$out" --baseline "$exp/text_transcripts_only" --config "conf/text_lm${sfx}.yaml"
