# shellcheck shell=bash
# Turn every shell variable defined before this point into a command-line option (Kaldi/ESPnet style).
#
# Source it after the variable defaults of a script:
#
#     stage=1
#     stop_stage=100
#     nj=4
#     use_gpu=false
#     help_message="Usage: $0 [options] <data-dir>"
#     . utils/parse_options.sh
#
# then
#
#     ./run.sh --stage 3 --stop_stage 6 --nj 8 data/train     # or --stop-stage 6, or --nj=8
#     ./run.sh --config conf/my_opts.sh                        # sources a shell file of name=value lines
#     ./run.sh --help                                          # help_message + every option with its default
#
# Rules:
#   --foo-bar x, --foo_bar x and --foo-bar=x all set foo_bar=x; foo_bar must already be defined.
#   An option that names no defined variable is an error (exit 1) that names it.
#   When the current value is true/false, the new value must be true or false.
#   Options stop at the first argument not starting with "--" (or after "--"); the positional arguments
#   stay in "$@" for the caller.

# Variables the shell or its environment defines by itself: never options, never listed by --help.
_po_builtin_vars() {
  if [ -z "${_po_builtin_cache+x}" ]; then
    _po_builtin_cache=" $(env -i bash --norc --noprofile -c 'compgen -v' | tr '\n' ' ') "
  fi
  printf '%s' "$_po_builtin_cache"
}

# Variables defined by the calling script (and files it sourced): in this shell, but not in a fresh bash
# started with the same environment; listed in the order they first appear in the script.
_po_script_vars() {
  local _po_fresh _po_v
  _po_fresh=" $(bash --norc --noprofile -c 'compgen -v' | tr '\n' ' ') "
  {
    if [ -f "$0" ]; then
      grep -oE '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=' "$0" 2>/dev/null \
        | sed -E 's/^[[:space:]]*(export[[:space:]]+)?//; s/=$//'
    fi
    compgen -v
  } | awk '!seen[$0]++' | while read -r _po_v; do
    case $_po_v in _po_*|help_message|usage|BASH*|FUNCNAME|PIPESTATUS|GROUPS) continue ;; esac
    case $_po_fresh in *" $_po_v "*) continue ;; esac
    if [ -n "${!_po_v+x}" ]; then printf '%s\n' "$_po_v"; fi
  done
}

_po_print_help() {
  if [ -n "${help_message:-}" ]; then
    printf '%s\n' "$help_message"
  elif [ -n "${usage:-}" ]; then
    printf '%s\n' "$usage"
  else
    printf 'Usage: %s [options]\n' "$0"
  fi
  printf '\nOptions (current values):\n'
  local _po_v
  for _po_v in $(_po_script_vars); do
    printf '  --%-24s %s\n' "$_po_v" "${!_po_v}"
  done
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      _po_print_help
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --config|--config=*)
      if [ "$1" = --config ]; then
        [ $# -ge 2 ] || { echo "$0: option --config needs a value" >&2; exit 1; }
        _po_value=$2; shift 2
      else
        _po_value=${1#--config=}; shift
      fi
      if [ ! -f "$_po_value" ]; then
        echo "$0: config file '$_po_value' not found" >&2
        exit 1
      fi
      # shellcheck disable=SC1090
      . "$_po_value" || { echo "$0: error sourcing config file '$_po_value'" >&2; exit 1; }
      ;;
    --*)
      _po_arg=${1#--}
      if [[ $_po_arg == *=* ]]; then
        _po_name=${_po_arg%%=*}; _po_value=${_po_arg#*=}; _po_shift=1
      else
        _po_name=$_po_arg
        [ $# -ge 2 ] || { echo "$0: option --$_po_name needs a value" >&2; exit 1; }
        _po_value=$2; _po_shift=2
      fi
      _po_name=${_po_name//-/_}
      if ! [[ $_po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_name+x}" ] \
          || [[ $(_po_builtin_vars) == *" $_po_name "* ]]; then
        echo "$0: invalid option --${_po_arg%%=*} (not an option of this script; see $0 --help)" >&2
        exit 1
      fi
      _po_old=${!_po_name}
      if [ "$_po_old" = true ] || [ "$_po_old" = false ]; then
        if [ "$_po_value" != true ] && [ "$_po_value" != false ]; then
          echo "$0: option --${_po_arg%%=*} takes true or false, got '$_po_value'" >&2
          exit 1
        fi
      fi
      printf -v "$_po_name" '%s' "$_po_value"
      shift "$_po_shift"
      ;;
    *)
      break
      ;;
  esac
done

unset -f _po_builtin_vars _po_script_vars _po_print_help
unset _po_arg _po_name _po_value _po_shift _po_old _po_builtin_cache
true  # sourcing scripts often run with set -e: end with success
