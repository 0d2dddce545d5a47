#!/usr/bin/env bash
# PAD recipes: distil a frozen text model into a speech SSL checkpoint with each method (PAD, its
# ablations and the metric-based baselines: overrides of one PAD config) and seed.
#
#   steps/pad_distill.sh --pad_conf conf/pad.yaml --methods "mse cosine pad" --seeds "1 2" \
#       --all_seed_methods "pad" --extra "--units.ctm_fallback chars" \
#       data/train data/dev exp/teacher/model exp/text_lm exp/distill
#
# Writes <dir>/<method>/seed<N>/{model,train.log,...}; methods in --all_seed_methods run every seed, the
# others the first one. Method table (overrides of the config, which is PAD itself):
#   mse | cosine | infonce   utterance-level alignment with that metric, no adaptive weighting
#   uniform                  every granularity, fixed equal weights, uniform unit weights (no prior)
#   pad                      the config as is (granularities, priors, uncertainty weighting)
#   pad_noprior              PAD with uniform unit weights
#   pad_word | pad_utterance PAD on one granularity only
#   pad_infonce              PAD with the contrastive metric (in-batch negatives at every granularity)
#   uniform_infonce | pad_infonce_noprior | pad_infonce_word   the same baselines/ablations with InfoNCE
#   cosine_raw | pad_raw     cosine / PAD on the raw text targets (pad.target_norm none: the first mini
#                            table's setting, where every cosine/MSE row collapsed onto one output)
set -euo pipefail
cmd=utils/run.py
ngpu=1          # GPUs per training job (> 1: torchrun, one process per GPU; see utils/run.py, utils/slurm.py)
nnodes=1        # nodes per training job (> 1: Slurm only)
pad_conf=conf/pad.yaml
methods="mse cosine infonce uniform pad pad_noprior pad_word"
seeds="1"
all_seed_methods="pad"
extra=""            # more overrides for every run (e.g. --units.ctm_fallback chars)
max_parallel=1      # runs at the same time
nj=                 # former name of --max_parallel (still accepted)
help_message="Usage: $0 [options] <train-data> <valid-data> <speech-init> <text-model> <out-dir>"
. utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -z "$nj" ] || max_parallel=$nj
[ $# -eq 5 ] || { echo "$help_message" >&2; exit 1; }
train=$1; valid=$2; init=$3; text_model=$4; out=$5

declare -A opts=(
  [mse]="--pad.granularities utterance --pad.metric mse --pad.combine fixed"
  [cosine]="--pad.granularities utterance --pad.metric cosine --pad.combine fixed"
  [infonce]="--pad.granularities utterance --pad.metric infonce --pad.combine fixed"
  [uniform]="--pad.combine fixed --prior.word uniform --prior.subword uniform --prior.phone uniform"
  [pad]=""
  [pad_noprior]="--prior.word uniform --prior.subword uniform --prior.phone uniform"
  [pad_word]="--pad.granularities word"
  [pad_utterance]="--pad.granularities utterance"
  [pad_infonce]="--pad.metric infonce"
  [uniform_infonce]="--pad.metric infonce --pad.combine fixed --prior.word uniform --prior.subword uniform --prior.phone uniform"
  [pad_infonce_noprior]="--pad.metric infonce --prior.word uniform --prior.subword uniform --prior.phone uniform"
  [pad_infonce_word]="--pad.metric infonce --pad.granularities word"
  [cosine_raw]="--pad.granularities utterance --pad.metric cosine --pad.combine fixed --pad.target_norm none"
  [pad_raw]="--pad.target_norm none"
)
distil_one() {   # distil_one METHOD SEED -> $out/METHOD/seedSEED
  local m=$1 seed=$2 dir=$out/$1/seed$2
  log "distillation '$m' (seed $seed) -> $dir"
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  $cmd --gpu "$ngpu" --nodes "$nnodes" "$dir/train.log" \
    speechkd-pad-distill --config "$pad_conf" --train-data "$train" --valid-data "$valid" --init "$init" \
      --text-model "$text_model" --exp "$dir" --train.seed "$seed" ${opts[$m]} $extra
}

first=${seeds%% *}
specs=()
for m in $methods; do
  [ -n "${opts[$m]+x}" ] || { echo "$0: unknown method '$m' (${!opts[*]})" >&2; exit 1; }
  run_seeds=$first
  case " $all_seed_methods " in *" $m "*) run_seeds=$seeds ;; esac
  for seed in $run_seeds; do specs+=("$m $seed"); done
done
run_pool "$max_parallel" distil_one "${specs[@]}"   # fails naming the failed runs
