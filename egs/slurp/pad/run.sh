#!/usr/bin/env bash
# PAD on SLURP (arXiv 2303.03600) at real scale: distil a frozen BERT-like text model into a pretrained
# speech SSL model (HuBERT / wav2vec 2.0 Base) by metric-based alignment at utterance, word and sub-word
# level (prior-weighted units, adaptive combination), then fine-tune intent classification
# (scenario_action) and report test accuracy; the metric-based baselines and ablations are the same code
# (steps/pad_distill.sh; stages 2-5 are steps/pad_slu.sh). SLURP has no word times: stage 2 fine-tunes a
# character CTC aligner from the speech model (conf/aligner.yaml) and force-aligns the transcripts
# (data/{train,devel}/words.ctm); --aligner false: spans from letter counts (conf/pad.yaml units.ctm_fallback: chars). Needs local copies (nothing is downloaded):
#   - the SLURP checkout (dataset/slurp/*.jsonl) and its audio (slurp_real/), read by local/data.sh;
#   - the speech model (HF dir, e.g. facebook/hubert-base-ls960, or fairseq hubert_base_ls960.pt);
#   - the text model (HF dir, e.g. bert-base-uncased).
#
#   ./run.sh --slurp_root /data/slurp --speech_model /models/hubert-base-ls960 --text_model /models/bert-base-uncased
#   ./run.sh ... --methods "cosine pad" --seeds "1 2 3"            # fewer / more runs
#   ./run.sh ... --per_intent 10                                    # low-resource intent training
#   cmd_backend=slurm ./run.sh ...                                  # GPU jobs through conf/slurm.conf
set -euo pipefail

stage=1
stop_stage=100
slurp_root=          # SLURP checkout (required for stage 1)
speech_model=        # speech SSL checkpoint: HF dir or fairseq .pt (required for stage 2)
text_model=          # BERT-like HF encoder dir (required from stage 3)
# empty = the default of steps/pad_slu.sh (which owns them for every real SLU recipe; shown in brackets)
methods=             # distillation methods ["mse cosine infonce uniform pad pad_noprior pad_word"]
seeds=               # seeds of the methods in all_seed_methods ["1 2"]
all_seed_methods=    # methods run with every seed, the rest with the first ["none pad"]
per_intent=          # 0: the whole training set labels the intent head; N > 0: N utterances per intent [0]
aligner=             # word spans: true = char CTC forced alignment (stage 2), false = letter counts [true]
conf_tag=default     # picks conf/*.yaml (default) or conf/*_<tag>.yaml
ngpu=1        # GPUs per training job (> 1: torchrun with one process per GPU, through cmd.sh's runner)
nnodes=1      # nodes per training job (> 1: cmd_backend=slurm; one torchrun per node)
help_message="Usage: $0 --slurp_root DIR --speech_model PATH --text_model DIR [--methods '...'] [--seeds '1 2'] [--stage N] [--stop_stage N]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: SLURP data dirs (train, devel, test) with utt2intent = scenario_action"
  [ -n "$slurp_root" ] || { echo "$0: --slurp_root is required" >&2; exit 1; }
  local/data.sh --src "$slurp_root" --utt2dur true
fi

# stages 2-5 (import, distillation, intent classification, RESULTS.md): the same for every real SLU corpus
step_opts=()
for v in methods seeds all_seed_methods per_intent aligner; do [ -z "${!v}" ] || step_opts+=("--$v" "${!v}"); done
steps/pad_slu.sh --stage "$stage" --stop_stage "$stop_stage" --conf_tag "$conf_tag" --valid data/devel \
  --speech_model "$speech_model" --text_model "$text_model" --cuda_cmd "$cuda_cmd" --decode_cmd "$decode_cmd" --ngpu "$ngpu" --nnodes "$nnodes" \
  "${step_opts[@]}"
