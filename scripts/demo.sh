#!/usr/bin/env bash
# The main job on embedded defaults: SQLite, local evidence store, in-process broker, bundled demo cameras,
# API + reviewer UI on http://127.0.0.1:8000 (demo reviewer: demo / demo-review).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/urbaneye run --demo "$@"
