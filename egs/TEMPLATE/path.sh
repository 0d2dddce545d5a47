# shellcheck shell=bash
# Environment of every speechkd recipe: source it from run.sh (". ./path.sh").
#  - finds the repository root (the first parent folder holding tools/activate.sh and speechkd/, or
#    $SPEECHKD_ROOT), so it works copied into egs/<corpus>/<method>/ or sourced from egs/TEMPLATE/;
#  - sources tools/activate.sh: creates tools/venv on first use, activates it, sets offline HF variables;
#  - puts utils/ on PATH and sets LC_ALL=C (byte-order sorting, as Kaldi data dirs need).
_skd_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${SPEECHKD_ROOT:-}" ] || [ ! -f "$SPEECHKD_ROOT/tools/activate.sh" ]; then
  SPEECHKD_ROOT=
  while [ "$_skd_dir" != / ]; do
    if [ -f "$_skd_dir/tools/activate.sh" ] && [ -d "$_skd_dir/speechkd" ]; then
      SPEECHKD_ROOT=$_skd_dir
      break
    fi
    _skd_dir=$(dirname "$_skd_dir")
  done
fi
unset _skd_dir
if [ -z "$SPEECHKD_ROOT" ]; then
  echo "path.sh: cannot find the speechkd repository above $(dirname "${BASH_SOURCE[0]}"); set SPEECHKD_ROOT" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$SPEECHKD_ROOT/tools/activate.sh" || { return 1 2>/dev/null || exit 1; }
export SPEECHKD_ROOT
export PATH=$SPEECHKD_ROOT/utils:$PATH
export LC_ALL=C
export PYTHONUTF8=1   # Python keeps UTF-8 text I/O under LC_ALL=C
