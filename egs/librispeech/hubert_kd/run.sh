#!/usr/bin/env bash
# hubert_kd on LibriSpeech (arXiv 2210.15631): a real HuBERT Base checkpoint (fairseq .pt or Hugging Face
# directory) is distilled on train-clean-100 into shallow & wide (2 x 768) and deep & thin (12 layers, same
# parameter budget) students, with and without the discriminative loss, with the waveform CNN or an Fbank
# front-end (stage A: front-end only; stage B: the rest), then CTC fine-tuned on Libri-Light 10h / 1h /
# 10min, decoded on test-clean/test-other and summarised in RESULTS.md (WER, params, real-time factor).
#
#   ./run.sh --src /data/LibriSpeech --finetune_src /data/librispeech_finetuning \
#            --teacher_ckpt /data/models/hubert_base_ls960.pt
#   ./run.sh --stage 5 --students "sw sw_disc"          # only some students
#   cmd_backend=slurm ./run.sh ...                      # stages to Slurm (conf/slurm.conf)
#   ./run.sh --conf_tag dryrun                          # the whole pipeline before a cluster job, on CPU: the
#                       paper-size teacher (random weights) and students, a fake LibriSpeech, 2 updates per
#                       training stage (conf unchanged, the update counts overridden) -> RESULTS_dryrun.md
set -euo pipefail

stage=1
stop_stage=100
conf_tag=default           # default | dryrun (see above)
nj=                        # feature / decoding jobs (default 16; dryrun: 2)
src=                       # LibriSpeech folder (train-clean-100, dev-clean, test-clean, test-other)
finetune_src=              # librispeech_finetuning folder (Libri-Light 10h / 1h / 10min)
teacher_ckpt=              # HuBERT Base: fairseq hubert_base_ls960.pt or a HF facebook/hubert-base-ls960 directory
students="sw sw_disc dt dt_disc fb_disc"
ft_sets="10h 1h 10min"
test_sets="test_clean test_other"
train_set=train_clean_100
valid_set=dev_clean
fb_freeze=true
seed=1
ngpu=1        # GPUs per training job (> 1: torchrun with one process per GPU, through cmd.sh's runner)
nnodes=1      # nodes per training job (> 1: cmd_backend=slurm; one torchrun per node)
help_message="Usage: $0 --src <LibriSpeech> --finetune_src <librispeech_finetuning> --teacher_ckpt <hubert .pt | HF dir> [--stage N] [--students '...']"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool, dryrun_train_opts

sfx=$(conf_suffix "$conf_tag")
dry=()   # speechkd-distill / -finetune overrides of a dry run: the configs' models, 2 updates, small batches
case $conf_tag in
  default) : "${nj:=16}" ;;
  dryrun)
    : "${nj:=2}"
    dry=("${dryrun_train_opts[@]}")
    dry_src=data/dryrun_src   # the fake corpus (stage 1)
    if [ -z "$src" ]; then src=$dry_src/LibriSpeech; finetune_src=$dry_src/librispeech_finetuning; fi
    ;;
  *) echo "$0: --conf_tag default or dryrun, got '$conf_tag'" >&2; exit 1 ;;
esac
cmvn=dump/fbank/$train_set/cmvn.npz

