#!/usr/bin/env bash
# Take N utterances per language (evenly spread over the language's speakers) from a data dir.
#   steps/make_labelled_subset.sh --n 40 data/train data/train_sub "en de es"
set -euo pipefail
n=40
. utils/parse_options.sh
[ $# -eq 3 ] || { echo "Usage: $0 [--n N] <src> <dest> '<langs>'" >&2; exit 1; }
src=$1; dest=$2; langs=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
parts=()
for l in $langs; do
  awk -v l="$l" '$2 == l {print $1}' "$src/utt2lang" > "$tmp/$l.list"
  [ -s "$tmp/$l.list" ] || { echo "$0: no utterances of language '$l' in $src/utt2lang" >&2; exit 1; }
  utils/subset_data_dir.sh --utt-list "$tmp/$l.list" "$src" "$tmp/all_$l" >/dev/null
  have=$(wc -l < "$tmp/$l.list")
  if [ "$have" -le "$n" ]; then
    echo "$0: warning: only $have utterances of '$l', taking all" >&2
    cp -r "$tmp/all_$l" "$tmp/sub_$l"
  else
    utils/subset_data_dir.sh --num "$n" "$tmp/all_$l" "$tmp/sub_$l" >/dev/null
  fi
  parts+=("$tmp/sub_$l")
done
utils/combine_data.sh "$dest" "${parts[@]}" >/dev/null
utils/validate_data_dir.sh "$dest"
echo "$0: $(wc -l < "$dest/utt2spk") utterances in $dest"
