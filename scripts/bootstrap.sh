#!/usr/bin/env bash
# Builds .venv from requirements.lock with a Python 3.10, reusing a cached venv keyed by content hash.
#
# The venv itself lives under $BOT_CACHE_DIR (default ~/.cache/autoservicio) as
# venv-<hash of python version + requirements.lock>; .venv is a symlink to it. A fresh clone on
# a machine that already built the same lock therefore installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

cache_dir="${BOT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/autoservicio}"

find_python310() {
  local candidate
  for candidate in "${PYTHON310:-}" python3.10; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    local version
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.[0-9]+)?$' | sort -V -r); do
      candidate="$(pyenv prefix "$version" 2>/dev/null)/bin/python3.10"
      if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    done
  fi
  return 1
}

python="$(find_python310)" || {
  cat >&2 <<'MSG'
error: Rasa 3.6 needs Python 3.10, and none was found.
  Looked for: $PYTHON310, python3.10 on PATH, then pyenv's 3.10.x versions.
  Install one, for example:  pyenv install 3.10.13
  or point to it:            make PYTHON310=/path/to/python3.10 <target>
MSG
  exit 1
}

key="$( { "$python" -c 'import sys; print(sys.version)'; cat requirements.lock; } | sha256sum | cut -c1-16)"
venv="$cache_dir/venv-$key"

if [ ! -f "$venv/.complete" ]; then
  mkdir -p "$cache_dir"
  exec 9>"$cache_dir/venv-$key.lock"
  flock 9   # two make runs at once build one venv
  if [ ! -f "$venv/.complete" ]; then
    echo "==> Building the Python 3.10 environment (first time only, a few minutes) with $python"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade 'pip<24.1'
    "$venv/bin/python" -m pip install --progress-bar off -r requirements.lock
    touch "$venv/.complete"
  fi
fi

if [ "$(readlink .venv 2>/dev/null)" != "$venv" ]; then
  if [ -e .venv ] && [ ! -L .venv ]; then
    echo "error: .venv exists and is not the managed link; remove it (rm -rf .venv) and retry." >&2
    exit 1
  fi
  ln -sfn "$venv" .venv
fi