student_opts() {
  case $1 in
    sw)      echo "--student.preset shallow_wide --student.init jump --student.head expand_last" ;;
    sw_disc) echo "$(student_opts sw) --loss.w_disc 1.0" ;;
    dt)      echo "--student.preset deep_thin --student.init none --student.head layerwise" ;;
    dt_disc) echo "$(student_opts dt) --loss.w_disc 1.0" ;;
    fb)      echo "$(student_opts sw) --student.frontend fbank --data.cmvn $cmvn" ;;
    fb_disc) echo "$(student_opts fb) --loss.w_disc 1.0" ;;
    *) echo "run.sh: unknown student '$1'" >&2; return 1 ;;
  esac
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: data dirs from $src (+ fine-tuning subsets from ${finetune_src:-<none>})"
  [ -n "$src" ] || { echo "$0: --src <LibriSpeech folder> is required for stage 1" >&2; exit 1; }
  if [ "$conf_tag" = dryrun ] && [ "$src" = "$dry_src/LibriSpeech" ] && [ ! -d "$src" ]; then
    log "stage 1 (dryrun): a fake LibriSpeech + Libri-Light tree -> $dry_src"
    speechkd-make-fake-corpus librispeech --out "$dry_src"
  fi
  local/data.sh --src "$src" --finetune_src "$finetune_src" \
    --subsets "$(echo "$train_set $valid_set $test_sets" | tr _ - | tr ' ' ,)"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: character inventory"
  speechkd-make-tokens --kind char --text data/$train_set/text --out data/token_char
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: 80-dim Fbank + global CMVN (Fbank students)"
  # shellcheck disable=SC2046
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" --cmvn_set "$train_set" data dump/fbank \
    $train_set $valid_set $test_sets $(for f in $ft_sets; do [ -d data/train_$f ] && echo train_$f; done)
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  if [ "$conf_tag" = dryrun ] && [ -z "$teacher_ckpt" ]; then
    log "stage 4 (dryrun): HuBERT Base with random weights and its pre-training head (what importing fairseq's" \
        "hubert_base_ls960.pt gives) -> exp/teacher/model"
    speechkd-make-random-checkpoint --arch hubert_base --format speechkd --out exp/teacher/model
  else
    log "stage 4: import the HuBERT teacher $teacher_ckpt"
    [ -n "$teacher_ckpt" ] || { echo "$0: --teacher_ckpt is required for stage 4" >&2; exit 1; }
    speechkd-import-checkpoint --src "$teacher_ckpt" --out exp/teacher/model --kind ssl
  fi
  # L_disc students need the teacher's codebook head, which Hugging Face HubertModel directories drop
  if [[ " $students " == *_disc\ * ]] && [ "$(utils/yaml_get.py exp/teacher/model/config.yaml model.num_labels)" = 0 ]; then
    echo "$0: the *_disc students (L_disc) need the teacher's HuBERT head (final_proj + label embeddings);" \
         "${teacher_ckpt:-the teacher} has none (Hugging Face HubertModel checkpoints drop it): pass fairseq's" \
         "hubert_base_ls960.pt as --teacher_ckpt, or --students without *_disc" >&2
    exit 1
  fi
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for s in $students; do
    dir=exp/$s
    mkdir -p "$dir"
    init_from=()
    if [[ $s == fb* ]]; then
      fe=exp/fb_frontend
      if [ ! -f "$fe/model/model.pt" ]; then
        log "stage 5: Fbank front-end stage A -> $fe"
        mkdir -p "$fe"
        # shellcheck disable=SC2046
        ${cuda_cmd} --gpu "$ngpu" --nodes "$nnodes" --time 24:00:00 "$fe/distill.log" \
          speechkd-distill --config conf/distill_frontend.yaml --teacher exp/teacher/model \
            --train-data data/$train_set --exp "$fe" $(student_opts fb) --train.seed "$seed" "${dry[@]}"
      fi
      init_from=(--student.init_from "$fe/model" --student.freeze_frontend "$fb_freeze")
    fi
    log "stage 5: distil $s -> $dir"
    # shellcheck disable=SC2046
    ${cuda_cmd} --gpu "$ngpu" --nodes "$nnodes" --time 72:00:00 "$dir/distill.log" \
      speechkd-distill --config conf/distill.yaml --teacher exp/teacher/model --train-data data/$train_set \
        --valid-data data/$valid_set --exp "$dir" $(student_opts "$s") "${init_from[@]}" --train.seed "$seed" \
        "${dry[@]}"
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  for entry in exp/ft_teacher:exp/teacher/model $(for s in $students; do echo "exp/$s:exp/$s/model"; done); do
    dir=${entry%%:*}; init=${entry#*:}
    for f in $ft_sets; do
      log "stage 6: CTC fine-tuning of $init on train_$f -> $dir/ft$f"
      mkdir -p "$dir/ft$f"
      ${cuda_cmd} --gpu "$ngpu" --nodes "$nnodes" --time 24:00:00 "$dir/ft$f/train.log" \
        speechkd-finetune --config conf/finetune.yaml --init "$init" --train-data data/train_$f \
          --valid-data data/$valid_set --token-dir data/token_char --exp "$dir/ft$f" --train.seed "$seed" \
          "${dry[@]}" ${dry:+--finetune.freeze_encoder_steps 1}
    done
  done
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  for dir in exp/ft_teacher $(for s in $students; do echo "exp/$s"; done); do
    for f in $ft_sets; do
      for t in $test_sets; do
        log "stage 7: decode + score $t ($dir/ft$f)"
        # the best checkpoint on $valid_set (conf/finetune.yaml: best_metric ter), the last one if none was kept
        model=$(best_model "$dir/ft$f")
        steps/decode_score.sh --nj "$nj" --cmd "$decode_cmd" --units word,char "$model" data/$t \
          "$dir/ft$f/decode_$t"
      done
    done
  done
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: RESULTS${sfx}.md"
  strict=(--strict); [ "$conf_tag" = dryrun ] && strict=()   # a dry run may leave rows out (--students ...)
  speechkd-make-results --spec conf/results.yaml --out RESULTS${sfx}.md "${strict[@]}"
  log "done: $(pwd)/RESULTS${sfx}.md (inference speed: python \$SPEECHKD_ROOT/bench/frontend.py)"
fi
