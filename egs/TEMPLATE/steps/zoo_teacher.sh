#!/usr/bin/env bash
# Link a teacher of the mini zoo (egs/mini_espeak/ssl) into a recipe; make it first when the zoo lacks it.
#
#   steps/zoo_teacher.sh [--conf_tag default] [--teacher DIR] ssl_ml exp/teacher
#
#   --teacher DIR   any checkpoint dir instead (e.g. an imported XLSR-53 / HuBERT Base:
#                   speechkd-import-checkpoint --src xlsr_53_56k.pt --out exp/xlsr53), linked as is
# The zoo is $SPEECHKD_ZOO when set, else exp/zoo (exp_<tag>/zoo for --conf_tag <tag>) of the ssl recipe
# beside this recipe (egs/<corpus>/ssl) or of the repository's egs/mini_espeak/ssl. A missing teacher is
# made by running that recipe's stages for it (ssl_ml: 1-8, ssl_en_cnn: 1-4 and 9, text_ml: 10).
set -euo pipefail
conf_tag=default
teacher=
help_message="Usage: $0 [--conf_tag TAG] [--teacher DIR] <ssl_ml|ssl_en_cnn|text_ml> <link>"
. utils/parse_options.sh
[ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
name=$1
link=$2

if [ -n "$teacher" ]; then
  src=$teacher
else
  ssl=$(cd .. && pwd)/ssl
  [ -x "$ssl/run.sh" ] || ssl=$SPEECHKD_ROOT/egs/mini_espeak/ssl
  sfx=""; [ "$conf_tag" = default ] || sfx="_$conf_tag"
  zoo=${SPEECHKD_ZOO:-$ssl/exp$sfx/zoo}
  src=$zoo/$name
  if [ ! -f "$src/card.json" ] || { [ ! -f "$src/model.pt" ] && [ ! -f "$src/model.safetensors" ]; }; then
    case $name in
      ssl_ml) ranges=("1 8") ;;
      ssl_en_cnn) ranges=("1 4" "9 9") ;;
      text_ml) ranges=("10 10") ;;
      *) echo "$0: unknown zoo teacher '$name' (ssl_ml, ssl_en_cnn, text_ml)" >&2; exit 1 ;;
    esac
    for r in "${ranges[@]}"; do
      read -r a b <<< "$r"
      echo "$0: $src missing: making it (cd $ssl && ./run.sh --conf_tag $conf_tag --stage $a --stop_stage $b)"
      (cd "$ssl" && ./run.sh --conf_tag "$conf_tag" --zoo "$zoo" --stage "$a" --stop_stage "$b")
    done
  fi
fi
if [ ! -f "$src/config.yaml" ] && [ ! -f "$src/config.json" ]; then
  echo "$0: $src is not a checkpoint dir (no config.yaml / config.json)" >&2
  exit 1
fi
if [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "$0: $link exists and is not a link (a teacher trained by an older recipe version?): move it away" >&2
  exit 1
fi
mkdir -p "$(dirname "$link")"
ln -sfn "$(realpath "$src")" "$link"
echo "$0: $link -> $(realpath "$src")"
