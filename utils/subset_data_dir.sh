#!/usr/bin/env bash
# Usage: utils/subset_data_dir.sh [--first N | --last N | --num N | --utt-list FILE | --spk-list FILE] <src-data-dir> <dest-data-dir>  (or: <src> <N> <dest>)
#   e.g. utils/subset_data_dir.sh --num 100 data/train data/train_100
# Thin wrapper over utils/data_dir.py subset (see its docstring).
exec "${PYTHON:-python3}" "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/data_dir.py" subset "$@"
