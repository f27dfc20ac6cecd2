#!/usr/bin/env bash
# Launch World Studio. The first run creates .venv (CPU torch first on machines without an NVIDIA
# GPU, then the studio with the CPU constraints; see setup-env.sh) and opens the demo project.
# Arguments go to the studio: run-studio.sh [PROJECT_FOLDER] [--no-viewport]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || [ ! -f .venv/.worldstudio-installed ] || [ pyproject.toml -nt .venv/.worldstudio-installed ]; then
  echo "run-studio: setting up .venv (first run takes a few minutes)…" >&2
  # the Qt/X11/GL libraries on Debian-family systems (needs root or sudo; skipped elsewhere)
  bash packaging/system-deps.sh || echo "run-studio: could not install the system packages; see packaging/system-deps.sh" >&2
  bash packaging/setup-env.sh
fi
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" = "Linux" ]; then
  if command -v xvfb-run >/dev/null 2>&1 && [ -n "${WORLDSTUDIO_HEADLESS:-}" ]; then
    exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m worldstudio.studio "$@"
  fi
  echo "run-studio: no display found (DISPLAY / WAYLAND_DISPLAY unset); set WORLDSTUDIO_HEADLESS=1 to run under Xvfb" >&2
fi
exec .venv/bin/python -m worldstudio.studio "$@"
