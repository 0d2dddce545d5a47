# Source this file to use speechkd's environment: runs tools/setup.sh when needed (first use), then
# activates tools/venv. Every egs/*/*/path.sh sources it.
_skd_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$_skd_root/tools/setup.sh" || return 1 2>/dev/null || exit 1
# shellcheck disable=SC1091
source "${SPEECHKD_VENV:-$_skd_root/tools/venv}/bin/activate"
export SPEECHKD_ROOT=$_skd_root
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONUNBUFFERED=1
unset _skd_root
