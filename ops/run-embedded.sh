#!/usr/bin/env bash
# Set up and run Postroom on its embedded default: SQLite (WAL), blobs on the local filesystem,
# everything under POSTROOM_DATA_DIR (default ./postroom-data), serving on http://127.0.0.1:8000.
#
# On first run it creates an `admin` user; set POSTROOM_ADMIN_PASSWORD to choose its password,
# otherwise one is generated and printed once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ops/setup-python.sh
export POSTROOM_DATA_DIR="${POSTROOM_DATA_DIR:-./postroom-data}"
.venv/bin/postroom db upgrade
if ! .venv/bin/postroom users exists admin 2>/dev/null; then
    password="${POSTROOM_ADMIN_PASSWORD:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(15))')}"
    printf '%s\n' "$password" | .venv/bin/postroom users create admin --role admin --password-stdin
    if [ -z "${POSTROOM_ADMIN_PASSWORD:-}" ]; then
        echo "admin password (shown once): $password" >&2
    fi
fi
exec .venv/bin/postroom serve --host "${POSTROOM_HOST:-127.0.0.1}" --port "${POSTROOM_PORT:-8000}"
