#!/usr/bin/env bash
# mini_espeak Distill-L2S recipe (arXiv 2206.12638): while CTC fine-tuning a speech SSL model on a small
# labelled set of one language (characters as output units), distil a frozen multilingual text model:
# the student's last hidden states are shrunk by the CTC argmax (blank groups dropped), the text model's
# states of the transcript are nearest-neighbour interpolated to the shrunk length, loss = CTC + λ·MSE
# after a learnable projection. λ = 0 is plain fine-tuning. Teachers from the mini zoo (egs/mini_espeak/ssl,
# linked in stage 4): text teacher text_ml (multilingual masked LM on text outside every transcript; stands
# in for InfoXLM / XLM-R), speech model ssl_ml (multilingual HuBERT, 8 x 192; stands in for XLSR).
#
#   ./run.sh                              # default config (~90 min on 2 idle cores: 36 fine-tunings)
#   ./run.sh --conf_tag smoke             # smoke config (2 languages, λ ∈ {0, 0.5}, 1 seed; a few minutes)
#   ./run.sh --stage 5 --stop_stage 7 --lambdas "0 0.5" --seeds 2   # some stages / a λ or seed subset
#   ./run.sh --teacher exp/xlsr53 --text_teacher exp/xlmr   # any speech / HF text checkpoint dirs instead
#   cmd_backend=slurm ./run.sh            # send the stages to Slurm (conf/slurm.conf)
set -euo pipefail

stage=1            # first stage to run
stop_stage=100     # last stage to run
nj=2               # parallel jobs for synthesis, features and decoding
conf_tag=default   # default | smoke: picks conf/*.yaml or conf/*_smoke.yaml and the corpus size
# empty = the conf_tag's default (default | smoke):
langs=             # fine-tuning (low-resource) languages, each its own char CTC model ("de ru pl" | "de ru")
lambdas=           # L2S weights on the raw text states, 0 = plain CTC fine-tuning ("0 0.5" | "0 0.5")
seeds=             # fine-tuning seeds; the spread is reported in RESULTS.md ("1 2 3" | "1")
n_label=           # labelled utterances per language for fine-tuning (60 | 8)
n_dev=             # validation utterances per language (20 | 3)
interpolation=nearest      # nearest (paper) | linear (ablation)
max_parallel=               # fine-tunings / decodes of one seed (all rows and languages) at once (default: the number of languages)
parallel_langs=             # former switch (false = --max_parallel 1)
threads=1                  # torch threads per training process (1: several run at once; 2 threads on a
                           # busy 2-core machine made each step several times slower)
text_layer=-1      # hidden-state index of the text model
teacher=           # speech model checkpoint dir (default: the zoo's ssl_ml, steps/zoo_teacher.sh)
text_teacher=      # text model dir, Hugging Face format (default: the zoo's text_ml)
scratch=true       # also a from-scratch row (exp/scratch): the speech teacher's architecture, random weights
text_control=false # also a control row (exp/randtext<λ>): the L2S term at λ = control_lambda from the text
                   # teacher's architecture and tokenizer with random weights: does the text model's training help?
control_lambda=0.5 # λ of the control row (conf/results.yaml names the λ = 0.5 row)
std_lambdas=0.5    # also rows exp/std<λ>: the L2S term at these λ with the text states standardised around
                   # their training-set mean (l2s.target_norm standardize; conf/results.yaml names λ = 0.5);
                   # the dev choice of stage 7 is among the lam<λ> (λ > 0) and std<λ> rows; '' = none
only_rows=         # stages 5-6 on these rows only (e.g. 'randtext0.5' to add the control to a finished run)
corpus_seed=1
help_message="Usage: $0 [--stage N] [--stop_stage N] [--conf_tag default|smoke] [--langs 'de ru'] [--lambdas '0 0.5'] [--seeds '1 2'] [--teacher DIR] [--text_teacher DIR] [--text_control true] [--std_lambdas 0.5]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

sfx=$(conf_suffix "$conf_tag")
if [ "$conf_tag" = smoke ]; then
  : "${langs:=de ru}" "${lambdas:=0 0.5}" "${seeds:=1}" "${n_label:=8}" "${n_dev:=3}"
else
  : "${langs:=de ru pl}" "${lambdas:=0 0.5}" "${seeds:=1 2 3}" "${n_label:=60}" "${n_dev:=20}"
fi
corpus_conf=../conf/corpus_${conf_tag}.yaml
[ "$parallel_langs" != false ] || max_parallel=1
: "${max_parallel:=$(wc -w <<< "$langs")}"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: synthesise mini_espeak ($conf_tag) with espeak-ng"
  mkdir -p data
  speechkd-synth-corpus --config "$corpus_conf" --out data/corpus --nj "$nj" --seed "$corpus_seed"
  for s in train dev test; do ln -sfn corpus/data/$s data/$s; done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: 80-dim Fbank (ark/scp) + global CMVN"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" data dump/fbank train dev test
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: per language: $n_label labelled train utterances, $n_dev dev, all test; character units"
  for l in $langs; do
    steps/make_labelled_subset.sh --n "$n_label" data/train data/train_sub_$l "$l"
    steps/make_labelled_subset.sh --n "$n_dev" data/dev data/dev_$l "$l"
    steps/make_labelled_subset.sh --n 100000 data/test data/test_$l "$l" 2>/dev/null   # all (no warning)
    # characters of all the language's training transcripts (the labelled subset may miss rare ones)
    mkdir -p data/local
    awk -v l="$l" 'NR == FNR {if ($2 == l) keep[$1] = 1; next} ($1 in keep)' \
      data/train/utt2lang data/train/text > data/local/text_train_$l
    speechkd-make-tokens --kind char --text data/local/text_train_$l --out data/token_char_$l
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: teachers: speech model exp/teacher/model (${teacher:-zoo ssl_ml}), text model" \
      "exp/text_lm/model (${text_teacher:-zoo text_ml})"
  steps/zoo_teacher.sh --conf_tag "$conf_tag" --teacher "$teacher" ssl_ml exp/teacher/model
  steps/zoo_teacher.sh --conf_tag "$conf_tag" --teacher "$text_teacher" text_ml exp/text_lm/model
  if [ "$text_control" = true ]; then
    log "stage 4: control text model exp/text_rand/model: exp/text_lm/model's architecture, random weights"
    speechkd-train-text-model --random-like exp/text_lm/model --out exp/text_rand/model --seed 0
  fi
