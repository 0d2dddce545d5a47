#!/usr/bin/env bash
# The mini teacher zoo: the self-supervised teachers the other mini_espeak recipes distil from, made once
# (the way a user downloads XLSR-53 or HuBERT Base once), with the check that makes them teachers:
# fine-tuning from them beats fine-tuning from random weights.
#
#   ssl_ml      multilingual HuBERT (Fbank front-end, 8 layers; stands in for XLSR-53): iteration 1 on MFCC
#               k-means targets, iteration 2 on k-means of its layer-6 output, on a ~10.7 h unlabelled pool;
#               the zoo publishes iteration $publish_iter (default 2: the better one on the check's dev set)
#   ssl_en_cnn  English teacher with a waveform CNN (stands in for HuBERT Base; hubert_kd distils it): a CNN
#               trained to give ssl_ml's front-end output from the waveform, in front of ssl_ml's transformer
#   text_ml     multilingual masked LM on installed text outside every transcript (stands in for XLM-R)
#
#   ./run.sh                              # the zoo + its check (default config)
#   ./run.sh --conf_tag smoke             # tiny pool, a few minutes (tests); writes data_smoke/ exp_smoke/
#   ./run.sh --stage 11 --stop_stage 13   # only the fine-tuning check and RESULTS.md
#
# Stages: 1 synthesise the pool and the check corpus | 2 Fbank | 3 MFCC | 4 iteration-1 targets |
# 5 iteration-1 pretraining | 6 iteration-2 targets | 7 iteration-2 pretraining | 8 zoo entry ssl_ml |
# 9 English waveform-CNN teacher ssl_en_cnn | 10 text teacher text_ml |
# 11 check: CTC fine-tuning teacher vs scratch | 12 decode + score dev, test and the 40-voice test |
# 13 RESULTS.md (+ PER per voice, local/per_voice.py) + cards with the check |
# 14 check of ssl_en_cnn: char CTC on hubert_kd's 600 labelled utterances, teacher vs scratch -> RESULTS_en_cnn.md
# The zoo: $exp/zoo/<name>/ (checkpoint dir + README.md model card + card.json); recipes link it through
# steps/zoo_teacher.sh, which runs this recipe when the teacher they ask for is missing.
set -euo pipefail

stage=1
stop_stage=100
nj=2               # parallel jobs for synthesis, features, decoding
conf_tag=default   # default | smoke
seeds="1 2 3"      # fine-tuning seeds of the check
n_label=40         # labelled utterances per language in the check
inits="iter1 iter2 scratch scratch_nomask"   # check rows: from iteration N's model (iterN; ssl_ml is
                   # iteration $publish_iter), from scratch, from scratch without masking; teacher: from
                   # whatever $zoo/ssl_ml holds
iter2_layer=       # layer of the iteration-1 model whose k-means gives the iteration-2 targets
                   # (default: layer: in conf/targets_iter2.yaml)
iter2_init=iter1   # iteration 2 starts from: iter1 (warm start: its encoder, a new label head) | scratch (the
                   # paper; at this budget a fresh iteration 2 fine-tuned worse than random weights, RESULTS.md)
iter2_steps=       # updates of iteration 2 (default 500; smoke: train.max_steps of conf/pretrain_smoke.yaml;
                   # iteration 1: train.max_steps of conf/pretrain.yaml)
publish_iter=2     # the iteration that becomes the zoo's ssl_ml (chosen on the check's dev PER, RESULTS.md)
en_inits="teacher scratch ssl_ml"   # rows of the ssl_en_cnn check (stage 14): from ssl_en_cnn (its CNN
                   # frozen, hubert_kd's protocol), from scratch (same architecture, everything trains), from
                   # ssl_ml (the multilingual Fbank teacher on the same task); also: teacher_ftcnn (from
                   # ssl_en_cnn with its CNN trained too)
en_cnn_from=ssl_ml # ssl_en_cnn (stage 9) from: ssl_ml (a waveform CNN distilled onto ssl_ml's front-end, its
                   # transformer reused) | scratch (HuBERT iteration 1 on the English pool; RESULTS_en_cnn.md)
en_cnn_steps=0     # with ssl_ml: HuBERT updates on English after the front-end (0 = none)
max_parallel=2     # concurrent fine-tunings in stage 11 (one thread each)
zoo=               # zoo dir (default: $exp/zoo)
corpus_seed=1
help_message="Usage: $0 [--stage N] [--stop_stage N] [--conf_tag default|smoke] [--seeds '1 2 3'] [--zoo DIR]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh

