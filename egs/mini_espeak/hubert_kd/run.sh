#!/usr/bin/env bash
# hubert_kd on mini_espeak English (arXiv 2210.15631, "Exploring effective distillation of self-supervised
# speech models for automatic speech recognition"): the zoo's English HuBERT teacher with a waveform-CNN
# front-end (ssl_en_cnn, 8 x 192; egs/mini_espeak/ssl) is distilled into students of equal size but
# different shape (shallow & wide: 2 x 192, layer-jumping init; deep & thin: 8 layers, width solved for the
# same parameter count, random init; so the shape is compared with S&W from random weights too, sw_rand),
# with and without the discriminative loss (KL over HuBERT's codebook), and with the CNN or an Fbank
# front-end (stage A: front-end only, L1 to the teacher's CNN+projection output; stage B: the rest), beside
# a from-scratch row (S&W architecture, random weights, no distillation). Every model is then CTC fine-tuned (characters) on 100 % / 10 % / 2 % of the training set,
# decoded, scored (CER/WER), and RESULTS.md reports CER per fine-tuning size, parameters and decoding
# real-time factor.
#
#   ./run.sh                              # default config (~45 min on an idle 2-core machine)
#   ./run.sh --conf_tag smoke             # smoke config (a few minutes)
#   ./run.sh --stage 6 --stop_stage 9     # re-run some stages (each reads only earlier outputs)
#   ./run.sh --stage 7 --max_parallel 1   # fine-tune + decode one model at a time (stage 7 = 7 and 8)
#   ./run.sh --students "sw sw_disc"      # a subset of the students
#   ./run.sh --teacher /path/to/hubert_base   # any checkpoint dir as the teacher (speechkd-import-checkpoint)
#   cmd_backend=slurm ./run.sh            # send the stages to Slurm (conf/slurm.conf)
set -euo pipefail
cmdline=$0   # the command as typed, for RESULTS.md
for a in "$@"; do case $a in *' '*) cmdline+=" '$a'" ;; *) cmdline+=" $a" ;; esac; done

stage=1
stop_stage=100
nj=2                       # parallel jobs for synthesis and features
conf_tag=default           # default | smoke
students="sw sw_disc sw_rand dt dt_disc fb_disc"   # see student_opts below (also: fb)
scratch=true               # also a from-scratch row: the S&W architecture fine-tuned from random weights
                           # (exp/scratch; everything trains, the CNN too; needs an S&W student)
key_students="sw sw_disc sw_rand dt scratch"   # the rows the claims compare: run with every seed in $seeds
seeds="1 2 3"
ft_sizes="100 10 2"        # % of the training set labelled for CTC fine-tuning
fb_freeze=true             # stage B keeps the distilled Fbank front-end frozen
teacher=                   # teacher checkpoint dir (default: the zoo's ssl_en_cnn, steps/zoo_teacher.sh)
sw_layers=                 # S&W depth at the teacher's width (default: 2 = L_t/4; smoke: 1)
dt_layers=                 # D&T depth, width solved for the S&W parameter count (default: the teacher's 8; smoke: 2)
max_parallel=2             # distillations / fine-tunings run at once (one torch thread each)
jobs=                      # former name of --max_parallel (still accepted)
corpus_seed=1
results_conf=conf/results.yaml   # table spec of stage 9 (conf/results_skip_last.yaml: the L_disc cause test)
results_name=RESULTS             # stage 9 writes <results_name>${sfx}.md
help_message="Usage: $0 [--stage N] [--stop_stage N] [--conf_tag default|smoke] [--students '...'] [--seeds '1 2'] [--teacher DIR]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

sfx=$(conf_suffix "$conf_tag")
[ -z "$jobs" ] || max_parallel=$jobs
if [ "$conf_tag" = smoke ]; then : "${sw_layers:=1}" "${dt_layers:=2}"; else : "${sw_layers:=2}" "${dt_layers:=8}"; fi
# one intra-op thread per process: parallel jobs on a few shared cores otherwise thrash (measured here:
# MFCC extraction 104 utt/s with 1 thread vs 1.6 utt/s with 2 on a loaded 2-core machine)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
cmvn=dump/fbank/train/cmvn.npz

