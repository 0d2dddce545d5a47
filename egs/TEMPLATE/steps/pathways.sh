#!/usr/bin/env bash
# The pathways method's stages over prepared data dirs (with utt2lang, feats.scp) and a tokenizer:
#   1 dense multilingual RNN-T   2 dense monolingual RNN-Ts    3 language-agnostic pruning (+ joint steps)
#   4 monolingual pruning (one mask per language)   5 pathways joint training (per seed; sparse exports)
#   6 streaming decode + score (WER/CER per language)   7 overlap heatmap + RESULTS<sfx>.md
#
#   steps/pathways.sh --conf conf --sfx "" --seeds "1 2" --token_dir data/token_char \
#       --cmvn dump/fbank/train/cmvn.npz --train data/train --dev data/dev --test data/test "en de es it"
#
# Configs read: <conf>/{train,prune,pathways}<sfx>.yaml, <conf>/results*.yaml. Writes exp/{dense_multi,
# dense_mono/<l>,agnostic/seed<s>,mono_sparse/<l>,pathways/seed<s>}, each with train/prune logs, and the
# decode dirs decode_test[_beam] (score.json, params.json) the results specs read.
# Independent runs (languages, seeds, decodes) go --nj at a time (each job uses one thread under run.py):
# stages 1+2 together, then 3+4, then 5, then 6.
set -euo pipefail
stage=1
stop_stage=100
conf=conf
sfx=""
seeds="1 2"
mask_seed=1
mono_steps_ratio=0.34
beam=4
piece_ms=320
train=data/train
dev=data/dev
test=data/test
token_dir=data/token_char
cmvn=dump/fbank/train/cmvn.npz
nj=2
threads=1       # torch threads per job (OMP_NUM_THREADS through the job runner)
cmd=utils/run.py
decode_cmd=utils/run.py
help_message="Usage: $0 [options] '<languages>'"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "$help_message" >&2; exit 1; }
langs=$1
common=(--train-data "$train" --valid-data "$dev" --data.cmvn "$cmvn")
log() { echo -e "$(date '+%F %T') (pathways.sh) $*"; }
# job pool: bg CMD... starts CMD when fewer than $nj run; join waits for all and fails if any failed
pids=()
bg() {
  while [ "$(jobs -rp | wc -l)" -ge "$nj" ]; do wait -n || true; done
  "$@" &
  pids+=($!)
}
join() {
  local p rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  pids=()
  [ "$rc" -eq 0 ] || { echo "$0: a job failed (see the logs above)" >&2; exit 1; }
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: dense multilingual transducer (language-homogeneous batches)"
  mkdir -p exp/dense_multi
  bg ${cmd} --gpu 1 --num-threads $threads exp/dense_multi/train.log \
    speechkd-train-transducer --config $conf/train$sfx.yaml "${common[@]}" --token-dir "$token_dir" \
      --exp exp/dense_multi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  steps_multi=$(utils/yaml_get.py "$conf/train$sfx.yaml" train.max_steps)
  mono_steps=$(awk -v n="$steps_multi" -v r="$mono_steps_ratio" 'BEGIN { m = int(n * r + 0.5); print (m < 1 ? 1 : m) }')
  for l in $langs; do
    log "stage 2: dense monolingual transducer ($l, $mono_steps steps)"
    mkdir -p exp/dense_mono/$l
    bg ${cmd} --gpu 1 --num-threads $threads exp/dense_mono/$l/train.log \
      speechkd-train-transducer --config $conf/train$sfx.yaml "${common[@]}" --token-dir "$token_dir" \
        --langs "$l" --exp exp/dense_mono/$l --train.max_steps "$mono_steps"
  done
fi
join

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for s in $seeds; do
    dir=exp/agnostic/seed$s
    log "stage 3: language-agnostic pruning (all languages, seed $s) → $dir"
    mkdir -p "$dir/joint"
    # pruning, then as many joint multilingual steps as the pathways stage with the agnostic mask fixed
    bg bash -c "${cmd} --gpu 1 --num-threads $threads $dir/prune.log speechkd-prune --config $conf/prune$sfx.yaml \
        --init exp/dense_multi/model ${common[*]} --exp $dir --train.seed $s && \
      ${cmd} --gpu 1 --num-threads $threads $dir/joint/train.log speechkd-train-transducer --config $conf/pathways$sfx.yaml \
        --mode masked --init $dir/model --masks $dir/masks.pt ${common[*]} --exp $dir/joint --train.seed $s"
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for l in $langs; do
    dir=exp/mono_sparse/$l
    log "stage 4: monolingual pruning of the dense multilingual model ($l) → $dir"
    mkdir -p "$dir"
    bg ${cmd} --gpu 1 --num-threads $threads "$dir/prune.log" \
      speechkd-prune --config $conf/prune$sfx.yaml --init exp/dense_multi/model "${common[@]}" --langs "$l" \
        --exp "$dir" --train.seed "$mask_seed"
  done
fi
join

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  masks=()
  for l in $langs; do masks+=(--masks "$l=exp/mono_sparse/$l/masks.pt"); done
  for s in $seeds; do
    dir=exp/pathways/seed$s
    log "stage 5: pathways joint training (seed $s) → $dir"
    mkdir -p "$dir"
    bg ${cmd} --gpu 1 --num-threads $threads "$dir/train.log" \
      speechkd-train-transducer --config $conf/pathways$sfx.yaml --mode pathways --init exp/dense_multi/model \
        "${masks[@]}" "${common[@]}" --exp "$dir" --train.seed "$s"
  done
  join
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  per_lang() { for l in $langs; do printf -- "--ckpt %s=%s " "$l" "$(printf "$1" "$l")"; done; }
  runs=("exp/dense_mono|$(per_lang exp/dense_mono/%s/model)" "exp/dense_multi|--ckpt exp/dense_multi/model"
        "exp/mono_sparse|$(per_lang exp/mono_sparse/%s/model)")            # run dir | checkpoint argument(s)
  for s in $seeds; do
    runs+=("exp/agnostic/seed$s|--ckpt exp/agnostic/seed$s/joint/model"
           "exp/pathways/seed$s|$(per_lang exp/pathways/seed$s/export/%s)")
  done
  for r in "${runs[@]}"; do
    dir=${r%%|*}
    read -r -a ckpt <<< "${r#*|}"
    searches=greedy
    # beam search for the key comparison (language-agnostic vs pathways) only: it is ~3x slower
    case "$dir" in exp/agnostic/*|exp/pathways/*) [ "$beam" -gt 0 ] && searches="greedy beam" ;; esac
    for search in $searches; do
      out=$dir/decode_$(basename "$test"); [ "$search" = beam ] && out=${out}_beam
      log "stage 6: streaming $search decode + score ($dir) → $out"
      mkdir -p "$out/log"
      bg bash -c "${decode_cmd} --num-threads $threads $out/log/decode.log speechkd-decode-transducer ${ckpt[*]} --data $test \
          --out $out --search $search --beam $beam --piece-ms $piece_ms --no-progress && \
        speechkd-score --data $test --decode $out --units word,char > $out/log/score.log"
    done
  done
  join
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "stage 7: mask overlap heatmap + RESULTS$sfx.md"
  s1=${seeds%% *}
  cp exp/pathways/seed$s1/overlap.png overlap$sfx.png
  {
    echo "Pairwise IoU of the kept weights of the language masks (from monolingual pruning of the dense"
    echo "multilingual model; the pathways of every seed use these masks). Heatmap: [overlap$sfx.png](overlap$sfx.png)"
    echo
    echo "![pathway overlap](overlap$sfx.png)"
    echo
    cat exp/pathways/seed$s1/overlap.md
  } > exp/overlap_section.md
  speechkd-make-results --spec $conf/results.yaml --out RESULTS$sfx.md --strict
  speechkd-make-results --spec $conf/results_cer.yaml --out RESULTS_cer$sfx.md --strict
  if [ "$beam" -gt 0 ]; then
    speechkd-make-results --spec $conf/results_beam.yaml --out RESULTS_beam$sfx.md --strict
  fi
  log "done: $(pwd)/RESULTS$sfx.md"
fi