sfx=$(conf_suffix "$conf_tag")
data=data$sfx      # smoke and default runs keep apart
dump=dump$sfx
exp=exp$sfx
zoo=${zoo:-$exp/zoo}
iter2_layer=${iter2_layer:-$(utils/yaml_get.py "conf/targets_iter2${sfx}.yaml" layer)}
if [ "$conf_tag" = smoke ]; then : "${iter2_steps:=$(utils/yaml_get.py conf/pretrain_smoke.yaml train.max_steps)}"
else : "${iter2_steps:=500}"; fi
check_langs=$(corpus_languages "../conf/corpus_${conf_tag}.yaml")

# the zoo entry ssl_ml: checkpoint + model card (stage 8), card rewritten with the check (stage 13)
ssl_ml_card() {   # ssl_ml_card [extra speechkd-zoo-card options]
  local what="iteration 1 of HuBERT (targets: k-means of MFCC + deltas)"
  local iter2_opts=()   # iteration 2 on the card when it was made (always, when it is the one published)
  if [ "$publish_iter" = 2 ] || [ -f "$exp/iter2/train.log" ]; then
    iter2_opts=(--train-log "iteration 2=$exp/iter2/train.log"
                --targets "iteration 2 (layer $iter2_layer)=$exp/targets/iter2/stats.json")
  fi
  [ "$publish_iter" = 2 ] && what="iteration 2 of HuBERT (targets: k-means of layer $iter2_layer of iteration 1; started from $iter2_init)"
  speechkd-zoo-card --name ssl_ml --model "$exp/iter${publish_iter}/model" --out "$zoo/ssl_ml" \
    --summary "Multilingual HuBERT teacher of the mini recipes (stands in for XLSR-53): Fbank front-end, pre-LN transformer, $what, on the unlabelled mini_espeak pool ($(corpus_languages conf/corpus_pool${sfx}.yaml))." \
    --train-log "iteration 1=$exp/iter1/train.log" --targets "iteration 1 (MFCC)=$exp/targets/iter1/stats.json" \
    "${iter2_opts[@]}" --corpus "$data/pool_corpus/corpus.yaml" "$@"
}

# the zoo entry ssl_en_cnn: checkpoint + model card (stage 9), card rewritten with its check (stage 14)
en_cnn_card() {   # en_cnn_card [--model DIR] [extra speechkd-zoo-card options]
  local model=$zoo/ssl_en_cnn
  [ "${1:-}" = --model ] && { model=$2; shift 2; }
  local what logs=()
  case $en_cnn_from in
    ssl_ml)
      what="made from the multilingual teacher ssl_ml: a waveform CNN trained on the English part of the pool to give what ssl_ml's Fbank front-end gives (L1, conf/en_cnn_frontend${sfx}.yaml), in front of ssl_ml's transformer"
      logs=(--train-log "ssl_ml iteration 1=$exp/iter1/train.log" --train-log "ssl_ml iteration 2=$exp/iter2/train.log"
            --train-log "CNN front-end (L1 to ssl_ml's)=$exp/en_cnn_fe/train.log"
            --targets "ssl_ml iteration 2 (layer $iter2_layer)=$exp/targets/iter2/stats.json")
      if [ "$en_cnn_steps" -gt 0 ]; then
        what="$what, then $en_cnn_steps HuBERT updates on English (ssl_ml's iteration-2 targets)"
        logs+=(--train-log "English HuBERT=$exp/en_cnn/train.log")
      fi ;;
    *)
      what="iteration 1 (MFCC k-means targets) on the English part of the pool"
      logs=(--train-log "iteration 1=$exp/en_cnn/train.log" --targets "iteration 1 (MFCC)=$exp/targets/en_iter1/stats.json") ;;
  esac
  speechkd-zoo-card --name ssl_en_cnn --model "$model" --out "$zoo/ssl_en_cnn" \
    --summary "English teacher with a waveform-CNN front-end (stands in for HuBERT Base; egs/mini_espeak/hubert_kd distils it): $what." \
    "${logs[@]}" --corpus "$data/pool_corpus/corpus.yaml" "$@"
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: unlabelled pool (conf/corpus_pool${sfx}.yaml) and check corpus (../conf/corpus_${conf_tag}.yaml)"
  steps/synth_corpus.sh --nj "$nj" --seed "$corpus_seed" "conf/corpus_pool${sfx}.yaml" "$data/pool_corpus" "$data/pool"
  steps/synth_corpus.sh --nj "$nj" --seed "$corpus_seed" "../conf/corpus_${conf_tag}.yaml" "$data/check_corpus" \
    "$data/check"
  # the check's test sentences again, spoken by 40 other unseen voices (test split only)
  steps/synth_corpus.sh --nj "$nj" --seed "$corpus_seed" --splits test "conf/corpus_voices${sfx}.yaml" \
    "$data/voices_corpus" "$data/voices"
  speechkd-make-tokens --kind phone --text "$data/check/train/phones" --out "$data/token_phone"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: 80-dim Fbank (ark/scp) + CMVN of the pool and the check sets"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" "$data/pool" "$dump/fbank/pool" train dev
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" "$data/check" "$dump/fbank/check" train dev test
  steps/make_feats.sh --nj "$nj" --cmd "$feats_cmd" --cmvn false "$data/voices/test" "$dump/fbank/voices/test"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: 13-dim MFCC of the pool (iteration-1 targets), in copies of its data dirs"
  for s in train dev; do
    mkdir -p "$data/pool_mfcc/$s"
    for f in wav.scp text utt2spk spk2utt utt2lang utt2dur phones.ctm; do cp "$data/pool/$s/$f" "$data/pool_mfcc/$s/"; done
    steps/make_feats.sh --nj "$nj" --cmd "$feats_cmd" --kind mfcc --cmvn false "$data/pool_mfcc/$s" \
      "$dump/mfcc/pool/$s"
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: iteration-1 targets: k-means of MFCC + deltas"
  speechkd-hubert-targets --kind mfcc --config "conf/targets_iter1${sfx}.yaml" --out "$exp/targets/iter1" \
    --set "train=$data/pool_mfcc/train" --set "dev=$data/pool_mfcc/dev" --no-progress
