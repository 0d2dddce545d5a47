#!/usr/bin/env bash
# The pathways method's stages over prepared data dirs (with utt2lang, feats.scp) and a tokenizer, numbered
# as in the recipes that call it (egs/mini_espeak/pathways, egs/mls/pathways: stages 1-3 prepare the data):
#   4 dense multilingual RNN-T   5 dense monolingual RNN-Ts    6 language-agnostic pruning (+ joint steps)
#   7 monolingual pruning (one mask per language)   8 pathways joint training (per seed; sparse exports) and
#     the dense multilingual model trained on for as many updates as pruning + joint training add (equal budget)
#   9 streaming decode + score (WER/CER per language)   10 overlap heatmap + RESULTS<sfx>.md
#
#   steps/pathways.sh --stage 4 --stop_stage 10 --conf conf --sfx "" --seeds "1 2" --token_dir data/token_char \
#       --cmvn dump/fbank/train/cmvn.npz --train data/train --dev data/dev --test data/test "en de es it"
#
# Configs read: <conf>/{train,prune,pathways}<sfx>.yaml, <conf>/results*.yaml. Writes exp/{dense_multi,
# dense_mono/<l>,agnostic/seed<s>,mono_sparse/<l>,pathways/seed<s>,dense_equal/seed<s>}, each with train/prune logs, and the
# decode dirs decode_test[_beam] (score.json, params.json) the results specs read.
# Independent runs (languages, seeds, decodes) go --max_parallel at a time (each job uses one thread under
# run.py; lib.sh's run_pool): stages 4+5 together, then 6+7, then 8, then 9.
set -euo pipefail
stage=4
stop_stage=100
conf=conf
sfx=""
seeds="1 2"
mask_seed=1
mono_steps_ratio=1.0
beam=4
piece_ms=320
train=data/train
dev=data/dev
test=data/test
token_dir=data/token_char
cmvn=dump/fbank/train/cmvn.npz
max_parallel=2  # runs at once
nj=             # former name of --max_parallel (still accepted)
threads=1       # torch threads per job (OMP_NUM_THREADS through the job runner)
cmd=utils/run.py
decode_cmd=utils/run.py
ngpu=1          # GPUs per training job (> 1: torchrun, one process per GPU; see utils/run.py, utils/slurm.py)
nnodes=1        # nodes per training job (> 1: Slurm only)
train_opts=     # overrides appended to every speechkd-train-transducer call (space-separated, e.g. a dry run's
                # '--train.max_steps 2 ...'; they win over the budgets this script computes)
prune_opts=     # overrides appended to every speechkd-prune call
results_sfx=    # RESULTS<results_sfx>.md and overlap<results_sfx>.png (default: --sfx)
strict=true     # speechkd-make-results --strict (false: rows or columns may be missing, e.g. a dry run)
help_message="Usage: $0 [options] '<languages>'"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "$help_message" >&2; exit 1; }
langs=$1
common=(--train-data "$train" --valid-data "$dev" --data.cmvn "$cmvn")
[ -z "$nj" ] || max_parallel=$nj
read -r -a train_extra <<< "$train_opts"
read -r -a prune_extra <<< "$prune_opts"
[ -n "$results_sfx" ] || results_sfx=$sfx
strict_opt=(--strict); [ "$strict" = true ] || strict_opt=()
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

per_lang_ckpts() {   # per_lang_ckpts PATTERN: ckpt+=(--ckpt L=PATTERN(L)) for every language (one %s)
  local l
  for l in $langs; do ckpt+=(--ckpt "$l=$(printf "$1" "$l")"); done
}

