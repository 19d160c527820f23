#!/usr/bin/env bash
# veraPDF, the PDF/A validator (output/compose/validate.py), from Maven Central: the greenfield CLI
# (org.verapdf.apps:greenfield-apps) with its dependencies, run by a small launcher `verapdf` on PATH.
# The artifact's POM names the project's own repositories and a GUI module that Maven Central lacks: a
# mirror sends every lookup to Maven Central and the GUI module is left out (the CLI does not need it).
# Idempotent; prints nothing on stdout. Needs java (17+) and mvn.
set -euo pipefail

log() { printf '[verapdf] %s\n' "$*" >&2; }

VERSION="${VERAPDF_VERSION:-1.26.2}"
HOME_DIR="${POSTROOM_TOOLS_DIR:-/opt/postroom}/verapdf-${VERSION}"
LAUNCHER=/usr/local/bin/verapdf

if [[ -x "$LAUNCHER" ]] && "$LAUNCHER" --version 2>/dev/null | grep -q "veraPDF ${VERSION}"; then
    log "veraPDF ${VERSION} already installed"
    exit 0
fi

command -v java >/dev/null 2>&1 || { log "ERROR: java is missing"; exit 1; }
command -v mvn >/dev/null 2>&1 || { log "ERROR: mvn is missing"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/settings.xml" <<'XML'
<settings><mirrors><mirror><id>central-only</id><mirrorOf>*</mirrorOf>
<url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>
XML
cat >"$work/pom.xml" <<XML
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>postroom</groupId><artifactId>verapdf-cli</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies><dependency>
    <groupId>org.verapdf.apps</groupId><artifactId>greenfield-apps</artifactId><version>${VERSION}</version>
    <exclusions><exclusion><groupId>org.verapdf.apps</groupId><artifactId>gui</artifactId></exclusion></exclusions>
  </dependency></dependencies>
</project>
XML
log "fetching veraPDF ${VERSION} from Maven Central"
mvn -B -q -s "$work/settings.xml" -f "$work/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$work/lib" >&2
mkdir -p "$HOME_DIR"
rm -rf "$HOME_DIR/lib"
mv "$work/lib" "$HOME_DIR/lib"
cat >"$LAUNCHER" <<SH
#!/bin/sh
exec java -Xss4m -cp '$HOME_DIR/lib/*' org.verapdf.apps.GreenfieldCliWrapper "\$@"
SH
chmod 755 "$LAUNCHER"
"$LAUNCHER" --version 2>/dev/null | grep -q "veraPDF ${VERSION}" || { log "ERROR: veraPDF does not run"; exit 1; }