fi

# rows: lam<λ> (fine-tuning from the speech teacher with L2S weight λ; λ = 0: plain), scratch (the
# teacher's architecture from random weights, plain CTC: what the teacher itself is worth) and randtext<λ>
# (the L2S term from a random-weight text model: what the text teacher's training is worth)
rows="$(for lam in $lambdas; do printf 'lam%s ' "$lam"; done)"
[ "$scratch" = true ] && rows="$rows scratch"
[ "$text_control" = true ] && rows="$rows randtext$control_lambda"
for lam in $std_lambdas; do rows="$rows std$lam"; done
[ -z "$only_rows" ] || rows=$only_rows
# l2s_opts WEIGHT TEXT_MODEL STATES [more options]: sets the caller's opts to the L2S term's options for its
# language $l (text model exp/TEXT_MODEL/model, cached states exp/STATES/$l.pt)
l2s_opts() {
  opts=(--l2s.weight "$1" --l2s.text_model "exp/$2/model" --l2s.layer "$text_layer"
        --l2s.interpolation "$interpolation" --l2s.cache "exp/$3/$l.pt" "${@:4}")
}
# one fine-tuning run / one decode of a (row, seed, language) triple
finetune_one() {
  local row=$1 seed=$2 l=$3 dir=exp/$1/seed$2/$3 opts=()
  case $row in
    scratch) opts=("${scratch_finetune_opts[@]}") ;;
    std*) l2s_opts "${row#std}" text_lm l2s_text_states --l2s.target_norm standardize ;;
    randtext*) l2s_opts "${row#randtext}" text_rand l2s_text_states_rand ;;
    lam*) if nonzero "${row#lam}"; then l2s_opts "${row#lam}" text_lm l2s_text_states; fi ;;
  esac
  mkdir -p "$dir"
  ${cuda_cmd} --gpu 1 --num-threads "$threads" "$dir/train.log" \
    speechkd-finetune --config conf/finetune${sfx}.yaml --init exp/teacher/model \
      --train-data data/train_sub_$l --valid-data data/dev_$l --token-dir data/token_char_$l \
      --exp "$dir" --train.seed "$seed" --train.progress false "${opts[@]}"
}
decode_one() {   # test and dev (dev: the choice of λ, stage 7)
  local dir=exp/$1/seed$2/$3 s
  for s in test dev; do
    OMP_NUM_THREADS=$threads steps/decode_score.sh --nj 1 --cmd "$decode_cmd" --ref_file text --units char,word \
      "$dir/model" data/${s}_$3 "$dir/decode_$s" > "$dir/decode_score_$s.log"
  done
}
# per_seed FN SEED: FN ROW SEED LANG for every (row, language) of the seed, $max_parallel at once (one pool:
# a row with fewer languages than slots does not leave a slot idle); fails if any failed
per_seed() {
  local fn=$1 seed=$2 specs=() row l
  for row in $rows; do for l in $langs; do specs+=("$row $seed $l"); done; done
  run_pool "$max_parallel" "$fn" "${specs[@]}"
}

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for seed in $seeds; do
    log "stage 5: char CTC fine-tuning, seed $seed, rows: $rows; languages: $langs → exp/<row>/seed$seed/<lang>"
    per_seed finetune_one "$seed"
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  for seed in $seeds; do
    log "stage 6: decode + score (CER, WER) test_<lang> and dev_<lang>, seed $seed, rows: $rows"
    per_seed decode_one "$seed"
    for row in $rows; do
      for l in $langs; do grep -E "^\| decode_test/" exp/$row/seed$seed/$l/decode_score_test.log || true; done
    done
  done
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  cands=()
  for lam in $lambdas; do nonzero "$lam" && cands+=("$lam=exp/lam$lam"); done
  for lam in $std_lambdas; do cands+=("std$lam=exp/std$lam"); done
  if [ ${#cands[@]} -gt 0 ]; then
    log "stage 7: λ chosen per seed on the dev sets (avg CER) → exp/lam_dev/seed<s> (RESULTS row 'λ chosen on dev')"
    utils/select_on_dev.py --out exp/lam_dev --langs "$langs" --unit char "${cands[@]}"
  fi
  log "stage 7: RESULTS${sfx}.md (CER table; WER table as a section)"
  speechkd-make-results --spec conf/results_wer${sfx}.yaml --out exp/results_wer${sfx}.md --strict
  speechkd-make-results --spec conf/results${sfx}.yaml --out RESULTS${sfx}.md --strict
  log "done: $(pwd)/RESULTS${sfx}.md"
fi
