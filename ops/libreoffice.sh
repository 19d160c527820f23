#!/usr/bin/env bash
# LibreOffice for DOCX -> PDF (output/compose/): Debian's headless Writer and the UNO bridge for the system
# python3, which runs each unoserver process. unoserver itself is not installed system-wide: the pool runs the
# copy pinned in pyproject.toml (installed in Postroom's venv) under the system python3, so client and server
# are always the same version.
# Idempotent: installs only what is missing (as root, with apt-get); prints nothing on stdout.
set -euo pipefail

log() { printf '[libreoffice] %s\n' "$*" >&2; }

# Carlito and Caladea are metric-compatible with Calibri and Cambria, the fonts of most Word templates: without
# them LibreOffice lays letters out in DejaVu and line breaks differ from what the author saw in Word.
# tcmalloc is preloaded into each LibreOffice worker (output/compose/office_profile.py): conversions take ~15-20%
# less CPU than with glibc's malloc.
PACKAGES=(libreoffice-writer-nogui python3-uno fonts-dejavu-core fonts-liberation2 fonts-crosextra-carlito
          fonts-crosextra-caladea libtcmalloc-minimal4)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
else
    log "LibreOffice already installed"
fi

command -v soffice >/dev/null 2>&1 || { log "ERROR: soffice still missing after installing"; exit 1; }
/usr/bin/python3 -c 'import uno' >&2 || { log "ERROR: /usr/bin/python3 cannot import uno"; exit 1; }
