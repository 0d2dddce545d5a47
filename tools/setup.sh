#!/usr/bin/env bash
# Set up speechkd's environment (idempotent; a second run takes a few seconds).
#
#   tools/setup.sh            # venv in tools/venv, pinned deps, espeak-ng + text packages
#   SPEECHKD_NO_APT=1 tools/setup.sh   # never call apt-get (non-root users); pip-only espeak route
#
# What it does:
#   1. Debian packages espeak-ng (libespeak-ng1), the fortunes-* text packages the mini corpus reads, and the
#      man pages (manpages-*) and Irish catalogues (libreoffice-l10n-ga) of the zoo text teacher's text pool.
#      Without root it prints the exact apt-get command and falls back to the pip package
#      espeakng-loader (ships libespeak-ng and its data), which speechkd finds by itself.
#   2. tools/venv (python -m venv) with torch==2.13.0 when no torch is importable, then
#      tools/requirements.txt, then speechkd itself in editable mode.
#   3. Writes tools/venv/.speechkd_ok with a hash of the inputs, so later runs return at once.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SPEECHKD_VENV:-$root/tools/venv}
python=${PYTHON:-python3}
apt_pkgs="espeak-ng libespeak-ng1 fortunes fortunes-de fortunes-es fortunes-it fortunes-ru fortunes-pl fortunes-cs fortunes-ga manpages manpages-de manpages-de-dev manpages-es manpages-es-dev manpages-it manpages-it-dev manpages-ru manpages-ru-dev manpages-pl manpages-pl-dev libreoffice-l10n-ga"
stamp=$venv/.speechkd_ok
want=$( (cat "$root/tools/requirements.txt" "$root/setup.py" "$root/tools/setup.sh"; ls "$root/speechkd/bin") | sha1sum | cut -c1-16)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# 1. system packages
missing=""
for p in $apt_pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ -z "${SPEECHKD_NO_APT:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "[setup] missing Debian packages:$missing" >&2
    echo "[setup] as root run: apt-get install -y$missing" >&2
    echo "[setup] continuing with the pip package espeakng-loader for libespeak-ng" >&2
  fi
fi

# 2. venv + python packages
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv" >&2
  "$python" -m venv "$venv"
fi
# pip, minus the "WARNING: Location ... is ignored" lines that some site-wide pip.conf find-links produce
pip_() { "$venv/bin/python" -m pip "$@" 2> >(grep -v "^WARNING: Location '" >&2); }
pip=pip_
$pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] pip install torch==2.13.0" >&2
  $pip install -q torch==2.13.0
fi
echo "[setup] pip install -r tools/requirements.txt" >&2
$pip install -q -r "$root/tools/requirements.txt"
$pip install -q --no-deps --no-build-isolation -e "$root" >/dev/null 2>&1 || $pip install --no-deps --no-build-isolation -e "$root"
echo "$want" > "$stamp"
echo "[setup] done: source $root/tools/activate.sh" >&2
