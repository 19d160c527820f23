#!/usr/bin/env bash
# Set up and run Postroom on its embedded default: SQLite (WAL), blobs on the local filesystem,
# everything under POSTROOM_DATA_DIR (default ./postroom-data), serving on http://127.0.0.1:8000.
#
# On first run it creates an `admin` user; set POSTROOM_ADMIN_PASSWORD to choose its password,
# otherwise one is generated and printed once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ops/setup-python.sh
# Letters are composed by LibreOffice (apt). Without it everything else works and letters answer 503, so a
# machine where apt cannot install it (no root, no network) still starts; set POSTROOM_SKIP_LIBREOFFICE=1 to skip.
if [ -z "${POSTROOM_SKIP_LIBREOFFICE:-}" ] && ! ops/libreoffice.sh; then
    echo "LibreOffice could not be installed: letters will answer 503 until ops/libreoffice.sh succeeds" >&2
fi
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
