#!/usr/bin/env bash
# Usage: utils/split_data.sh [--per-utt] <data-dir> <num-parts>   # writes <data-dir>/split<N>/1..N
#   e.g. utils/split_data.sh data/train 4
# Thin wrapper over utils/data_dir.py split (see its docstring).
exec "${PYTHON:-python3}" "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/data_dir.py" split "$@"
