#!/usr/bin/env bash
# Type-check core with mypy (configured in pyproject.toml); extra arguments go to mypy.
# mypy cannot follow setuptools' editable-install finder that maps core/ to worldstudio.core, so
# core/ is linked as build/typecheck/worldstudio/core and the paths in mypy's report mapped back.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck/worldstudio
mkdir -p "$tree"
ln -sfn ../../../core "$tree/core"
.venv/bin/mypy "$@" 2>&1 | sed -e "s#$PWD/$tree/core/#core/#g" -e "s#$tree/core/#core/#g"
