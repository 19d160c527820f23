#!/usr/bin/env bash
# Local single-node Elasticsearch for Postroom's tests.
#
#   ops/elasticsearch.sh start   # download if missing, start on 127.0.0.1, wait for yellow, print env
#   ops/elasticsearch.sh stop    # stop the node started by this script
#   ops/elasticsearch.sh env     # print the export line
#
# Human-readable progress goes to stderr; only `export ...` lines go to stdout,
# so `eval "$(ops/elasticsearch.sh start)"` works too.
#
# Elasticsearch comes from Maven Central: the integ-test-zip distribution
#   org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip
# (the server core plus x-pack-core/x-pack-security; no analysis-common module, no bundled JDK), checked against
# a pinned SHA-256 and cached in $POSTROOM_OPS_DIR/elasticsearch/cache. The server major must equal the
# Python client's (`elasticsearch==9.*` in pyproject.toml); 9.5.0 is the newest 9.x that Maven Central serves
# as this zip.
# It runs as the system user `elasticsearch` (Elasticsearch refuses root), with a JDK >= 21 (ES_JAVA_HOME, else
# Temurin 25 or any JDK 21+ under /usr/lib/jvm, else Debian's openjdk-21), security off, loopback only.
#
# Settings (environment):
#   POSTROOM_OPS_DIR   (default /tmp/postroom-ops)  node in $POSTROOM_OPS_DIR/elasticsearch
#   POSTROOM_ES_PORT   (default 59200)              HTTP on 127.0.0.1 (transport: port + 100)
#   POSTROOM_ES_HEAP   (default "-Xms512m -Xmx1g")  JVM heap options
#   ES_JAVA_HOME                                     the JDK to run it with
set -euo pipefail

ES_VERSION=9.5.0
ES_SHA256=db0e275fd790f723eca7bcde96069fd6fed304ad23afdb70c8c09553dd9e8b1b
ES_URL="https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip"

OPS_DIR="$(realpath -m "${POSTROOM_OPS_DIR:-/tmp/postroom-ops}")"  # absolute: the node starts from /
ES_HOST=127.0.0.1
ES_PORT="${POSTROOM_ES_PORT:-59200}"
ES_TRANSPORT_PORT=$((ES_PORT + 100))
ES_HEAP="${POSTROOM_ES_HEAP:--Xms512m -Xmx1g}"
ES_ROOT="$OPS_DIR/elasticsearch"
ES_CACHE="$ES_ROOT/cache"
ES_ZIP="$ES_CACHE/elasticsearch-integ-test-$ES_VERSION.zip"
ES_HOME="$ES_ROOT/elasticsearch-$ES_VERSION"
ES_CONF="$ES_ROOT/config"
ES_DATA="$ES_ROOT/data"
ES_LOGS="$ES_ROOT/logs"
ES_TMP="$ES_ROOT/tmp"
ES_LOG="$ES_ROOT/elasticsearch.out"
ES_RUN="$ES_ROOT/run"
ES_PIDFILE="$ES_RUN/elasticsearch.pid"  # written by the server itself, so in a directory it owns
ES_OS_USER=elasticsearch
WAIT_SECONDS=300  # start-up takes 60-120 s on a busy 2-core machine
BASE_URL="http://$ES_HOST:$ES_PORT"

log() { printf '[elasticsearch] %s\n' "$*" >&2; }
die() { printf '[elasticsearch] ERROR: %s\n' "$*" >&2; exit 1; }

print_env() {
    echo "export POSTROOM_TEST_ES_URL=$BASE_URL"
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y "$@" >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2
        apt-get install -y "$@" >&2
    fi
}

