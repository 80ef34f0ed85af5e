#!/usr/bin/env bash
# The README's second command: install what the tests need (idempotent), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# One worker per core (pytest-xdist): the suite is mostly single-threaded, and one process on 2 cores took 22 minutes.
# --dist loadfile keeps each test file in one worker, so a file's module- and session-scoped fixtures (a tiny
# trained model, a generated corpus) are built once per worker that needs them, not once per test.
# PYTEST_WORKERS=0 runs it in one process, as before.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
