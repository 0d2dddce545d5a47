#!/usr/bin/env bash
# PAD on Fluent Speech Commands (arXiv 2303.03600) at real scale: distil a frozen BERT-like text model into a pretrained
# speech SSL model (HuBERT / wav2vec 2.0 Base) by metric-based alignment at utterance, word and sub-word
# level (prior-weighted units, adaptive combination), then fine-tune intent classification
# (action_object_location) and report test accuracy; the metric-based baselines and ablations are the same code
# (steps/pad_distill.sh). FSC has no word times: word spans come from letter counts
# (conf/pad.yaml units.ctm_fallback: chars). Needs local copies (nothing is downloaded):
#   - the fluent_speech_commands_dataset folder (data/*_data.csv, wavs/), read by local/data.sh;
#   - the speech model (HF dir, e.g. facebook/hubert-base-ls960, or fairseq hubert_base_ls960.pt);
#   - the text model (HF dir, e.g. bert-base-uncased).
#
#   ./run.sh --fsc_root /data/fluent_speech_commands_dataset --speech_model /models/hubert-base-ls960 --text_model /models/bert-base-uncased
#   ./run.sh ... --methods "cosine pad" --seeds "1 2 3"            # fewer / more runs
#   ./run.sh ... --per_intent 10                                    # low-resource intent training
#   cmd_backend=slurm ./run.sh ...                                  # GPU jobs through conf/slurm.conf
set -euo pipefail

stage=1
stop_stage=100
fsc_root=            # fluent_speech_commands_dataset folder (required for stage 1)
speech_model=        # speech SSL checkpoint: HF dir or fairseq .pt (required for stage 2)
text_model=          # BERT-like HF encoder dir (required from stage 3)
methods="mse cosine infonce uniform pad pad_noprior pad_word"
seeds="1 2"
all_seed_methods="none pad"
per_intent=0         # 0: the whole training set labels the intent head; N > 0: N utterances per intent
conf_tag=default     # picks conf/*.yaml (default) or conf/*_<tag>.yaml
help_message="Usage: $0 --fsc_root DIR --speech_model PATH --text_model DIR [--methods '...'] [--seeds '1 2'] [--stage N] [--stop_stage N]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh

sfx=""
[ "$conf_tag" = default ] || sfx="_${conf_tag}"
log() { echo -e "$(date '+%F %T') (run.sh) $*"; }
train_lab=data/train
[ "$per_intent" -gt 0 ] && train_lab="data/train_sub${per_intent}_seedSEED"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: FSC data dirs (train, valid, test) with utt2intent = action_object_location"
  [ -n "$fsc_root" ] || { echo "$0: --fsc_root is required" >&2; exit 1; }
  local/data.sh --src "$fsc_root" --utt2dur true --normalize true
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: import the speech SSL model -> exp/speech_ssl"
  [ -n "$speech_model" ] || { echo "$0: --speech_model is required" >&2; exit 1; }
  speechkd-import-checkpoint --src "$speech_model" --out exp/speech_ssl
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: distillation from $text_model: $methods"
  [ -n "$text_model" ] || { echo "$0: --text_model is required" >&2; exit 1; }
  steps/pad_distill.sh --cmd "$cuda_cmd" --pad_conf conf/pad${sfx}.yaml --methods "$methods" --seeds "$seeds" \
    --all_seed_methods "$all_seed_methods" data/train data/valid exp/speech_ssl "$text_model" exp/distill
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: intent classification on each model (labels: $train_lab), test accuracy"
  if [ "$per_intent" -gt 0 ]; then
    for seed in $seeds; do
      speechkd-train-intent subset --data data/train --out "${train_lab//SEED/$seed}" --per-intent "$per_intent" --seed "$seed"
    done
  fi
  cut -d' ' -f2 data/train/utt2intent | sort -u > data/intents
  steps/intent_eval.sh --cmd "$cuda_cmd" --decode_cmd "$decode_cmd" --intent_conf conf/intent${sfx}.yaml \
    --methods "none $methods" --seeds "$seeds" --all_seed_methods "$all_seed_methods" --train_data "$train_lab" \
    --intents data/intents data/valid exp/speech_ssl exp/distill exp/intent "test"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: RESULTS${sfx}.md"
  speechkd-make-results --spec conf/results.yaml --out RESULTS${sfx}.md --strict
fi
