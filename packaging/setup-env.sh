#!/usr/bin/env bash
# Create (or update) the virtual environment in .venv with the studio and its dev tools.
# On a machine without an NVIDIA GPU, torch stays the CPU build (constraints-cpu.txt);
# on a GPU workstation pip takes the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
stamp=.venv/.worldstudio-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "${PIP[@]}" -e ".[dev]"
  else
    "${PIP[@]}" torch==2.13.0 -c packaging/constraints-cpu.txt
    "${PIP[@]}" -c packaging/constraints-cpu.txt -e ".[dev]"
  fi
  touch "$stamp"
fi
