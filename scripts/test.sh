#!/usr/bin/env bash
# Set up (idempotently) and run the whole test suite. Extra arguments go to pytest.
# PostgreSQL store tests run when REPLENISH_TEST_PG_URL is set (.ci/run starts a server and sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export RAY_AUTH_MODE=disabled
exec .venv/bin/python -m pytest -q "$@"
