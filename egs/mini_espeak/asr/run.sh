#!/usr/bin/env bash
# mini_espeak ASR recipe (the foundation recipe): synthetic multilingual speech → Fbank → HuBERT
# iteration-1 teacher → multilingual phone CTC fine-tuning on a small labelled subset → decode → score →
# RESULTS.md. Compares fine-tuning from the pretrained teacher with training from scratch, over seeds.
#
#   ./run.sh                              # default config (about 2 h of synthetic audio; ~30 min on 2 cores)
#   ./run.sh --conf_tag smoke             # smoke config (~100 utterances, a few minutes)
#   ./run.sh --stage 5 --stop_stage 7     # re-run only some stages (each reads only earlier outputs)
#   cmd_backend=slurm ./run.sh            # send the stages to Slurm (conf/slurm.conf)
set -euo pipefail

stage=1            # first stage to run
stop_stage=100     # last stage to run
nj=2               # parallel jobs for synthesis, features and decoding
conf_tag=default   # default | smoke: picks conf/*.yaml or conf/*_smoke.yaml and the corpus size
seeds="1 2"        # fine-tuning seeds (the spread is reported in RESULTS.md)
n_label=40         # labelled utterances per language for fine-tuning
inits="teacher scratch"   # fine-tuning starts: from the pretrained teacher, from random weights
corpus_seed=1
help_message="Usage: $0 [--stage N] [--stop_stage N] [--conf_tag default|smoke] [--nj N] [--seeds '1 2']"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

sfx=$(conf_suffix "$conf_tag")
corpus_conf=../conf/corpus_${conf_tag}.yaml
corpus=data/corpus
langs=$(corpus_languages "$corpus_conf")

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: synthesise mini_espeak ($conf_tag) with espeak-ng"
  speechkd-synth-corpus --config "$corpus_conf" --out "$corpus" --nj "$nj" --seed "$corpus_seed"
  for s in train dev test; do ln -sfn corpus/data/$s data/$s; done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: phone inventory of the training set"
  speechkd-make-tokens --kind phone --text data/train/phones --out data/token_phone
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: 80-dim Fbank (ark/scp) + global CMVN"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" data dump/fbank train dev test
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: labelled subset: $n_label utterances per language"
  steps/make_labelled_subset.sh --n "$n_label" data/train data/train_sub "$langs"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: HuBERT iteration-1 teacher (MFCC k-means targets, masked prediction) on all train audio"
  mkdir -p exp/teacher
  ${cuda_cmd} --gpu 1 exp/teacher/train.log \
    speechkd-pretrain --config conf/pretrain${sfx}.yaml --train-data data/train --valid-data data/dev \
      --exp exp/teacher
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  for init in $inits; do
    for seed in $seeds; do
      dir=exp/ft_${init}/seed$seed
      log "stage 6: phone CTC fine-tuning ($init, seed $seed) → $dir"
      init_opt=(--model.freeze_frontend false)   # from scratch: the random front-end must learn too
      [ "$init" = teacher ] && init_opt=(--init exp/teacher/model)
      mkdir -p "$dir"
      ${cuda_cmd} --gpu 1 "$dir/train.log" \
        speechkd-finetune --config conf/finetune${sfx}.yaml "${init_opt[@]}" --train-data data/train_sub \
          --valid-data data/dev --token-dir data/token_phone --exp "$dir" --data.text_file phones \
          --train.seed "$seed"
    done
  done
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  for init in $inits; do
    for seed in $seeds; do
      dir=exp/ft_${init}/seed$seed
      log "stage 7: decode + score test ($dir)"
      steps/decode_score.sh --nj "$nj" --cmd "$decode_cmd" --ref_file phones --units phone \
        "$dir/model" data/test "$dir/decode_test"
    done
  done
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: RESULTS.md"
  speechkd-make-results --spec conf/results.yaml --out RESULTS${sfx}.md --strict
  
  log "done: $(pwd)/RESULTS${sfx}.md"
fi
