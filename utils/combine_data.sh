#!/usr/bin/env bash
# Usage: utils/combine_data.sh <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
#   e.g. utils/combine_data.sh data/train_all data/train_en data/train_de
# Thin wrapper over utils/data_dir.py combine (see its docstring).
exec "${PYTHON:-python3}" "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/data_dir.py" combine "$@"
