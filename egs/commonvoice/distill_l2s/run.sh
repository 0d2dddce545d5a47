#!/usr/bin/env bash
# Common Voice Distill-L2S recipe (arXiv 2206.12638) at real scale: CTC fine-tuning of XLSR-53 per
# low-resource language (characters), with and without distillation of a frozen InfoXLM text model
# (student's last hidden states shrunk by the CTC argmax, text states nearest-neighbour interpolated to
# that length, learnable projection, loss = CTC + λ·MSE). λ = 0 is plain fine-tuning.
# Needs local copies (nothing is downloaded):
#   - a Common Voice release folder (cv-corpus-*), read by local/data.sh;
#   - XLSR-53 (Hugging Face dir, e.g. facebook/wav2vec2-large-xlsr-53, or fairseq xlsr_53_56k.pt);
#   - InfoXLM (Hugging Face dir, e.g. microsoft/infoxlm-base; XLM-R works the same).
#
#   ./run.sh --cv_root /data/cv-corpus-15.0-2023-09-08 --xlsr /models/wav2vec2-large-xlsr-53 \
#       --text_model /models/infoxlm-base
#   ./run.sh ... --langs "ky tt" --lambdas "0 0.5" --seeds 1        # fewer runs
#   ./run.sh ... --stage 6 --stop_stage 7                           # re-run decoding/scoring only
#   cmd_backend=slurm ./run.sh ...                                   # one Slurm job per stage call (GPU for training)
#   ./run.sh --conf_tag dryrun            # the whole pipeline before a cluster job, on CPU: a fake Common Voice
#                   (de, tr), XLSR-53 and InfoXLM base with random weights (Hugging Face dirs; the text model's
#                   tokenizer trained on the fake transcripts), λ 0 and 0.5, 2 updates per fine-tuning (conf
#                   unchanged, the update counts overridden) -> RESULTS_dryrun.md
set -euo pipefail

stage=1
stop_stage=100
nj=                           # parallel data/decoding jobs (default 8; dryrun: 2)
cv_root=                      # Common Voice release folder (required for stage 1)
xlsr=                         # XLSR-53 checkpoint: HF directory or fairseq .pt (required for stage 4)
text_model=                   # InfoXLM / XLM-R HF directory (required for λ > 0)
langs=                        # low-resource Common Voice languages, each its own char CTC model (default
                              # "ky tt sv-SE ta mn"; dryrun: "de tr")
lambdas=                      # L2S weights; 0 = plain fine-tuning (default "0 0.25 0.5 1.0"; dryrun: "0 0.5")
seeds="1"                     # fine-tuning seeds (add more for the spread in RESULTS.md)
max_train_utts=0              # >0: labelled subset of this many train utterances per language
text_layer=-1                 # hidden-state index of the text model (HF convention)
interpolation=nearest         # nearest (paper) | linear (ablation)
audio=path                    # path (soundfile decodes mp3) | ffmpeg (pipe to 16 kHz wav)
conf_tag=default              # default | dryrun (see above) | <tag>: conf/finetune_<tag>.yaml
ngpu=1        # GPUs per training job (> 1: torchrun with one process per GPU, through cmd.sh's runner)
nnodes=1      # nodes per training job (> 1: cmd_backend=slurm; one torchrun per node)
help_message="Usage: $0 --cv_root DIR --xlsr PATH --text_model DIR [--langs 'ky tt'] [--lambdas '0 0.5'] [--seeds '1 2'] [--stage N] [--stop_stage N]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. steps/lib.sh   # log, conf_suffix, corpus_languages, run_pool

sfx=$(conf_suffix "$conf_tag") ft_sfx=$sfx dry=()
if [ "$conf_tag" = dryrun ]; then
  : "${nj:=2}" "${langs:=de tr}" "${lambdas:=0 0.5}"
  ft_sfx=""   # conf/finetune.yaml as it is, the update counts overridden
  dry=("${dryrun_train_opts[@]}" --finetune.freeze_encoder_steps 1)
  dry_src=data/dryrun_src
  [ -n "$cv_root" ] || cv_root=$dry_src/cv-corpus-99.0-2026-01-01
  [ -n "$xlsr" ] || xlsr=$dry_src/xlsr_53_random
  [ -n "$text_model" ] || text_model=$dry_src/infoxlm_base_random
else
  : "${nj:=8}" "${langs:=ky tt sv-SE ta mn}" "${lambdas:=0 0.25 0.5 1.0}"
