#!/usr/bin/env bash
# DistilXLSR on mini_espeak (arXiv 2306.01303): distil a multilingual SSL teacher with ENGLISH speech only,
# after forced-aligning it to phones and shuffling the phones; student = half the teacher's layers,
# initialised by layer-jumping; evaluated by per-language phone CTC fine-tuning on the other languages.
#
#   ./run.sh                              # default config (~45 min of speech in 5 languages; ~35 min on 2 cores)
#   ./run.sh --conf_tag smoke             # smoke config (3 languages, ~60 utterances, a few minutes)
#   ./run.sh --stage 9 --stop_stage 11    # re-run only some stages (each reads only earlier outputs)
#   ./run.sh --eval_langs "de es it ru pl ga" --seeds "1 2 3"
#   cmd_backend=slurm ./run.sh            # send the stages to Slurm (conf/slurm.conf)
#
# Stages: 1 corpus (espeak-ng, exact phone times) | 2 phone inventory | 3 Fbank + CMVN | 4 data subsets
# (English distillation set, per-language labelled/dev/test sets) | 5 phone CTC aligner on English |
# 6 forced alignment + boundary accuracy vs espeak-ng | 7 phone shuffling + Fbank | 8 multilingual teacher:
# the zoo's ssl_ml (egs/mini_espeak/ssl; stands in for XLSR-53), or --teacher DIR | 9 distillation (3 students)
# | 10 CTC fine-tuning on the evaluation languages (joint or one model per language) + decode + score per
# language | 11 RESULTS.md
#   ./run.sh --teacher /path/to/xlsr53    # any checkpoint dir as the teacher (e.g. speechkd-import-checkpoint)
set -euo pipefail

stage=1
stop_stage=100
nj=2                 # parallel jobs for synthesis, features, alignment and decoding
max_parallel=2       # distillations / fine-tunings run at once (one torch thread each)
conf_tag=default     # default | smoke: picks conf/*.yaml or conf/*_smoke.yaml
corpus_conf=         # corpus YAML (default: conf/corpus_<tag>.yaml, else ../conf/corpus_<tag>.yaml)
corpus_seed=1
distill_lang=en      # the only language the students are distilled with
eval_langs=          # fine-tuning/test languages (default: every corpus language but distill_lang)
n_label=40           # labelled utterances per evaluation language
seeds="1 2 3"        # seeds of the students: seed N = distillation with seed N (exp/<student>/seedN), then its
                     # fine-tuning with seed N (exp/ft_<student>/seedN), so rows pair by seed
ref_seeds=           # fine-tuning seeds of the teacher row and the from-scratch row; empty: = seeds
scratch=true         # a from-scratch row: the students' architecture fine-tuned from random weights
shuffle_seed=1
across_utts=false    # true: shuffle phones across the utterances of a speaker
crossfade_ms=5
nojump_init=first    # student init without layer-jumping: first (teacher layers 1..L_s) | none (random)
teacher=             # teacher checkpoint dir (default: the zoo's ssl_ml, steps/zoo_teacher.sh)
ft_mode=per_lang     # per_lang: one CTC model per evaluation language (as the paper) | joint: one model on all
                     # evaluation languages' labelled sets together, scored per language (cheaper on CPU)
help_message="Usage: $0 [--stage N] [--stop_stage N] [--conf_tag default|smoke] [--nj N] [--seeds '1 2'] [--eval_langs 'de ru'] [--teacher DIR]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool
[ -n "$ref_seeds" ] || ref_seeds=$seeds

sfx=$(conf_suffix "$conf_tag")
if [ -z "$corpus_conf" ]; then
  corpus_conf=conf/corpus_${conf_tag}.yaml
  [ -f "$corpus_conf" ] || corpus_conf=../conf/corpus_${conf_tag}.yaml