# Student structures (speechkd-distill overrides on top of conf/distill*.yaml).
student_opts() {
  case $1 in
    sw)      echo "--student.n_layers $sw_layers --student.init jump --student.head expand_last" ;;
    sw_disc) echo "$(student_opts sw) --loss.w_disc 1.0" ;;
    sw_nl)   echo "$(student_opts sw) --distill.skip_last true" ;;   # no regression onto the codebook layer
    sw_nl_disc) echo "$(student_opts sw_nl) --loss.w_disc 1.0" ;;
    sw_rand) echo "--student.n_layers $sw_layers --student.init none --student.head expand_last" ;;  # D&T's init
    sw_rand_disc) echo "$(student_opts sw_rand) --loss.w_disc 1.0" ;;   # L_disc without a copied top layer
    dt)      echo "--student.n_layers $dt_layers --student.match_layers $sw_layers --student.init none --student.head layerwise" ;;
    dt_disc) echo "$(student_opts dt) --loss.w_disc 1.0" ;;
    fb)      echo "$(student_opts sw) --student.frontend fbank --data.cmvn $cmvn" ;;
    fb_disc) echo "$(student_opts fb) --loss.w_disc 1.0" ;;
    *) echo "run.sh: unknown student '$1'" >&2; return 1 ;;
  esac
}
seeds_of() { case " $key_students " in *" $1 "*) echo "$seeds" ;; *) echo "${seeds%% *}" ;; esac; }
# every fine-tuning start: teacher + students, as "<dir>:<init>"
model_dirs() {
  for seed in ${seeds%% *}; do echo "exp/ft_teacher/seed$seed:exp/teacher/model"; done
  for s in $students; do for seed in $(seeds_of "$s"); do echo "exp/$s/seed$seed:exp/$s/seed$seed/model"; done; done
  local arch
  arch=$(scratch_arch)
  if [ -n "$arch" ]; then   # the S&W architecture (a student's first seed), random weights
    for seed in $(seeds_of scratch); do echo "exp/scratch/seed$seed:exp/$arch/seed${seeds%% *}/model"; done
  fi
}
# the S&W student whose architecture the from-scratch row takes (none: no from-scratch row)
scratch_arch() {
  [ "$scratch" = true ] || return 0
  for s in sw sw_rand sw_disc; do case " $students " in *" $s "*) echo "$s"; return 0 ;; esac; done
  log "no S&W student (sw, sw_rand or sw_disc) in --students: no from-scratch row" >&2
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: synthesise English mini_espeak ($conf_tag) with espeak-ng"
  mkdir -p data
  speechkd-synth-corpus --config conf/corpus_${conf_tag}.yaml --out data/corpus --nj "$nj" --seed "$corpus_seed"
  for s in train dev test; do ln -sfn corpus/data/$s data/$s; done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: character inventory"
  speechkd-make-tokens --kind char --text data/train/text --out data/token_char
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: 80-dim Fbank + global CMVN (input of the Fbank students; the teacher reads waveforms)"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" data dump/fbank train dev test
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  n_all=$(wc -l < data/train/utt2spk)
  for p in $ft_sizes; do
    n=$(( (n_all * p + 50) / 100 )); [ "$n" -ge 4 ] || n=4
    log "stage 4: labelled subset ft$p: $n of $n_all utterances"
    steps/make_labelled_subset.sh --n "$n" data/train data/train_ft$p en
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: teacher exp/teacher/model: ${teacher:-zoo ssl_en_cnn (English HuBERT, waveform CNN)}"
  steps/zoo_teacher.sh --conf_tag "$conf_tag" --teacher "$teacher" ssl_en_cnn exp/teacher/model
fi

