#!/usr/bin/env bash
# System packages the test suite uses besides the services (PostgreSQL, MinIO): the litmus WebDAV compliance
# suite (Debian package `litmus`, 0.13), run by tests/api/test_dav_litmus.py against /dav/files/.
# Idempotent: installs only what is missing (as root, with apt-get); prints nothing on stdout.
set -euo pipefail

log() { printf '[test-tools] %s\n' "$*" >&2; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2
        apt-get install -y --no-install-recommends "$@" >&2
    fi
}

if command -v litmus >/dev/null 2>&1; then
    log "litmus already installed ($(litmus --version 2>/dev/null || echo 'version unknown'))"
else
    log "installing the Debian package 'litmus'"
    apt_install litmus
    command -v litmus >/dev/null 2>&1 || { log "ERROR: litmus still missing after installing"; exit 1; }
fi

# LibreOffice and veraPDF for the composition tests (tests/output/test_compose_*.py, marker `libreoffice`).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$HERE/libreoffice.sh"
bash "$HERE/verapdf.sh"