fi
langs=$(corpus_languages "$corpus_conf")
[ -n "$eval_langs" ] || eval_langs=$(echo "$langs" | tr ' ' '\n' | grep -vx "$distill_lang" | tr '\n' ' ')
eval_langs=$(echo $eval_langs)
case $ft_mode in per_lang) ft_sets=$eval_langs ;; joint) ft_sets=all ;; *) echo "$0: ft_mode per_lang|joint" >&2; exit 1 ;; esac
en=$distill_lang
# student name -> "<distillation data dir> <layer init>"
declare -A students=(
  [student_en]="data/train_${en} jump"             # plain English, layer-jumping
  [distilxlsr]="data/train_${en}_shuf jump"        # shuffled English, layer-jumping (DistilXLSR)
  [nojump]="data/train_${en}_shuf ${nojump_init}"  # shuffled English, no layer-jumping
)

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: synthesise mini_espeak ($corpus_conf) with espeak-ng"
  mkdir -p data
  speechkd-synth-corpus --config "$corpus_conf" --out data/corpus --nj "$nj" --seed "$corpus_seed"
  for s in train dev test; do ln -sfn corpus/data/$s data/$s; done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  # the inventory is the closed phone set of the corpus languages (a lexicon property): taken from every split
  # so that the aligner can align dev/test utterances whose rare phones the (small) training set lacks
  log "stage 2: phone inventory (all languages)"
  speechkd-make-tokens --kind phone --text data/train/phones --text data/dev/phones --text data/test/phones \
    --out data/token_phone
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: 80-dim Fbank (ark/scp) + global CMVN of the training set"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" data dump/fbank train dev test
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: subsets: ${en} train/dev; per evaluation language ($eval_langs) $n_label labelled utts, dev, test"
  for s in train dev test; do
    for l in $langs; do
      awk -v l="$l" '$2 == l {print $1}' data/$s/utt2lang > data/.list
      utils/subset_data_dir.sh --utt-list data/.list data/$s data/${s}_$l > /dev/null
    done
  done
  rm -f data/.list
  # the exact espeak-ng phone times of the English sets: the aligner's reference
  for s in train dev; do
    awk 'NR == FNR {k[$1]; next} $1 in k' data/${s}_${en}/utt2spk data/$s/phones.ctm > data/${s}_${en}/phones.ctm
  done
  for l in $eval_langs; do
    steps/make_labelled_subset.sh --n "$n_label" data/train_$l data/ft_$l "$l" > /dev/null
  done
  for s in ft dev test; do   # the evaluation languages combined (ft_mode=joint)
    utils/combine_data.sh data/${s}_all $(for l in $eval_langs; do echo data/${s}_$l; done) > /dev/null
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: phone CTC aligner trained from scratch on ${en} phones"
  mkdir -p exp/aligner
  ${cuda_cmd} --gpu 1 exp/aligner/train.log \
    speechkd-finetune --config conf/aligner${sfx}.yaml --train-data data/train_${en} --valid-data data/dev_${en} \
      --token-dir data/token_phone --exp exp/aligner --data.text_file phones
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  for s in train dev; do
    log "stage 6: forced alignment of data/${s}_${en} + boundary accuracy vs the espeak-ng phone times"
    steps/align_ctc.sh --nj "$nj" --cmd "$decode_cmd" --ref_ctm data/${s}_${en}/phones.ctm \
      exp/aligner/model data/${s}_${en} exp/align_${s}_${en}
  done
  local/aligner_accuracy.py exp/aligner_accuracy.md exp/align_train_${en} exp/align_dev_${en}
  cat exp/aligner_accuracy.md
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "stage 7: shuffle the phones of data/train_${en} (seed $shuffle_seed, across_utts=$across_utts, ${crossfade_ms} ms cross-fades) + Fbank"
  opts=()
  [ "$across_utts" = true ] && opts=(--across-utts)
  speechkd-shuffle-phones --data data/train_${en} --ctm exp/align_train_${en}/phones.ctm \
    --out data/train_${en}_shuf --wav-dir dump/shuf_${en} --seed "$shuffle_seed" \
    --crossfade-ms "$crossfade_ms" "${opts[@]}"
  steps/make_feats.sh --nj "$nj" --cmd "$feats_cmd" --cmvn false data/train_${en}_shuf dump/fbank/train_${en}_shuf
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: multilingual teacher exp/teacher/model: ${teacher:-zoo ssl_ml}"
  steps/zoo_teacher.sh --conf_tag "$conf_tag" --teacher "$teacher" ssl_ml exp/teacher/model
