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
ngpu=1          # GPUs per training job (> 1: torchrun, one process per GPU; see utils/run.py, utils/slurm.py)
nnodes=1        # nodes per training job (> 1: Slurm only)
decode_cmd=utils/run.py   # unused (kept for a uniform interface)
intent_conf=conf/intent.yaml
methods="none pad"
seeds="1"
all_seed_methods="none pad"
train_data=data/train
intents=            # label list file (default: labels of the training + valid data)
extra=""
max_parallel=1      # runs at the same time
nj=                 # former name of --max_parallel (still accepted)
help_message="Usage: $0 [options] <valid-data> <none-init> <distill-dir> <out-dir> '<test sets under data/>'"
. utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -z "$nj" ] || max_parallel=$nj
[ $# -eq 5 ] || { echo "$help_message" >&2; exit 1; }
valid=$1; none_init=$2; distill=$3; out=$4; sets=$5

intent_opt=()
[ -n "$intents" ] && intent_opt=(--intents "$intents")
eval_dirs=()
for t in $sets; do eval_dirs+=("data/$t"); done

intent_one() {   # intent_one METHOD SEED -> $out/METHOD/seedSEED
  local m=$1 seed=$2 dir=$out/$1/seed$2 init=$distill/$1/seed$2/model
  [ "$m" = none ] && init=$none_init
  log "intent head on '$m' (seed $seed) -> $dir"
  mkdir -p "$dir"
  # one process trains and scores (decode_<set>/); 'speechkd-train-intent eval' re-scores alone
  # shellcheck disable=SC2086
  $cmd --gpu "$ngpu" --nodes "$nnodes" "$dir/train.log" \
    speechkd-train-intent train --config "$intent_conf" --train-data "${train_data//SEED/$seed}" \
      --valid-data "$valid" --init "$init" --exp "$dir" "${intent_opt[@]}" --train.seed "$seed" $extra \
      --eval-data "${eval_dirs[@]}"
}

first=${seeds%% *}
specs=()
for m in $methods; do
  run_seeds=$first
  case " $all_seed_methods " in *" $m "*) run_seeds=$seeds ;; esac
  for seed in $run_seeds; do specs+=("$m $seed"); done
done
run_pool "$max_parallel" intent_one "${specs[@]}"   # fails naming the failed runs
