#!/usr/bin/env bash
# Multilingual LibriSpeech pathways recipe ("Learning ASR pathways", arXiv 2209.05735) at real scale:
# MLS data dirs per language (one language cut to its 10 h limited-supervision set: the low-resource
# pathway) → shared SentencePiece units → Fbank → dense monolingual / multilingual streaming RNN-Ts →
# language-agnostic pruning → monolingual pruning → pathways joint training → streaming decode, WER per
# language → RESULTS.md. Not run on the development machines (needs the corpus and GPUs).
#
#   ./run.sh --mls_root /data/mls                              # all stages (GPU; days at this size)
#   ./run.sh --mls_root /data/mls --stop_stage 1               # data dirs only
#   ./run.sh --stage 4 --languages german,french,spanish,polish --low_resource pl
#   cmd_backend=slurm ./run.sh --mls_root /data/mls            # stages as Slurm jobs (conf/slurm.conf)
#   ./run.sh --conf_tag dryrun                                 # the whole pipeline before a cluster job, on CPU:
#                   a fake MLS (german, polish), the paper-size transducer of conf/*.yaml, 2 updates per training
#                   job and 1 per pruning round (conf unchanged, the update counts overridden) -> RESULTS_dryrun.md
set -euo pipefail

stage=1
stop_stage=100
conf_tag=default          # default | dryrun (see above)
mls_root=                 # folder holding mls_<language>[_opus] folders (stage 1)
languages=                # MLS names (default: german,french,spanish,italian,portuguese,polish; dryrun: german,polish)
low_resource=pl           # this language trains on its train_10h set only ("" = none)
nj=                       # feature extraction jobs (default 32; dryrun: 2)
vocab_size=1024           # shared SentencePiece unigram units (fewer where the text has fewer: hard limit off)
train_nj=                 # independent training/decoding runs at a time (languages, seeds; default 4; dryrun: 2)
seeds=                    # default "1 2"; dryrun: 1
beam=4
piece_ms=320
ngpu=1        # GPUs per training job (> 1: torchrun with one process per GPU, through cmd.sh's runner)
nnodes=1      # nodes per training job (> 1: cmd_backend=slurm; one torchrun per node)
help_message="Usage: $0 --mls_root <folder> [--stage N] [--stop_stage N] [--languages a,b] [--low_resource code]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

train_opts=() prune_opts=() results_sfx="" strict=true
case $conf_tag in
  default) : "${languages:=german,french,spanish,italian,portuguese,polish}" "${nj:=32}" "${train_nj:=4}" "${seeds:=1 2}" ;;
  dryrun)
    : "${languages:=german,polish}" "${nj:=2}" "${train_nj:=2}" "${seeds:=1}"
    dry_src=data/dryrun_src   # the fake corpus (stage 1)
    [ -n "$mls_root" ] || mls_root=$dry_src
    train_opts=("${dryrun_train_opts[@]}")
    # pruning rounds train prune.round_steps updates each (not train.max_steps)
    prune_opts=("${dryrun_train_opts[@]}" --prune.round_steps 1)
    results_sfx=_dryrun strict=false   # a dry run has 2 of the 6 languages: columns stay empty
    ;;
  *) echo "$0: --conf_tag default or dryrun, got '$conf_tag'" >&2; exit 1 ;;
esac
codes=$(local/lang_codes.py "$languages")

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  [ -n "$mls_root" ] || { echo "$0: --mls_root is required for stage 1" >&2; exit 1; }
  if [ "$conf_tag" = dryrun ] && [ "$mls_root" = "$dry_src" ] && [ ! -d "$dry_src" ]; then
    log "stage 1 (dryrun): a fake MLS tree ($languages) -> $dry_src"
    speechkd-make-fake-corpus mls --out "$dry_src" --langs "$languages"
  fi
  log "stage 1: MLS data dirs ($languages), multilingual train/dev/test (low-resource: ${low_resource:-none})"
  local/data.sh --src "$mls_root" --languages "$languages"
  for split in train dev test; do
    parts=()
    for c in $codes; do
      d=data/${split}_$c
      [ "$split" = train ] && [ "$c" = "$low_resource" ] && d=data/train_10h_$c
      parts+=("$d")
    done
    utils/combine_data.sh data/$split "${parts[@]}"
    utils/validate_data_dir.sh data/$split
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: SentencePiece units ($vocab_size) shared by all languages"
  speechkd-make-tokens --kind unigram --vocab-size "$vocab_size" --text data/train/text --out data/token_sp
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: 80-dim Fbank + global CMVN"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" data dump/fbank train dev test
fi

if [ "$stop_stage" -ge 4 ]; then   # stages 4-10: the method (same stage numbers in steps/pathways.sh)
  steps/pathways.sh --stage "$stage" --stop_stage "$stop_stage" --conf conf \
    --max_parallel "$train_nj" --seeds "$seeds" --beam "$beam" --piece_ms "$piece_ms" --token_dir data/token_sp \
    --cmvn dump/fbank/train/cmvn.npz --cmd "$cuda_cmd" --decode_cmd "$decode_cmd" --ngpu "$ngpu" --nnodes "$nnodes" \
    --train_opts "${train_opts[*]}" --prune_opts "${prune_opts[*]}" --results_sfx "$results_sfx" --strict "$strict" "$codes"
fi
