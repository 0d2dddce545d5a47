#!/usr/bin/env bash
# DistilXLSR, distillation half (arXiv 2306.01303): distil XLSR-53 / XLS-R into a half-depth student with
# LibriSpeech ENGLISH speech only, after phone forced alignment and phone shuffling. The students are
# evaluated on low-resource languages by ../../commonvoice/distilxlsr (CTC fine-tuning per language).
#
#   ./run.sh --librispeech /data/LibriSpeech --teacher_src /data/models/wav2vec2-large-xlsr-53
#   ./run.sh --librispeech /data/LibriSpeech --teacher_src /data/models/xlsr_53_56k.pt   # fairseq checkpoint
#   ./run.sh --stage 7 --stop_stage 8 ...     # re-run only some stages
#   cmd_backend=slurm ./run.sh ...            # send the stages to Slurm (conf/slurm.conf)
#
# Stages: 1 data (local/data.sh) | 2 phone transcription (espeak-ng via phonemizer) | 3 phone inventory |
# 4 Fbank + CMVN (aligner input) | 5 phone CTC aligner | 6 forced alignment -> CTM | 7 phone shuffling |
# 8 teacher import | 9 distillation: plain English, DistilXLSR (shuffled + layer-jumping), no layer-jumping
#   ./run.sh --conf_tag dryrun            # the whole pipeline before a cluster job, on CPU: a fake LibriSpeech,
#                   an XLSR-53-size teacher with random weights (a Hugging Face dir, imported like a real one), the
#                   12-layer students of conf/distill.yaml, 2 updates per training job (conf unchanged, the
#                   update counts overridden)
set -euo pipefail

stage=1
stop_stage=100
conf_tag=default           # default | dryrun (see above)
nj=                        # parallel jobs for features and alignment (default 8; dryrun: 2)
librispeech=               # LibriSpeech folder (required for stage 1)
train_set=train_clean_100  # distillation speech (e.g. train_960 after combining the subsets)
valid_set=dev_clean
subsets=train-clean-100,dev-clean
phone_lang=en              # phonemizer language of the transcripts (en: espeak-ng en-us)
teacher_src=               # XLSR-53 / XLS-R: Hugging Face directory or fairseq .pt (required for stage 8)
shuffle_seed=1
across_utts=false          # true: shuffle phones across the utterances of a speaker
crossfade_ms=5
nojump_init=first          # student without layer-jumping: first | none
ngpu=1        # GPUs per training job (> 1: torchrun with one process per GPU, through cmd.sh's runner)
nnodes=1      # nodes per training job (> 1: cmd_backend=slurm; one torchrun per node)
help_message="Usage: $0 --librispeech <dir> --teacher_src <XLSR checkpoint> [--stage N] [--stop_stage N]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

dry=()   # speechkd-finetune / -distill overrides of a dry run: the configs' models, 2 updates, small batches
case $conf_tag in
  default) : "${nj:=8}" ;;
  dryrun)
    : "${nj:=2}"
    dry=("${dryrun_train_opts[@]}")
    dry_src=data/dryrun_src   # the fake corpus (stage 1) and the random teacher (stage 8)
    [ -n "$librispeech" ] || librispeech=$dry_src/LibriSpeech
    [ -n "$teacher_src" ] || teacher_src=$dry_src/xlsr_53_random
    ;;
  *) echo "$0: --conf_tag default or dryrun, got '$conf_tag'" >&2; exit 1 ;;
esac

declare -A students=(
  [student_en]="data/${train_set} jump"
  [distilxlsr]="data/${train_set}_shuf jump"
  [nojump]="data/${train_set}_shuf ${nojump_init}"
)

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: LibriSpeech data dirs ($subsets)"
  [ -n "$librispeech" ] || { echo "$0: --librispeech <dir> is required" >&2; exit 1; }
  if [ "$conf_tag" = dryrun ] && [ "$librispeech" = "$dry_src/LibriSpeech" ] && [ ! -d "$librispeech" ]; then
    log "stage 1 (dryrun): a fake LibriSpeech tree -> $dry_src"
    speechkd-make-fake-corpus librispeech --out "$dry_src"
  fi
  local/data.sh --src "$librispeech" --subsets "$subsets"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  for s in $train_set $valid_set; do
    log "stage 2: phone transcription of data/$s ($phone_lang)"
    speechkd-phonemize data/$s --lang "$phone_lang"
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: phone inventory"
  speechkd-make-tokens --kind phone --text data/$train_set/phones --out data/token_phone
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: Fbank for the aligner"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" --cmvn_set "$train_set" data dump/fbank "$train_set" "$valid_set"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: phone CTC aligner (from scratch, Fbank)"
  mkdir -p exp/aligner
  ${cuda_cmd} --gpu "$ngpu" --nodes "$nnodes" --time 24:00:00 exp/aligner/train.log \
    speechkd-finetune --config conf/aligner.yaml --train-data data/$train_set --valid-data data/$valid_set \
      --token-dir data/token_phone --exp exp/aligner --data.text_file phones "${dry[@]}"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "stage 6: forced alignment of data/$train_set"
  aligner=$(best_model exp/aligner)   # best on $valid_set
  steps/align_ctc.sh --nj "$nj" --cmd "$decode_cmd" "$aligner" data/$train_set exp/align_$train_set
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "stage 7: phone shuffling (seed $shuffle_seed, across_utts=$across_utts)"
  opts=()
  [ "$across_utts" = true ] && opts=(--across-utts)
  speechkd-shuffle-phones --data data/$train_set --ctm exp/align_$train_set/phones.ctm \
    --out data/${train_set}_shuf --wav-dir dump/shuf_$train_set --seed "$shuffle_seed" \
    --crossfade-ms "$crossfade_ms" "${opts[@]}"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: teacher $teacher_src -> exp/teacher/model"
  [ -n "$teacher_src" ] || { echo "$0: --teacher_src <XLSR checkpoint> is required" >&2; exit 1; }
  if [ "$conf_tag" = dryrun ] && [ "$teacher_src" = "$dry_src/xlsr_53_random" ] && [ ! -d "$teacher_src" ]; then
    log "stage 8 (dryrun): XLSR-53 with random weights, as a Hugging Face directory -> $teacher_src"
    speechkd-make-random-checkpoint --arch xlsr_53 --format hf --out "$teacher_src"
  fi
  speechkd-import-checkpoint --src "$teacher_src" --out exp/teacher/model --kind ssl
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  for name in student_en distilxlsr nojump; do
    read -r data init <<< "${students[$name]}"
    log "stage 9: distil $name: $data, layer init '$init'"
    mkdir -p exp/$name
    ${cuda_cmd} --gpu "$ngpu" --nodes "$nnodes" --time 72:00:00 exp/$name/train.log \
      speechkd-distill --config conf/distill.yaml --teacher exp/teacher/model --train-data "$data" \
        --valid-data data/$valid_set --exp exp/$name --student.init "$init" "${dry[@]}"
  done
  log "students: $(for n in student_en distilxlsr nojump; do printf '%s ' "$(pwd)/exp/$n/model"; done)"
  log "evaluate them with ../../commonvoice/distilxlsr/run.sh --models \"teacher=$(pwd)/exp/teacher/model distilxlsr=$(pwd)/exp/distilxlsr/model ...\""
fi
