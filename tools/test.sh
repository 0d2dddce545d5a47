#!/usr/bin/env bash
# Run speechkd's test suite, installing the environment on first use.
#   bash tools/test.sh                 # whole suite
#   bash tools/test.sh test/test_features.py -k fbank    # pytest arguments pass through
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$root/tools/activate.sh"
cd "$root"
exec python -m pytest -q -ra --timeout=900 "${@:-test}"
