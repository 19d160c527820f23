#!/usr/bin/env bash
# Local MinIO (S3) server for Postroom's tests.
#
#   ops/minio.sh start   # build minio if missing, start it on 127.0.0.1, print env
#   ops/minio.sh stop    # stop the server started by this script
#   ops/minio.sh env     # print the export lines
#
# Human-readable progress goes to stderr; only `export ...` lines go to stdout,
# so `eval "$(ops/minio.sh start)"` works too.
#
# MinIO is built from source through the Go module proxy (no prebuilt download):
#   go install github.com/minio/minio@$MINIO_VERSION
# An existing $(go env GOPATH)/bin/minio (or a `minio` on PATH) is reused.
#
# Settings (environment):
#   POSTROOM_OPS_DIR            (default /tmp/postroom-ops)  data in $POSTROOM_OPS_DIR/minio
#   POSTROOM_MINIO_PORT         (default 59000)              S3 API on 127.0.0.1
#   POSTROOM_MINIO_CONSOLE_PORT (default API port + 1)       web console on 127.0.0.1
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c   # pinned pseudo-version from the Go module proxy

OPS_DIR="${POSTROOM_OPS_DIR:-/tmp/postroom-ops}"
MINIO_HOST=127.0.0.1
MINIO_PORT="${POSTROOM_MINIO_PORT:-59000}"
MINIO_CONSOLE_PORT="${POSTROOM_MINIO_CONSOLE_PORT:-$((MINIO_PORT + 1))}"
MINIO_DATA="$OPS_DIR/minio"
MINIO_LOG="$OPS_DIR/minio.log"
MINIO_PIDFILE="$OPS_DIR/minio.pid"
MINIO_BUILD_LOG="$OPS_DIR/minio-build.log"
ACCESS_KEY=postroom
SECRET_KEY=postroom-secret
WAIT_SECONDS=60
HEALTH_URL="http://$MINIO_HOST:$MINIO_PORT/minio/health/live"

log() { printf '[minio] %s\n' "$*" >&2; }
die() { printf '[minio] ERROR: %s\n' "$*" >&2; exit 1; }

print_env() {
    echo "export POSTROOM_TEST_S3_ENDPOINT=$MINIO_HOST:$MINIO_PORT"
    echo "export POSTROOM_TEST_S3_ACCESS_KEY=$ACCESS_KEY"
    echo "export POSTROOM_TEST_S3_SECRET_KEY=$SECRET_KEY"
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y "$@" >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2
        apt-get install -y "$@" >&2
    fi
}

ensure_curl() {
    command -v curl >/dev/null 2>&1 && return 0
    log "curl not found; installing it"
    apt_install curl
}

healthy() { curl -fsS -o /dev/null --max-time 3 "$HEALTH_URL" 2>/dev/null; }

# Sets MINIO_BIN, building minio with `go install` only when no binary exists.
ensure_minio() {
    local gobin=""
    if command -v go >/dev/null 2>&1; then
        gobin="$(go env GOBIN)"
        [[ -n "$gobin" ]] || gobin="$(go env GOPATH)/bin"
    fi
    if [[ -n "$gobin" && -x "$gobin/minio" ]]; then
        MINIO_BIN="$gobin/minio"; return 0
    fi
    if MINIO_BIN="$(command -v minio 2>/dev/null)"; then return 0; fi
    [[ -n "$gobin" ]] || die "minio binary not found and 'go' is not installed; install Go (>= 1.24) and rerun"

    mkdir -p "$OPS_DIR"
    # One build at a time, even if several start scripts race.
    exec 9>"$OPS_DIR/minio-build.lock"
    log "waiting for build lock $OPS_DIR/minio-build.lock"
    flock 9
    if [[ ! -x "$gobin/minio" ]]; then
        log "building MinIO: go install $MINIO_MODULE@$MINIO_VERSION (takes many minutes; log: $MINIO_BUILD_LOG)"
        if ! go install "$MINIO_MODULE@$MINIO_VERSION" >"$MINIO_BUILD_LOG" 2>&1; then
            tail -n 30 "$MINIO_BUILD_LOG" >&2 || true
            die "go install $MINIO_MODULE@$MINIO_VERSION failed; see $MINIO_BUILD_LOG"
        fi
    fi
    exec 9>&-
    [[ -x "$gobin/minio" ]] || die "go install finished but $gobin/minio is missing"
    MINIO_BIN="$gobin/minio"
}

our_pid() {
    local pid
    [[ -f "$MINIO_PIDFILE" ]] || return 1
    pid="$(cat "$MINIO_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'minio server' || return 1
    echo "$pid"
}

cmd_start() {
    ensure_curl
    if healthy; then
        log "already running and answering at $HEALTH_URL"
        print_env
        return 0
    fi
    ensure_minio
    mkdir -p "$MINIO_DATA"
    local pid
    if pid="$(our_pid)"; then
        log "minio (pid $pid) is running but not healthy yet; waiting"
    else
        log "starting $MINIO_BIN on $MINIO_HOST:$MINIO_PORT (console $MINIO_HOST:$MINIO_CONSOLE_PORT), data $MINIO_DATA, log $MINIO_LOG"
        MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" \
        MINIO_BROWSER_REDIRECT=off MINIO_UPDATE=off \
            setsid nohup "$MINIO_BIN" server \
                --address "$MINIO_HOST:$MINIO_PORT" \
                --console-address "$MINIO_HOST:$MINIO_CONSOLE_PORT" \
                "$MINIO_DATA" >>"$MINIO_LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$MINIO_PIDFILE"
    fi
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if healthy; then
            log "ready: $HEALTH_URL (pid $pid)"
            print_env
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$MINIO_LOG" >&2 || true
            rm -f "$MINIO_PIDFILE"
            die "minio exited during startup (port $MINIO_PORT or $MINIO_CONSOLE_PORT in use?); see $MINIO_LOG"
        fi
        sleep 1
    done
    tail -n 30 "$MINIO_LOG" >&2 || true
    die "minio did not answer $HEALTH_URL within ${WAIT_SECONDS}s; see $MINIO_LOG"
}

cmd_stop() {
    local pid i
    if ! pid="$(our_pid)"; then
        rm -f "$MINIO_PIDFILE"
        if command -v curl >/dev/null 2>&1 && healthy; then
            die "something answers at $HEALTH_URL but it was not started by this script (no valid $MINIO_PIDFILE); not stopping it"
        fi
        log "minio is not running"
        return 0
    fi
    log "stopping minio (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "minio did not exit after 30s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$MINIO_PIDFILE"
    log "stopped"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
