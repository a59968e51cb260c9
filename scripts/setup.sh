#!/usr/bin/env bash
# Create .venv in the repo root and install UrbanEye. Usage: scripts/setup.sh [extras]  (e.g. "train,test")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# Skip the (slow) resolver run when nothing changed since the last install of the same extras.
stamp=".venv/.urbaneye-installed-${extras:-runtime}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q -e "$spec"
  touch "$stamp"
fi