fi

# pretrain_iter N [options]: HuBERT iteration N on the pool (options: config overrides)
pretrain_iter() {
  local n=$1; shift
  mkdir -p "$exp/iter$n"
  ${cuda_cmd} --gpu 1 --num-threads 1 "$exp/iter$n/run.log" \
    speechkd-pretrain --config "conf/pretrain${sfx}.yaml" --train-data "$data/pool/train" \
      --valid-data "$data/pool/dev" --exp "$exp/iter$n" --targets.train "$exp/targets/iter$n/train/labels.scp" \
      --targets.valid "$exp/targets/iter$n/dev/labels.scp" --targets.kmeans "$exp/targets/iter$n/kmeans.pt" "$@"
}

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: HuBERT iteration 1 (masked prediction of the MFCC clusters) on the pool"
  pretrain_iter 1
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "stage 6: iteration-2 targets: k-means of layer $iter2_layer of the iteration-1 model"
  speechkd-hubert-targets --kind model --model "$exp/iter1/model" --layer "$iter2_layer" \
    --config "conf/targets_iter2${sfx}.yaml" --out "$exp/targets/iter2" \
    --set "train=$data/pool/train" --set "dev=$data/pool/dev" --no-progress
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "stage 7: HuBERT iteration 2 on the iteration-2 targets ($iter2_steps updates, from $iter2_init)"
  case $iter2_init in
    iter1) init_opt=(--init "$exp/iter1/model") ;;
    scratch) init_opt=() ;;
    *) echo "$0: --iter2_init must be iter1 or scratch, not '$iter2_init'" >&2; exit 1 ;;
  esac
  pretrain_iter 2 --train.max_steps "$iter2_steps" "${init_opt[@]}"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: zoo entry $zoo/ssl_ml (iteration-$publish_iter model)"
  ssl_ml_card
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  log "stage 9: English waveform-CNN teacher $zoo/ssl_en_cnn (from $en_cnn_from)"
  for s in train dev; do
    awk '$2 == "en" {print $1}' "$data/pool/$s/utt2lang" > "$data/pool_en_$s.list"
    utils/subset_data_dir.sh --utt-list "$data/pool_en_$s.list" "$data/pool_mfcc/$s" "$data/pool_en_mfcc/$s" >/dev/null
    utils/subset_data_dir.sh --utt-list "$data/pool_en_$s.list" "$data/pool/$s" "$data/pool_en/$s" >/dev/null
    cp "$data/pool/$s/phones.ctm" "$data/pool_en_mfcc/$s/"
  done
  case $en_cnn_from in
    ssl_ml)   # a waveform CNN learns ssl_ml's front-end output; the transformer is ssl_ml's
      mkdir -p "$exp/en_cnn_fe"
      ${cuda_cmd} --gpu 1 --num-threads 1 "$exp/en_cnn_fe/run.log" \
        speechkd-distill --config "conf/en_cnn_frontend${sfx}.yaml" --teacher "$zoo/ssl_ml" \
          --train-data "$data/pool_en/train" --valid-data "$data/pool_en/dev" --exp "$exp/en_cnn_fe"
      en_model=$exp/en_cnn_fe/model
      if [ "$en_cnn_steps" -gt 0 ]; then   # then HuBERT on English, on ssl_ml's own iteration-2 targets
        mkdir -p "$exp/en_cnn"
        ${cuda_cmd} --gpu 1 --num-threads 1 "$exp/en_cnn/run.log" \
          speechkd-pretrain --config "conf/pretrain_en_cnn${sfx}.yaml" --init "$exp/en_cnn_fe/model" \
            --train-data "$data/pool_en/train" --valid-data "$data/pool_en/dev" --exp "$exp/en_cnn" \
            --targets.train "$exp/targets/iter2/train/labels.scp" --targets.valid "$exp/targets/iter2/dev/labels.scp" \
            --targets.kmeans "$exp/targets/iter2/kmeans.pt" --train.max_steps "$en_cnn_steps"
        en_model=$exp/en_cnn/model
      fi ;;
    scratch)  # HuBERT iteration 1 on the English pool alone (RESULTS_en_cnn.md: a weak teacher at this budget)
      speechkd-hubert-targets --kind mfcc --config "conf/targets_iter1${sfx}.yaml" --out "$exp/targets/en_iter1" \
        --set "train=$data/pool_en_mfcc/train" --set "dev=$data/pool_en_mfcc/dev" --no-progress
      mkdir -p "$exp/en_cnn"
      ${cuda_cmd} --gpu 1 --num-threads 1 "$exp/en_cnn/run.log" \
        speechkd-pretrain --config "conf/pretrain_en_cnn${sfx}.yaml" --train-data "$data/pool_en/train" \
          --valid-data "$data/pool_en/dev" --exp "$exp/en_cnn" --targets.train "$exp/targets/en_iter1/train/labels.scp" \
          --targets.valid "$exp/targets/en_iter1/dev/labels.scp" --targets.kmeans "$exp/targets/en_iter1/kmeans.pt"
      en_model=$exp/en_cnn/model ;;
    *) echo "$0: --en_cnn_from must be ssl_ml or scratch, not '$en_cnn_from'" >&2; exit 1 ;;
  esac
  en_cnn_card --model "$en_model"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  log "stage 10: text teacher $zoo/text_ml"
  local/text_teacher.sh --conf_tag "$conf_tag" --data "$data" --exp "$exp" "$zoo/text_ml"