fi
lang_csv=$(echo $langs | tr ' ' ',')

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: Common Voice data dirs for $lang_csv"
  [ -n "$cv_root" ] || { echo "$0: --cv_root is required for stage 1" >&2; exit 1; }
  if [ "$conf_tag" = dryrun ] && [ "$cv_root" = "$dry_src/cv-corpus-99.0-2026-01-01" ] && [ ! -d "$cv_root" ]; then
    log "stage 1 (dryrun): a fake Common Voice ($langs) -> $dry_src"
    speechkd-make-fake-corpus commonvoice --out "$dry_src" --langs "$lang_csv"
  fi
  local/data.sh --src "$cv_root" --langs "$lang_csv" --audio "$audio"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: labelled training sets and character inventories"
  for l in $langs; do
    if [ "$max_train_utts" -gt 0 ]; then
      utils/subset_data_dir.sh --num "$max_train_utts" data/train_$l data/train_sub_$l
    else
      rm -rf data/train_sub_$l && cp -r data/train_$l data/train_sub_$l
    fi
    utils/validate_data_dir.sh data/train_sub_$l
    speechkd-make-tokens --kind char --text data/train_$l/text --out data/token_char_$l
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: import XLSR-53 ($xlsr) as an SSL checkpoint"
  [ -n "$xlsr" ] || { echo "$0: --xlsr is required for stage 3" >&2; exit 1; }
  if [ "$conf_tag" = dryrun ] && [ "$xlsr" = "$dry_src/xlsr_53_random" ] && [ ! -d "$xlsr" ]; then
    log "stage 3 (dryrun): XLSR-53 with random weights, as a Hugging Face directory -> $xlsr"
    speechkd-make-random-checkpoint --arch xlsr_53 --format hf --out "$xlsr"
  fi
  if [ "$conf_tag" = dryrun ] && [ "$text_model" = "$dry_src/infoxlm_base_random" ] && [ ! -d "$text_model" ]; then
    log "stage 3 (dryrun): InfoXLM base with random weights, tokenizer from the fake transcripts -> $text_model"
    speechkd-make-random-checkpoint --arch infoxlm_base --out "$text_model" $(for l in $langs; do echo --text data/train_$l/text; done)
  fi
  mkdir -p exp/xlsr
  ${train_cmd} exp/xlsr/import.log speechkd-import-checkpoint --src "$xlsr" --out exp/xlsr/model --kind ssl
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for seed in $seeds; do
    for lam in $lambdas; do
      for l in $langs; do
        dir=exp/lam${lam}/seed${seed}/$l
        log "stage 4: char CTC fine-tuning of XLSR, $l, λ=$lam, seed $seed → $dir"
        l2s_opt=()
        if nonzero "$lam"; then
          [ -n "$text_model" ] || { echo "$0: --text_model is required for λ > 0" >&2; exit 1; }
          l2s_opt=(--l2s.weight "$lam" --l2s.text_model "$text_model" --l2s.layer "$text_layer"
                   --l2s.interpolation "$interpolation" --l2s.cache exp/l2s_text_states/$l.pt)
        fi
        mkdir -p "$dir"
        ${cuda_cmd} --gpu "$ngpu" --nodes "$nnodes" --mem 32G --time 24:00:00 "$dir/train.log" \
          speechkd-finetune --config conf/finetune${ft_sfx}.yaml --init exp/xlsr/model \
            --train-data data/train_sub_$l --valid-data data/dev_$l --token-dir data/token_char_$l \
            --exp "$dir" --train.seed "$seed" "${l2s_opt[@]}" "${dry[@]}"
      done
    done
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for seed in $seeds; do
    for lam in $lambdas; do
      for l in $langs; do
        dir=exp/lam${lam}/seed${seed}/$l
        log "stage 5: decode + score (CER, WER) test_$l ($dir)"
        steps/decode_score.sh --nj "$nj" --cmd "$decode_cmd" --ref_file text --units char,word \
          "$(best_model "$dir")" data/test_$l "$dir/decode_test"
      done
    done
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "stage 6: RESULTS$sfx.md (one column per language of --langs; rows: the λ of conf/results.yaml that were run)"
  for t in results results_wer; do
    utils/lang_results_spec.py conf/$t.yaml exp/${t}_spec.yaml --langs "$langs" --drop_unrun
  done
  speechkd-make-results --spec exp/results_wer_spec.yaml --out exp/results_wer.md --strict
  speechkd-make-results --spec exp/results_spec.yaml --out "RESULTS$sfx.md" --strict
  log "done: $(pwd)/RESULTS$sfx.md"
fi