distil() {  # <student> <seed>: (Fbank: stage A) + distillation -> exp/<student>/seed<seed>
  local s=$1 seed=$2 dir=exp/$1/seed$2 init_from=()
  mkdir -p "$dir"
  if [[ $s == fb* ]]; then
    local fe=exp/${s}_frontend/seed$seed
    if [ ! -f "$fe/model/model.pt" ]; then
      log "stage 6: Fbank front-end stage A ($s, seed $seed) -> $fe"
      mkdir -p "$fe"
      # shellcheck disable=SC2046
      ${cuda_cmd} --gpu 1 "$fe/distill.log" \
        speechkd-distill --config conf/distill_frontend${sfx}.yaml --teacher exp/teacher/model \
          --train-data data/train --exp "$fe" $(student_opts fb) --train.seed "$seed"
    fi
    init_from=(--student.init_from "$fe/model" --student.freeze_frontend "$fb_freeze")
  fi
  log "stage 6: distil $s (seed $seed) -> $dir"
  # shellcheck disable=SC2046
  ${cuda_cmd} --gpu 1 "$dir/distill.log" \
    speechkd-distill --config conf/distill${sfx}.yaml --teacher exp/teacher/model --train-data data/train \
      --valid-data data/dev --exp "$dir" $(student_opts "$s") "${init_from[@]}" --train.seed "$seed"
}

finetune_decode() {  # <run dir> <init model> <size>: CTC fine-tuning, then decode + score the test set
  local dir=$1 init=$2 p=$3 seed=${1##*seed}
  if [ -f "$dir/ft$p/decode_test/score.json" ]; then log "stage 7: $dir/ft$p already scored, skipped"; return; fi
  local scratch_opts=()
  case $dir in exp/scratch/*) scratch_opts=("${scratch_finetune_opts[@]}") ;; esac
  log "stage 7: CTC fine-tuning of $init${scratch_opts[*]:+ (architecture only: from scratch)} on ft$p (seed $seed) -> $dir/ft$p"
  mkdir -p "$dir/ft$p"
  ${cuda_cmd} --gpu 1 "$dir/ft$p/train.log" \
    speechkd-finetune --config conf/finetune${sfx}.yaml --init "$init" --train-data data/train_ft$p \
      --valid-data data/dev --token-dir data/token_char --exp "$dir/ft$p" --train.seed "$seed" "${scratch_opts[@]}"
  log "stage 8: decode + score test ($dir/ft$p; one job, so decode.yaml holds the real-time factor)"
  steps/decode_score.sh --nj 1 --cmd "$decode_cmd" --units word,char "$dir/ft$p/model" data/test \
    "$dir/ft$p/decode_test" > "$dir/ft$p/decode_score.log"
}

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  specs=()
  for s in $students; do
    for seed in $(seeds_of "$s"); do specs+=("$s $seed"); done
  done
  run_pool "$max_parallel" distil "${specs[@]}"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 7 ]; then
  specs=()
  for entry in $(model_dirs); do
    for p in $ft_sizes; do specs+=("${entry%%:*} ${entry#*:} $p"); done
  done
  run_pool "$max_parallel" finetune_decode "${specs[@]}"
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  log "stage 9: ${results_name}${sfx}.md (params and RTF per row added to the table spec by local/add_params_rtf.py)"
  mkdir -p exp
  python3 local/add_params_rtf.py --spec "$results_conf" --sizes "$ft_sizes" --out exp/results_spec.yaml \
    --command "$cmdline"
  # shellcheck disable=SC2046
  python3 local/disc_curve.py --out_png "${results_name/RESULTS/disc_kl}${sfx}.png" --out_md exp/disc_section.md \
    $(for s in $students; do case $s in *_disc) for seed in $(seeds_of "$s"); do echo "exp/$s/seed$seed"; done ;; esac; done)
  strict=(--strict); [ -s exp/results_spec.partial ] && strict=()   # rows not run at every size: empty cells
  speechkd-make-results --spec exp/results_spec.yaml --out "${results_name}${sfx}.md" "${strict[@]}"
  log "done: $(pwd)/${results_name}${sfx}.md"
fi
