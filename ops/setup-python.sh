#!/usr/bin/env bash
# Create .venv (if missing) and install Postroom with the pinned versions from pyproject.toml.
#   ops/setup-python.sh          # the application
#   ops/setup-python.sh test     # the application and the test tools
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >&2
if [ "${1:-}" = "test" ]; then
    .venv/bin/python -m pip install --quiet -e '.[test]' >&2
else
    .venv/bin/python -m pip install --quiet -e . >&2
fi
