#!/usr/bin/env bash
# The README's second command: install what the tests need (idempotent), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
