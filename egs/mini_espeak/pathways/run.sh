#!/usr/bin/env bash
# mini_espeak pathways recipe ("Learning ASR pathways", arXiv 2209.05735): streaming char RNN-T on 4
# languages (Italian low-resource) → dense monolingual / dense multilingual models → language-agnostic
# iterative pruning → monolingual pruning (one mask per language) → pathways: joint multilingual training
# where a batch of language l runs through mask_l and updates only pathway l → per-language sparse
# exports → streaming (chunked) decoding, WER/CER per language → RESULTS.md (+ mask-overlap heatmap).
# Stages 4-10 are the method's stages in ../../TEMPLATE/steps/pathways.sh (shared with egs/mls/pathways):
#   4 dense multilingual  5 dense monolingual  6 language-agnostic pruning  7 monolingual pruning
#   8 pathways (per seed)  9 streaming decode + score  10 heatmap + RESULTS.md
#
#   ./run.sh                              # default config (~15 min on 2 idle cores)
#   ./run.sh --conf_tag smoke             # smoke config (a few minutes)
#   ./run.sh --stage 8 --stop_stage 10    # re-run only some stages (each reads only earlier outputs)
#   cmd_backend=slurm ./run.sh            # send the stages to Slurm (conf/slurm.conf)
set -euo pipefail

stage=1            # first stage to run
stop_stage=100     # last stage to run
nj=2               # parallel jobs: synthesis and features (and the runs below unless --max_parallel)
max_parallel=      # independent training/decoding runs at once (one thread each) (default: $nj)
conf_tag=default   # default | smoke: picks conf/*.yaml or conf/*_smoke.yaml
seeds="1 2"        # seeds of the language-agnostic and pathways runs (spread in RESULTS.md)
mask_seed=1        # seed of the monolingual pruning runs whose masks the pathways use
mono_steps_ratio=1.0   # dense monolingual models train this fraction of the multilingual model's steps (1.0: as many
                       # updates as the multilingual model; the first table used 0.34)
beam=4             # also decode with modified beam search of this width (0 = greedy only)
piece_ms=320       # streaming decode: Fbank fed in pieces of this many ms
corpus_seed=1
help_message="Usage: $0 [--stage N] [--stop_stage N] [--conf_tag default|smoke] [--seeds '1 2'] [--beam 4]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

sfx=$(conf_suffix "$conf_tag")
langs=$(corpus_languages conf/corpus_${conf_tag}.yaml)

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: synthesise the 4-language corpus ($conf_tag) with espeak-ng"
  speechkd-synth-corpus --config conf/corpus_${conf_tag}.yaml --out data/corpus --nj "$nj" --seed "$corpus_seed"
  for s in train dev test; do ln -sfn corpus/data/$s data/$s; done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: character units shared by all languages"
  speechkd-make-tokens --kind char --text data/train/text --out data/token_char
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: 80-dim Fbank (ark/scp) + global CMVN of train"
  steps/make_feats_sets.sh --nj "$nj" --cmd "$feats_cmd" data dump/fbank train dev test
fi

if [ "$stop_stage" -ge 4 ]; then   # stages 4-10: the method (same stage numbers in steps/pathways.sh)
  steps/pathways.sh --stage "$stage" --stop_stage "$stop_stage" --conf conf --sfx "$sfx" --max_parallel "${max_parallel:-$nj}" \
    --seeds "$seeds" --mask_seed "$mask_seed" --mono_steps_ratio "$mono_steps_ratio" --beam "$beam" \
    --piece_ms "$piece_ms" --token_dir data/token_char --cmvn dump/fbank/train/cmvn.npz \
    --cmd "$cuda_cmd" --decode_cmd "$decode_cmd" "$langs"
fi