ensure_tools() {
    local missing=()
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v unzip >/dev/null 2>&1 || missing+=(unzip)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

# "Really answers": the cluster health is yellow or green.
healthy() {
    curl -fsS --max-time 5 "$BASE_URL/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null \
        | grep -Eq '"status":"(yellow|green)"'
}

java_major() {  # the feature version of "$1/bin/java", or nothing
    "$1/bin/java" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}

# Sets JAVA_DIR to a JDK that Elasticsearch 9 supports (21 or newer).
ensure_java() {
    local d major
    for d in "${ES_JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 $(printf '%s\n' /usr/lib/jvm/* | sort -rV); do
        [[ -n "$d" && -x "$d/bin/java" ]] || continue
        major="$(java_major "$d")"
        if [[ -n "$major" && "$major" -ge 21 ]]; then JAVA_DIR="$d"; return 0; fi
    done
    log "no JDK >= 21 found; installing Debian's openjdk-21-jdk-headless"
    apt_install openjdk-21-jdk-headless
    for d in /usr/lib/jvm/java-21-openjdk-*; do
        [[ -x "$d/bin/java" ]] && { JAVA_DIR="$d"; return 0; }
    done
    die "no JDK >= 21 available; set ES_JAVA_HOME"
}

ensure_os_user() {
    if ! id -u "$ES_OS_USER" >/dev/null 2>&1; then
        log "creating system user $ES_OS_USER"
        useradd --system --user-group --home-dir "$ES_ROOT" --no-create-home --shell /usr/sbin/nologin "$ES_OS_USER"
    fi
}

as_es() { (cd / && runuser -u "$ES_OS_USER" -- "$@"); }

ensure_distribution() {
    mkdir -p "$ES_CACHE" "$ES_ROOT"
    chmod 755 "$OPS_DIR" "$ES_ROOT" 2>/dev/null || true
    exec 8>"$ES_CACHE/elasticsearch-$ES_VERSION.lock"  # one download at a time
    flock 8
    if [[ ! -f "$ES_ZIP" ]] || ! echo "$ES_SHA256  $ES_ZIP" | sha256sum -c --status; then
        log "downloading $ES_URL"
        curl -fsSL --retry 3 --max-time 600 -o "$ES_ZIP.part" "$ES_URL" \
            || die "download failed: $ES_URL"
        echo "$ES_SHA256  $ES_ZIP.part" | sha256sum -c --status \
            || die "checksum mismatch for $ES_URL (expected sha256 $ES_SHA256)"
        mv "$ES_ZIP.part" "$ES_ZIP"
    fi
    if [[ ! -x "$ES_HOME/bin/elasticsearch" ]]; then
        log "unpacking into $ES_ROOT"
        rm -rf "$ES_HOME" "$ES_ROOT/unpack"
        mkdir -p "$ES_ROOT/unpack"
        unzip -q "$ES_ZIP" -d "$ES_ROOT/unpack"
        mv "$ES_ROOT/unpack/elasticsearch-$ES_VERSION" "$ES_HOME"
        rmdir "$ES_ROOT/unpack"
        rm -rf "$ES_CONF"  # the config follows the distribution it came from
    fi
    exec 8>&-
}

write_config() {
    mkdir -p "$ES_DATA" "$ES_LOGS" "$ES_TMP" "$ES_RUN"
    if [[ ! -d "$ES_CONF" ]]; then
        cp -r "$ES_HOME/config" "$ES_CONF"
    fi
    mkdir -p "$ES_CONF/jvm.options.d"
    # Rewritten on every start so the port and paths follow the current settings.
    cat >"$ES_CONF/elasticsearch.yml" <<EOF
# Written by ops/elasticsearch.sh -- single test node for Postroom.
cluster.name: postroom-test
node.name: postroom-test-1
path.data: $ES_DATA
path.logs: $ES_LOGS
network.host: $ES_HOST
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
discovery.type: single-node
xpack.security.enabled: false
# A test node on a shared disk: never turn indices read-only because the disk is filling up.
cluster.routing.allocation.disk.threshold_enabled: false
action.auto_create_index: false
EOF
    printf '%s\n' $ES_HEAP >"$ES_CONF/jvm.options.d/postroom.options"
    chown -R "$ES_OS_USER:" "$ES_CONF" "$ES_DATA" "$ES_LOGS" "$ES_TMP" "$ES_RUN"
    touch "$ES_LOG"
    chown "$ES_OS_USER:" "$ES_LOG"
    chmod -R a+rX "$ES_HOME"
    as_es test -w "$ES_DATA" || die "user $ES_OS_USER cannot write $ES_DATA (is $OPS_DIR under a directory it cannot traverse?)"
}

our_pid() {
    local pid
    [[ -f "$ES_PIDFILE" ]] || return 1
    pid="$(cat "$ES_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$ES_HOME" || return 1
    echo "$pid"
}

cmd_start() {
    ensure_tools
    if healthy; then
        log "already running and answering at $BASE_URL"
        print_env
        return 0
    fi
    local pid
    if pid="$(our_pid)"; then
        log "elasticsearch (pid $pid) is running but not yellow yet; waiting"
    else
        ensure_java
        ensure_os_user
        ensure_distribution
        write_config
        rm -f "$ES_PIDFILE"
        log "starting Elasticsearch $ES_VERSION (JDK $JAVA_DIR) on $BASE_URL, data $ES_DATA, log $ES_LOGS"
        # -p: the server JVM writes its own pid (the launcher in front of it exits with it).
        # From /: the caller's directory may be one the elasticsearch user cannot read.
        cd /
        ES_JAVA_HOME="$JAVA_DIR" ES_PATH_CONF="$ES_CONF" ES_TMPDIR="$ES_TMP" \
            setsid nohup runuser -u "$ES_OS_USER" -- "$ES_HOME/bin/elasticsearch" -p "$ES_PIDFILE" \
            >>"$ES_LOG" 2>&1 </dev/null &
        local launcher=$!
    fi
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if healthy; then
            log "ready: $BASE_URL (pid $(cat "$ES_PIDFILE" 2>/dev/null || echo '?'))"
            print_env
            return 0
        fi
        if [[ -n "${launcher:-}" ]] && ! kill -0 "$launcher" 2>/dev/null; then
            tail -n 40 "$ES_LOG" >&2 || true
            die "elasticsearch exited during startup (port $ES_PORT or $ES_TRANSPORT_PORT in use?); see $ES_LOG and $ES_LOGS"
        fi
        sleep 1
    done
    tail -n 40 "$ES_LOG" >&2 || true
    die "elasticsearch did not reach yellow at $BASE_URL within ${WAIT_SECONDS}s; see $ES_LOG and $ES_LOGS"
}

cmd_stop() {
    local pid i
    if ! pid="$(our_pid)"; then
        rm -f "$ES_PIDFILE"
        if command -v curl >/dev/null 2>&1 && curl -fsS -o /dev/null --max-time 3 "$BASE_URL" 2>/dev/null; then
            die "something answers at $BASE_URL but it was not started by this script (no valid $ES_PIDFILE); not stopping it"
        fi
        log "elasticsearch is not running"
        return 0
    fi
    log "stopping elasticsearch (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "elasticsearch did not exit after 60s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$ES_PIDFILE"
    log "stopped"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