# one independent run of a stage; run_pool FN SPEC: "multi" | "mono L" | "agnostic SEED" | "mono_prune L" |
# "pathways SEED" | "decode RUN_DIR greedy|beam"
job() {
  local kind=$1 dir
  case $kind in
    multi)
      mkdir -p exp/dense_multi
      ${cmd} --gpu "$ngpu" --nodes "$nnodes" --num-threads "$threads" exp/dense_multi/train.log \
        speechkd-train-transducer --config "$conf/train$sfx.yaml" "${common[@]}" --token-dir "$token_dir" \
          --exp exp/dense_multi "${train_extra[@]}" ;;
    mono)
      dir=exp/dense_mono/$2
      mkdir -p "$dir"
      ${cmd} --gpu "$ngpu" --nodes "$nnodes" --num-threads "$threads" "$dir/train.log" \
        speechkd-train-transducer --config "$conf/train$sfx.yaml" "${common[@]}" --token-dir "$token_dir" \
          --langs "$2" --exp "$dir" --train.max_steps "$mono_steps" "${train_extra[@]}" ;;
    agnostic)   # pruning, then as many joint multilingual steps as the pathways stage with the agnostic mask fixed
      dir=exp/agnostic/seed$2
      mkdir -p "$dir/joint"
      ${cmd} --gpu "$ngpu" --nodes "$nnodes" --num-threads "$threads" "$dir/prune.log" \
        speechkd-prune --config "$conf/prune$sfx.yaml" --init exp/dense_multi/model "${common[@]}" --exp "$dir" \
          --train.seed "$2" "${prune_extra[@]}" || return 1
      ${cmd} --gpu "$ngpu" --nodes "$nnodes" --num-threads "$threads" "$dir/joint/train.log" \
        speechkd-train-transducer --config "$conf/pathways$sfx.yaml" --mode masked --init "$dir/model" \
          --masks "$dir/masks.pt" "${common[@]}" --exp "$dir/joint" --train.seed "$2" "${train_extra[@]}" ;;
    mono_prune)
      dir=exp/mono_sparse/$2
      mkdir -p "$dir"
      ${cmd} --gpu "$ngpu" --nodes "$nnodes" --num-threads "$threads" "$dir/prune.log" \
        speechkd-prune --config "$conf/prune$sfx.yaml" --init exp/dense_multi/model "${common[@]}" --langs "$2" \
          --exp "$dir" --train.seed "$mask_seed" "${prune_extra[@]}" ;;
    pathways)
      local masks=() l
      for l in $langs; do masks+=(--masks "$l=exp/mono_sparse/$l/masks.pt"); done
      dir=exp/pathways/seed$2
      mkdir -p "$dir"
      ${cmd} --gpu "$ngpu" --nodes "$nnodes" --num-threads "$threads" "$dir/train.log" \
        speechkd-train-transducer --config "$conf/pathways$sfx.yaml" --mode pathways --init exp/dense_multi/model \
          "${masks[@]}" "${common[@]}" --exp "$dir" --train.seed "$2" "${train_extra[@]}" ;;
    dense_equal)   # the dense multilingual model, trained on with the joint stage's optimiser for the
                   # updates pruning (rounds x round_steps) and joint training add: pathways' budget, no mask
      dir=exp/dense_equal/seed$2
      mkdir -p "$dir"
      ${cmd} --gpu "$ngpu" --nodes "$nnodes" --num-threads "$threads" "$dir/train.log" \
        speechkd-train-transducer --config "$conf/pathways$sfx.yaml" --mode dense --init exp/dense_multi/model \
          "${common[@]}" --exp "$dir" --train.seed "$2" --train.max_steps "$extra_steps" "${train_extra[@]}" ;;
    decode)
      local run=$2 search=$3 ckpt=() out
      case $run in
        exp/dense_mono|exp/mono_sparse) per_lang_ckpts "$run/%s/model" ;;
        exp/dense_multi) ckpt=(--ckpt exp/dense_multi/model) ;;
        exp/agnostic/*) ckpt=(--ckpt "$run/joint/model") ;;
        exp/dense_equal/*) ckpt=(--ckpt "$run/model") ;;
        exp/pathways/*) per_lang_ckpts "$run/export/%s" ;;
        *) echo "$0: no checkpoints known for $run" >&2; return 1 ;;
      esac
      out=$run/decode_$(basename "$test"); [ "$search" = beam ] && out=${out}_beam
      log "stage 9: streaming $search decode + score ($run) → $out"
      mkdir -p "$out/log"
      ${decode_cmd} --num-threads "$threads" "$out/log/decode.log" \
        speechkd-decode-transducer "${ckpt[@]}" --data "$test" --out "$out" --search "$search" --beam "$beam" \
          --piece-ms "$piece_ms" --no-progress || return 1
      speechkd-score --data "$test" --decode "$out" --units word,char > "$out/log/score.log" ;;
    *) echo "$0: unknown job '$kind'" >&2; return 1 ;;
  esac
}

specs=()
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: dense multilingual transducer (language-homogeneous batches)"
  specs+=(multi)
fi
if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  steps_multi=$(utils/yaml_get.py "$conf/train$sfx.yaml" train.max_steps)
  mono_steps=$(awk -v n="$steps_multi" -v r="$mono_steps_ratio" 'BEGIN { m = int(n * r + 0.5); print (m < 1 ? 1 : m) }')
  log "stage 5: dense monolingual transducers ($langs; $mono_steps steps each)"
  for l in $langs; do specs+=("mono $l"); done
fi
run_pool "$max_parallel" job "${specs[@]}"

specs=()
if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "stage 6: language-agnostic pruning (all languages, seeds $seeds) → exp/agnostic/seed<s>"
  for s in $seeds; do specs+=("agnostic $s"); done
fi
if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "stage 7: monolingual pruning of the dense multilingual model ($langs) → exp/mono_sparse/<l>"
  for l in $langs; do specs+=("mono_prune $l"); done
fi
run_pool "$max_parallel" job "${specs[@]}"

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  extra_steps=$(( $(utils/yaml_get.py "$conf/prune$sfx.yaml" prune.rounds) * $(utils/yaml_get.py "$conf/prune$sfx.yaml" prune.round_steps) \
    + $(utils/yaml_get.py "$conf/pathways$sfx.yaml" train.max_steps) ))
  log "stage 8: pathways joint training (seeds $seeds) → exp/pathways/seed<s>; dense multilingual + $extra_steps updates (equal budget) → exp/dense_equal/seed<s>"
  specs=()
  for s in $seeds; do specs+=("pathways $s" "dense_equal $s"); done
  run_pool "$max_parallel" job "${specs[@]}"
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  runs=(exp/dense_mono exp/dense_multi exp/mono_sparse)
  for s in $seeds; do runs+=(exp/agnostic/seed$s exp/pathways/seed$s exp/dense_equal/seed$s); done
  specs=()
  for r in "${runs[@]}"; do
    specs+=("decode $r greedy")
    # beam search for the key comparison (language-agnostic vs pathways) only: it is ~3x slower
    case "$r" in exp/agnostic/*|exp/pathways/*) [ "$beam" -le 0 ] || specs+=("decode $r beam") ;; esac
  done
  run_pool "$max_parallel" job "${specs[@]}"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  log "stage 10: mask overlap heatmap + RESULTS$results_sfx.md"
  s1=${seeds%% *}
  cp exp/pathways/seed$s1/overlap.png overlap$results_sfx.png
  {
    echo "Pairwise IoU of the kept weights of the language masks (from monolingual pruning of the dense"
    echo "multilingual model; the pathways of every seed use these masks). Heatmap: [overlap$results_sfx.png](overlap$results_sfx.png)"
    echo
    echo "![pathway overlap](overlap$results_sfx.png)"
    echo
    cat exp/pathways/seed$s1/overlap.md
  } > exp/overlap_section.md
  speechkd-make-results --spec "$conf/results.yaml" --out "RESULTS$results_sfx.md" "${strict_opt[@]}"
  speechkd-make-results --spec "$conf/results_cer.yaml" --out "RESULTS_cer$results_sfx.md" "${strict_opt[@]}"
  if [ "$beam" -gt 0 ]; then
    speechkd-make-results --spec "$conf/results_beam.yaml" --out "RESULTS_beam$results_sfx.md" "${strict_opt[@]}"
  fi
  log "done: $(pwd)/RESULTS$results_sfx.md"
fi
