#!/usr/bin/env bash
# DistilXLSR, evaluation half (arXiv 2306.01303): CTC fine-tuning of the teacher and the distilled students
# (from ../../librispeech/distilxlsr) on each low-resource Common Voice language's small labelled set;
# phone error rate per language and their average -> RESULTS.md.
#
#   ./run.sh --commonvoice /data/cv-corpus-15.0-2023-09-08 --langs "ky sw tt" \
#       --models "teacher=/exp/ls/exp/teacher/model distilxlsr=/exp/ls/exp/distilxlsr/model"
#   ./run.sh --stage 5 --seeds "1 2 3" ...       # re-run fine-tuning with more seeds
#   cmd_backend=slurm ./run.sh ...              # send the stages to Slurm (conf/slurm.conf)
#
# Stages: 1 data (local/data.sh) | 2 phone transcription (phonemizer/espeak-ng, per language) |
# 3 labelled subsets (n_label utterances per language) | 4 phone inventory | 5 per-language CTC
# fine-tuning + decode + score for every model and seed | 6 RESULTS.md
#   ./run.sh --conf_tag dryrun            # the whole pipeline before a cluster job, on CPU: a fake Common Voice
#                   (de, tr), the models of ../../librispeech/distilxlsr's dry run (XLSR-53-size teacher with
#                   random weights, 12-layer students), 2 updates per fine-tuning (conf unchanged, the update
#                   counts overridden) -> RESULTS_dryrun.md
set -euo pipefail

stage=1
stop_stage=100
conf_tag=default   # default | dryrun (see above)
nj=                # decoding jobs (default 8; dryrun: 2)
commonvoice=       # cv-corpus-* folder (required for stage 1)
langs=             # evaluation languages (Common Voice codes; phonemizer must know them; default "ky sw tt")
n_label=           # labelled utterances per language (default 1000, ~1 h; dryrun: 2)
lib=../../librispeech/distilxlsr/exp
models="teacher=${lib}/teacher/model student_en=${lib}/student_en/model distilxlsr=${lib}/distilxlsr/model nojump=${lib}/nojump/model"
seeds=             # default "1 2"; dryrun: 1
ft_mode=per_lang   # per_lang (the paper) | joint (one model on all languages, scored per language)
ngpu=1        # GPUs per training job (> 1: torchrun with one process per GPU, through cmd.sh's runner)
nnodes=1      # nodes per training job (> 1: cmd_backend=slurm; one torchrun per node)
help_message="Usage: $0 --commonvoice <cv-corpus dir> [--langs 'ky sw'] [--models 'name=ckpt ...'] [--seeds '1 2']"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

dry=() sfx=""
case $conf_tag in
  default) : "${nj:=8}" "${langs:=ky sw tt}" "${n_label:=1000}" "${seeds:=1 2}" ;;
  dryrun)
    : "${nj:=2}" "${langs:=de tr}" "${n_label:=2}" "${seeds:=1}"
    dry=("${dryrun_train_opts[@]}") sfx=_dryrun
    dry_src=data/dryrun_src   # the fake corpus (stage 1)
    [ -n "$commonvoice" ] || commonvoice=$dry_src/cv-corpus-99.0-2026-01-01
    ;;
  *) echo "$0: --conf_tag default or dryrun, got '$conf_tag'" >&2; exit 1 ;;
esac

case $ft_mode in per_lang) ft_sets=$langs ;; joint) ft_sets=all ;; *) echo "$0: ft_mode per_lang|joint" >&2; exit 1 ;; esac

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: Common Voice data dirs ($langs)"
  [ -n "$commonvoice" ] || { echo "$0: --commonvoice <dir> is required" >&2; exit 1; }
  if [ "$conf_tag" = dryrun ] && [ "$commonvoice" = "$dry_src/cv-corpus-99.0-2026-01-01" ] && [ ! -d "$commonvoice" ]; then
    log "stage 1 (dryrun): a fake Common Voice ($langs) -> $dry_src"
    speechkd-make-fake-corpus commonvoice --out "$dry_src" --langs "$(echo $langs | tr ' ' ',')"
  fi
  local/data.sh --src "$commonvoice" --langs "$(echo $langs | tr ' ' ',')"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  for l in $langs; do
    for s in train dev test; do
      log "stage 2: phone transcription of data/${s}_$l"
      speechkd-phonemize data/${s}_$l --lang "$l"
    done
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: labelled subsets: $n_label utterances per language"
  for l in $langs; do
    steps/make_labelled_subset.sh --n "$n_label" data/train_$l data/ft_$l "$l"
  done
  for s in ft dev test; do
    utils/combine_data.sh data/${s}_all $(for l in $langs; do echo data/${s}_$l; done) > /dev/null
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: phone inventory of the labelled sets"
  speechkd-make-tokens --kind phone $(for l in $langs; do echo --text data/ft_$l/phones; done) --out data/token_phone
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for m in $models; do
    name=${m%%=*}
    ckpt=${m#*=}
    [ -f "$ckpt/config.yaml" ] || { echo "$0: --models: no checkpoint dir $ckpt for '$name' (run ../../librispeech/distilxlsr first${sfx:+ with --conf_tag dryrun})" >&2; exit 1; }
    for seed in $seeds; do
      log "stage 5: fine-tune $ckpt ($ft_mode: $ft_sets; seed $seed)"
      steps/finetune_langs.sh --cmd "$cuda_cmd" --ngpu "$ngpu" --nnodes "$nnodes" --nj "$nj" --train_config conf/finetune.yaml --seed "$seed" \
        --token_dir data/token_phone --finetune_opts "${dry[*]}" "$ckpt" "$ft_sets" exp/ft_$name/seed$seed
    done
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "stage 6: RESULTS$sfx.md"
  utils/lang_results_spec.py conf/results.yaml exp/results_spec.yaml --langs "$langs" --ft_mode "$ft_mode" \
    --rows "$models"
  speechkd-make-results --spec exp/results_spec.yaml --out "RESULTS$sfx.md" --strict
  log "done: $(pwd)/RESULTS$sfx.md"
fi
