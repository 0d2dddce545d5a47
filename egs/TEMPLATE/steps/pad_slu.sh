#!/usr/bin/env bash
# Stages 2-5 of the real-corpus PAD recipes (egs/slurp/pad, egs/fsc/pad; stage 1, the corpus's data dirs,
# stays in each run.sh): import the speech SSL model (and, with --aligner true, fine-tune a character CTC
# aligner from it on the training transcripts and write each word's span to data/<set>/words.ctm with the
# project's forced aligner, steps/align_ctc.sh: the word spans PAD's word and sub-word units read; without
# it they come from letter counts), distil the text model into it with each method
# (steps/pad_distill.sh), train and score an intent classifier on each model (steps/intent_eval.sh), and
# write RESULTS.md. Run from the recipe dir; stage numbers are the recipe's.
#
#   steps/pad_slu.sh --stage 2 --stop_stage 5 --valid data/devel --speech_model /models/hubert-base-ls960 \
#       --text_model /models/bert-base-uncased --methods "cosine pad" --seeds "1 2"
set -euo pipefail
stage=2
stop_stage=100
valid=data/valid     # validation data dir (distillation and intent training)
speech_model=        # speech SSL checkpoint: HF dir or fairseq .pt (required for stage 2)
text_model=          # BERT-like HF encoder dir (required from stage 3)
methods="mse cosine infonce uniform pad pad_noprior pad_word"
seeds="1 2"
all_seed_methods="none pad"
per_intent=0         # 0: the whole training set labels the intent head; N > 0: N utterances per intent
conf_tag=default
aligner=true         # true: word spans from a char CTC forced alignment; false: from letter counts
aligner_conf=        # speechkd-finetune config of the aligner (default conf/aligner<sfx>.yaml)
nj=4                 # alignment jobs
cuda_cmd=utils/run.py
decode_cmd=utils/run.py
ngpu=1               # GPUs per training job (> 1: torchrun, one process per GPU)
nnodes=1             # nodes per training job (> 1: Slurm only)
help_message="Usage: $0 [--stage N] [--stop_stage N] [--valid DIR] --speech_model PATH --text_model DIR [--methods '...'] [--seeds '1 2']"
. utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -eq 0 ] || { echo "$help_message" >&2; exit 1; }

sfx=$(conf_suffix "$conf_tag")
train_lab=data/train
[ "$per_intent" -gt 0 ] && train_lab="data/train_sub${per_intent}_seedSEED"

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: import the speech SSL model -> exp/speech_ssl"
  [ -n "$speech_model" ] || { echo "$0: --speech_model is required" >&2; exit 1; }
  speechkd-import-checkpoint --src "$speech_model" --out exp/speech_ssl
  if [ "$aligner" = true ]; then
    : "${aligner_conf:=conf/aligner${sfx}.yaml}"
    log "stage 2: character CTC aligner from exp/speech_ssl on data/train ($aligner_conf) -> exp/aligner"
    # the inventory of every set aligned (a character only the validation set has must still be a unit)
    speechkd-make-tokens --kind char --text data/train/text --text "$valid/text" --out data/token_char
    mkdir -p exp/aligner
    $cuda_cmd --gpu "$ngpu" --nodes "$nnodes" exp/aligner/train.log \
      speechkd-finetune --config "$aligner_conf" --init exp/speech_ssl --train-data data/train \
        --valid-data "$valid" --token-dir data/token_char --exp exp/aligner
    ali=$(best_model exp/aligner)
    for d in data/train "$valid"; do
      log "stage 2: word spans of $d by forced alignment ($ali) -> $d/words.ctm"
      steps/align_ctc.sh --nj "$nj" --cmd "$decode_cmd" --text_file text --words true "$ali" "$d" \
        "exp/align_$(basename "$d")"
      cp "exp/align_$(basename "$d")/words.ctm" "$d/words.ctm"
    done
  fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: distillation from $text_model: $methods"
  [ -n "$text_model" ] || { echo "$0: --text_model is required" >&2; exit 1; }
  steps/pad_distill.sh --cmd "$cuda_cmd" --ngpu "$ngpu" --nnodes "$nnodes" --pad_conf conf/pad${sfx}.yaml --methods "$methods" --seeds "$seeds" \
    --all_seed_methods "$all_seed_methods" data/train "$valid" exp/speech_ssl "$text_model" exp/distill
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: intent classification on each model (labels: $train_lab), test accuracy"
  if [ "$per_intent" -gt 0 ]; then
    for seed in $seeds; do
      speechkd-train-intent subset --data data/train --out "${train_lab//SEED/$seed}" --per-intent "$per_intent" --seed "$seed"
    done
  fi
  cut -d' ' -f2 data/train/utt2intent | sort -u > data/intents
  steps/intent_eval.sh --cmd "$cuda_cmd" --ngpu "$ngpu" --nnodes "$nnodes" --decode_cmd "$decode_cmd" --intent_conf conf/intent${sfx}.yaml \
    --methods "none $methods" --seeds "$seeds" --all_seed_methods "$all_seed_methods" --train_data "$train_lab" \
    --intents data/intents "$valid" exp/speech_ssl exp/distill exp/intent "test"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: RESULTS${sfx}.md"
  speechkd-make-results --spec conf/results.yaml --out RESULTS${sfx}.md --strict
  log "done: $(pwd)/RESULTS${sfx}.md"
fi
