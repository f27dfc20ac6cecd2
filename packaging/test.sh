#!/usr/bin/env bash
# Set up everything and run the whole test suite: the layering contract, the linter and
# formatter, the type checker, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/system-deps.sh
bash packaging/setup-env.sh
export HF_HUB_OFFLINE=1
echo "== import-linter: core imports no Qt, vispy, pyqtgraph or studio; core's packages are layered"
.venv/bin/lint-imports
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy on core"
bash packaging/typecheck.sh
echo "== pytest"
.venv/bin/python -m pytest "$@"
