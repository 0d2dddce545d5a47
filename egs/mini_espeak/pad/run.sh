#!/usr/bin/env bash
# PAD recipe on the mini SLU corpus: prior-informed adaptive distillation from a text model into a speech
# SSL model (arXiv 2303.03600), compared with metric-based baselines, evaluated by intent accuracy after
# fine-tuning an intent head on a few labelled utterances per intent; test speakers (and some test
# paraphrases) unseen.
#
#   ./run.sh                              # default config (~20 min on 2 idle cores)
#   ./run.sh --conf_tag smoke             # smoke config (2-4 min)
#   ./run.sh --stage 5 --stop_stage 8     # re-run only some stages (each reads only earlier outputs)
#   ./run.sh --methods "cosine pad" --seeds "1 2 3"
#   ./run.sh --teacher exp/hubert_base --text_teacher exp/bert   # any speech / HF text checkpoint dirs instead
#   cmd_backend=slurm ./run.sh            # send the stages to Slurm (conf/slurm.conf)
#
# Stages: 1 synthesise the SLU corpus (espeak-ng) | 2 Fbank + CMVN | 3 speech SSL teacher: the zoo's ssl_ml
# (egs/mini_espeak/ssl; multilingual HuBERT with an Fbank front-end, English among its languages; chosen
# over the English-only ssl_en_cnn because this recipe's data stage and configs are Fbank ones: stage 2's
# features + CMVN feed the teacher, and its 11 distillations + intent heads are sized for an Fbank encoder,
# while the waveform CNN costs ~4x the transformer per step on CPU) | 4 text
# teacher: the zoo's text_ml (multilingual masked LM, HF format) | 5 distillation per method (and seed)
# | 6 labelled subsets | 7 intent fine-tuning + test accuracy | 8 RESULTS.md
set -euo pipefail

stage=1
stop_stage=100
nj=2              # parallel jobs: synthesis and features (and the runs below unless --max_parallel)
max_parallel=      # distillation and intent runs at once (one thread each) (default: $nj)
conf_tag=default       # default | smoke: picks conf/*.yaml or conf/*_smoke.yaml
seeds="1 2 3"          # seeds (distillation + labelled subset + intent head)
all_seed_methods="none cosine cosine_raw infonce pad pad_raw pad_infonce"   # the rows the claims compare: every
                       # seed; the others with the first seed only
methods="mse cosine cosine_raw infonce uniform pad pad_raw pad_noprior pad_word pad_infonce uniform_infonce pad_infonce_noprior pad_infonce_word"   # distillation variants (steps/pad_distill.sh)
per_intent=3           # labelled utterances per intent for the intent head
teacher=               # speech SSL checkpoint dir (default: the zoo's ssl_ml, steps/zoo_teacher.sh)
text_teacher=          # text model dir, Hugging Face format (default: the zoo's text_ml)
corpus_seed=1
help_message="Usage: $0 [--stage N] [--stop_stage N] [--conf_tag default|smoke] [--seeds '1 2'] [--methods '...'] [--teacher DIR] [--text_teacher DIR]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

sfx=$(conf_suffix "$conf_tag")

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: synthesise the mini SLU corpus ($conf_tag) with espeak-ng"
  speechkd-synth-slu --config conf/slu${sfx}.yaml --out data/slu --nj "$nj" --seed "$corpus_seed"
  for s in train dev test; do ln -sfn slu/data/$s data/$s; done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: 80-dim Fbank (ark/scp) + global CMVN; test subset with paraphrases unseen in train"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" data dump/fbank train dev test
  awk 'NR==FNR {$1=""; seen[$0]=1; next} {u=$1; $1=""; if (!($0 in seen)) print u}' \
    data/train/text data/test/text > data/test_unseen_para.list
  utils/subset_data_dir.sh --utt-list data/test_unseen_para.list data/test data/test_unseen_para
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: speech SSL teacher exp/teacher/model: ${teacher:-zoo ssl_ml}"
  steps/zoo_teacher.sh --conf_tag "$conf_tag" --teacher "$teacher" ssl_ml exp/teacher/model
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: text teacher exp/text_lm/model: ${text_teacher:-zoo text_ml}"
  steps/zoo_teacher.sh --conf_tag "$conf_tag" --teacher "$text_teacher" text_ml exp/text_lm/model
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: distillation: $methods (seeds '$seeds' for: $all_seed_methods)"
  steps/pad_distill.sh --max_parallel "${max_parallel:-$nj}" --cmd "$cuda_cmd" --pad_conf conf/pad${sfx}.yaml --methods "$methods" --seeds "$seeds" \
    --all_seed_methods "$all_seed_methods" data/train data/dev exp/teacher/model exp/text_lm/model exp/distill
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  for seed in $seeds; do
    log "stage 6: labelled subset, $per_intent utterances per intent (seed $seed)"
    speechkd-train-intent subset --data data/train --out data/train_sub${per_intent}_seed$seed \
      --per-intent "$per_intent" --seed "$seed"
  done
  cut -d' ' -f2 data/train/utt2intent | sort -u > data/intents
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "stage 7: intent head ($per_intent labelled utterances per intent) on each model; test accuracy"
  steps/intent_eval.sh --max_parallel "${max_parallel:-$nj}" --cmd "$cuda_cmd" --decode_cmd "$decode_cmd" --intent_conf conf/intent${sfx}.yaml \
    --methods "none $methods" --seeds "$seeds" --all_seed_methods "$all_seed_methods" \
    --train_data "data/train_sub${per_intent}_seedSEED" --intents data/intents \
    data/dev exp/teacher/model exp/distill exp/intent "test test_unseen_para"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: RESULTS${sfx}.md"
  speechkd-make-results --spec conf/results.yaml --out RESULTS${sfx}.md --strict
  log "done: $(pwd)/RESULTS${sfx}.md"
fi