fi

if [ "$stage" -le 11 ] && [ "$stop_stage" -ge 11 ]; then
  log "stage 11: check: phone CTC on $n_label labelled utterances per language, teacher vs scratch, seeds $seeds"
  steps/make_labelled_subset.sh --n "$n_label" "$data/check/train" "$data/check/train_sub" "$check_langs"
  finetune_one() {   # finetune_one INIT SEED
    local init=$1 seed=$2 dir=$exp/check/ft_$1/seed$2
    local init_opt=(--model.freeze_frontend false)   # from scratch: the random front-end learns too
    case $init in
      teacher) init_opt=(--init "$zoo/ssl_ml") ;;
      iter[0-9]) init_opt=(--init "$exp/$init/model") ;;
    esac
    [ "$init" = scratch_nomask ] && init_opt+=(--model.encoder.mask_time_prob 0 --model.encoder.mask_channel_prob 0)
    mkdir -p "$dir"
    ${cuda_cmd} --gpu 1 --num-threads 1 "$dir/run.log" \
      speechkd-finetune --config "conf/finetune${sfx}.yaml" "${init_opt[@]}" --train-data "$data/check/train_sub" \
        --valid-data "$data/check/dev" --token-dir "$data/token_phone" --exp "$dir" --data.text_file phones \
        --train.seed "$seed" --train.progress false
  }
  specs=()
  for seed in $seeds; do for init in $inits; do specs+=("$init $seed"); done; done
  run_pool "$max_parallel" finetune_one "${specs[@]}"
fi

