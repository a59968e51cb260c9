#!/usr/bin/env bash
# Set up everything the test suite needs and run it. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
fc-list 2>/dev/null | grep -qi 'noto sans cjk\|wqy' || need_apt+=(fonts-noto-cjk)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

scripts/services.sh
scripts/setup.sh "train,test"
export URBANEYE_ENVIRONMENT=test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -ra "$@"
