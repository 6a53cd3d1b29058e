#!/usr/bin/env bash
# Idempotent set-up: creates .venv at the repo root and installs replenish into it.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    runtime + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [[ "${1:-}" == "--dev" ]]; then extras="[dev]"; fi
PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=".venv/.replenish-installed${extras}"
hash=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    echo "setup: .venv is up to date"
else
    start=$(date +%s)
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    .venv/bin/python -m pip install --quiet -e ".${extras}"
    echo "$hash" > "$stamp"
    echo "setup: installed in $(( $(date +%s) - start )) s"
fi
