#!/usr/bin/env bash
# CTC fine-tune one pretrained/distilled SSL model on each language's small labelled set (one model per
# language), then decode and score each language's test set.
#
#   steps/finetune_langs.sh [--cmd utils/run.py] [--nj 2] [--ngpu 1] [--train_config conf/finetune.yaml] [--seed 1] \
#       [--token_dir data/token_phone] [--text_file phones] [--units phone] \
#       [--train_prefix data/ft_] [--valid_prefix data/dev_] [--test_prefix data/test_] \
#       exp/distilxlsr/model "de es it" exp/ft_distilxlsr/seed1
#
# Per language: <exp>/<lang>/model (CTC checkpoint; model_best too with a validation set), <exp>/<lang>/train.log,
# <exp>/<lang>/decode_test/{text,result.txt,score.json}. Also <exp>/params.json: parameters of the
# encoder being fine-tuned (CTC head excluded), {"params": N, "params_M": N/1e6}.
# A "language" is just a suffix of the data dirs: pass "all" with data/ft_all (the languages combined,
# utt2lang kept) for one multilingual model whose score.json has per-language tables.
# The test set is decoded with model_best (the best validation checkpoint, train.best_metric) when the language
# has a validation set, else with model (--decode_ckpt last: always model). --ngpu N > 1 fine-tunes each
# language on N GPUs (torchrun through the job runner; --nnodes M on Slurm).
# Extra arguments after --finetune_opts '...' go to speechkd-finetune (e.g. '--optim.lr 5e-4').
set -euo pipefail
cmd=utils/run.py
nj=2
ngpu=1
nnodes=1
decode_ckpt=best   # best: model_best where a validation set exists, else model | last: model
train_config=conf/finetune.yaml
seed=1
token_dir=data/token_phone
text_file=phones
units=phone
train_prefix=data/ft_
valid_prefix=data/dev_
test_prefix=data/test_
finetune_opts=
help_message="Usage: $0 [options] <init-ckpt-dir> '<langs>' <exp-dir>"
. utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # best_model
[ $# -eq 3 ] || { echo "$help_message" >&2; exit 1; }
init=$1
langs=$2
exp=$3

for lang in $langs; do
  dir=$exp/$lang
  mkdir -p "$dir"
  valid_opt=()
  [ -f "${valid_prefix}${lang}/feats.scp" ] || [ -f "${valid_prefix}${lang}/wav.scp" ] && valid_opt=(--valid-data "${valid_prefix}${lang}")
  # shellcheck disable=SC2086
  $cmd --gpu "$ngpu" --nodes "$nnodes" "$dir/train.log" \
    speechkd-finetune --config "$train_config" --init "$init" --train-data "${train_prefix}${lang}" "${valid_opt[@]}" \
      --token-dir "$token_dir" --exp "$dir" --data.text_file "$text_file" --train.seed "$seed" $finetune_opts
  model=$dir/model
  if [ "$decode_ckpt" = best ] && [ ${#valid_opt[@]} -gt 0 ]; then model=$(best_model "$dir"); fi
  echo "$0: $lang: decoding $model"
  steps/decode_score.sh --nj "$nj" --cmd "$cmd" --ref_file "$text_file" --units "$units" \
    "$model" "${test_prefix}${lang}" "$dir/decode_test"
done
first=$(set -- $langs; echo "$1")
utils/count_params.py "$exp/$first/model" "$exp/params.json"
echo "$0: fine-tuned $init on: $langs -> $exp"