if [ "$stage" -le 12 ] && [ "$stop_stage" -ge 12 ]; then
  for init in $inits; do
    for seed in $seeds; do
      dir=$exp/check/ft_${init}/seed$seed
      log "stage 12: decode + score dev, test and the 40-voice test ($dir, best checkpoint by dev token error)"
      # dev: what the zoo's choices (publish_iter, protocols) are made on; voices: test sentences, 40 voices
      for s in dev test voices; do
        src=$data/check/$s; [ "$s" = voices ] && src=$data/voices/test
        steps/decode_score.sh --nj "$nj" --cmd "$decode_cmd" --ref_file phones --units phone \
          "$dir/model_best" "$src" "$dir/decode_$s"
      done
    done
  done
fi

if [ "$stage" -le 13 ] && [ "$stop_stage" -ge 13 ]; then
  log "stage 13: RESULTS${sfx}.md and the ssl_ml card with the check"
  # PER per voice (tables + plot of the published teacher against no-masking scratch)
  local/per_voice.py "$exp/check" decode_dev decode_test decode_voices --versus "iter${publish_iter}:scratch_nomask" \
    --plot "per_voice${sfx}.png" > "$exp/check/per_voice.md.tmp"
  echo -e "\n![PER per voice, iteration $publish_iter vs no-masking scratch](per_voice${sfx}.png)" >> "$exp/check/per_voice.md.tmp"
  mv "$exp/check/per_voice.md.tmp" "$exp/check/per_voice.md"
  speechkd-make-results --spec "conf/results${sfx}.yaml" --out "RESULTS${sfx}.md" --strict
  ssl_ml_card --no-copy \
    --check "fine-tuned from ssl_ml (iteration $publish_iter)=$exp/check/ft_iter${publish_iter}/seed*/decode_test/score.json" \
    --check "from scratch=$exp/check/ft_scratch/seed*/decode_test/score.json"
  log "done: $(pwd)/RESULTS${sfx}.md"
fi

if [ "$stage" -le 14 ] && [ "$stop_stage" -ge 14 ]; then
  log "stage 14: check of ssl_en_cnn: char CTC on hubert_kd's labelled English set ($en_inits), seeds $seeds"
  steps/synth_corpus.sh --nj "$nj" --seed "$corpus_seed" "../hubert_kd/conf/corpus_${conf_tag}.yaml" \
    "$data/check_en_corpus" "$data/check_en"
  speechkd-make-tokens --kind char --text "$data/check_en/train/text" --out "$data/token_char_en"
  case " $en_inits " in   # the Fbank teacher reads features (its own CMVN, from the pool)
    *" ssl_ml "*) steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" "$data/check_en" "$dump/fbank/check_en" \
                    train dev test ;;
  esac
  finetune_en() {   # finetune_en INIT SEED: fine-tune, then decode + score dev and test
    local init=$1 seed=$2 dir=$exp/check_en/ft_$1/seed$2 s
    local init_opt=(--model.freeze_frontend false)   # from scratch: the random CNN learns too
    case $init in
      teacher) init_opt=(--init "$zoo/ssl_en_cnn") ;;
      teacher_ftcnn) init_opt=(--init "$zoo/ssl_en_cnn" --model.freeze_frontend false) ;;
      ssl_ml) init_opt=(--init "$zoo/ssl_ml") ;;
      scratch) ;;
      *) echo "$0: --en_inits takes teacher, scratch, teacher_ftcnn, ssl_ml, not '$init'" >&2; return 1 ;;
    esac
    mkdir -p "$dir"
    ${cuda_cmd} --gpu 1 --num-threads 1 "$dir/run.log" \
      speechkd-finetune --config "conf/finetune_en_cnn${sfx}.yaml" "${init_opt[@]}" --train-data "$data/check_en/train" \
        --valid-data "$data/check_en/dev" --token-dir "$data/token_char_en" --exp "$dir" --train.seed "$seed"
    for s in dev test; do
      steps/decode_score.sh --nj 1 --cmd "$decode_cmd" --units char,word "$dir/model_best" "$data/check_en/$s" \
        "$dir/decode_$s" > "$dir/decode_$s.log"
    done
  }
  specs=()
  for seed in $seeds; do for init in $en_inits; do specs+=("$init $seed"); done; done
  run_pool "$max_parallel" finetune_en "${specs[@]}"
  speechkd-make-results --spec "conf/results_en_cnn${sfx}.yaml" --out "RESULTS_en_cnn${sfx}.md" --strict
  en_cnn_card --no-copy --unit char --check "fine-tuned from ssl_en_cnn=$exp/check_en/ft_teacher/seed*/decode_test/score.json" \
    --check "from scratch=$exp/check_en/ft_scratch/seed*/decode_test/score.json"
  log "done: $(pwd)/RESULTS_en_cnn${sfx}.md"
fi
