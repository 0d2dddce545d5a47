#!/usr/bin/env bash
# PAD recipes: fine-tune an intent classifier on each (distilled) speech model and score test sets.
#
#   steps/intent_eval.sh --intent_conf conf/intent.yaml --methods "none cosine pad" --seeds "1 2" \
#       --all_seed_methods "none pad" --train_data data/train_sub3_seedSEED \
#       data/dev exp/teacher/model exp/distill exp/intent "test test_unseen_para"
#
# Method 'none' starts from <none-init> (no distillation), any other from <distill-dir>/<method>/seed<N>/model.
# SEED in --train_data is replaced by the seed (per-seed labelled subsets). Writes
# <out>/<method>/seed<N>/{model,train.log,decode_<set>/{hyp,ref,accuracy.json,score.json}}.
set -euo pipefail
cmd=utils/run.py
decode_cmd=utils/run.py   # unused (kept for a uniform interface)
intent_conf=conf/intent.yaml
methods="none pad"
seeds="1"
all_seed_methods="none pad"
train_data=data/train
intents=            # label list file (default: labels of the training + valid data)
extra=""
nj=1                # runs at the same time
help_message="Usage: $0 [options] <valid-data> <none-init> <distill-dir> <out-dir> '<test sets under data/>'"
. utils/parse_options.sh
[ $# -eq 5 ] || { echo "$help_message" >&2; exit 1; }
valid=$1; none_init=$2; distill=$3; out=$4; sets=$5

first=${seeds%% *}
pids=()
intent_opt=()
[ -n "$intents" ] && intent_opt=(--intents "$intents")
for m in $methods; do
  run_seeds=$first
  case " $all_seed_methods " in *" $m "*) run_seeds=$seeds ;; esac
  for seed in $run_seeds; do
    init=$distill/$m/seed$seed/model
    [ "$m" = none ] && init=$none_init
    dir=$out/$m/seed$seed
    echo "$(date '+%F %T') $0: intent head on '$m' (seed $seed) -> $dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    eval_dirs=()
    for t in $sets; do eval_dirs+=("data/$t"); done
    # one process trains and scores (decode_<set>/); 'speechkd-train-intent eval' re-scores alone
    $cmd --gpu 1 "$dir/train.log" \
      speechkd-train-intent train --config "$intent_conf" --train-data "${train_data//SEED/$seed}" \
        --valid-data "$valid" --init "$init" --exp "$dir" "${intent_opt[@]}" --train.seed "$seed" $extra \
        --eval-data "${eval_dirs[@]}" &
    pids+=($!)
    [ "${#pids[@]}" -lt "$nj" ] || { wait "${pids[0]}"; pids=("${pids[@]:1}"); }
  done
done
for p in "${pids[@]}"; do wait "$p"; done   # a failed run fails the script (set -e)