fi

distil_one() {   # distil_one NAME SEED: the student NAME of ${students[NAME]} -> exp/NAME/seedSEED
  local name=$1 seed=$2 data init dir=exp/$1/seed$2
  read -r data init <<< "${students[$name]}"
  log "stage 9: distil $name (seed $seed): $data, layer init '$init' -> $dir"
  mkdir -p "$dir"
  ${cuda_cmd} --gpu 1 --num-threads 1 "$dir/train.log" \
    speechkd-distill --config conf/distill${sfx}.yaml --teacher exp/teacher/model --train-data "$data" \
      --valid-data data/dev_${en} --exp "$dir" --student.init "$init" --train.seed "$seed"
}

first_seed=${seeds%% *}
init_of() {   # init_of NAME SEED: the checkpoint a fine-tuning row starts from
  case $1 in
    teacher) echo exp/teacher/model ;;
    scratch) echo "exp/distilxlsr/seed$first_seed/model" ;;   # its architecture only (random weights)
    *) echo "exp/$1/seed$2/model" ;;
  esac
}

finetune_one() {   # finetune_one NAME SEED: $(init_of NAME SEED) fine-tuned on $ft_sets -> exp/ft_NAME/seedSEED
  local name=$1 seed=$2 init opts=()
  init=$(init_of "$name" "$seed")
  [ "$name" = scratch ] && opts=(--finetune_opts "${scratch_finetune_opts[*]}")
  log "stage 10: fine-tune $init${opts[*]:+ (architecture only: from scratch)} ($ft_mode: $ft_sets; seed $seed) -> exp/ft_$name/seed$seed"
  steps/finetune_langs.sh --cmd "$cuda_cmd --num-threads 1" --nj 1 --train_config conf/finetune${sfx}.yaml \
    --decode_ckpt last --seed "$seed" --token_dir data/token_phone "${opts[@]}" "$init" "$ft_sets" exp/ft_$name/seed$seed
}

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  specs=()
  for seed in $seeds; do for name in student_en distilxlsr nojump; do specs+=("$name $seed"); done; done
  run_pool "$max_parallel" distil_one "${specs[@]}"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  specs=()
  rows="teacher student_en distilxlsr nojump"
  [ "$scratch" = true ] && rows="$rows scratch"
  for name in $rows; do
    case $name in teacher|scratch) ss=$ref_seeds ;; *) ss=$seeds ;; esac
    for seed in $ss; do
      missing=
      for f in $ft_sets; do [ -f exp/ft_$name/seed$seed/$f/decode_test/score.json ] || missing=$f; done
      if [ -z "$missing" ]; then
        log "stage 10: exp/ft_$name/seed$seed already scored, skipped (delete it to redo)"; continue
      fi
      specs+=("$name $seed")
    done
  done
  run_pool "$max_parallel" finetune_one "${specs[@]}"   # nothing to do when every run is scored
fi

if [ "$stage" -le 11 ] && [ "$stop_stage" -ge 11 ]; then
  log "stage 11: RESULTS${sfx}.md"
  # the table's columns follow eval_langs: conf/results.yaml is the template
  utils/lang_results_spec.py conf/results.yaml exp/results_spec.yaml --langs "$eval_langs" --ft_mode "$ft_mode" \
    --ft_note --command "./run.sh --conf_tag $conf_tag --seeds '$seeds' --ref_seeds '$ref_seeds' --eval_langs '$eval_langs' --ft_mode $ft_mode"
  speechkd-make-results --spec exp/results_spec.yaml --out RESULTS${sfx}.md --strict
  log "done: $(pwd)/RESULTS${sfx}.md"
fi
