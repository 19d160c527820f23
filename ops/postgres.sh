#!/usr/bin/env bash
# Private PostgreSQL cluster for Postroom's tests.
#
#   ops/postgres.sh start   # install if missing, init + start on 127.0.0.1, print env
#   ops/postgres.sh stop    # stop the private cluster
#   ops/postgres.sh env     # print the export line(s)
#
# Human-readable progress goes to stderr; only `export ...` lines go to stdout,
# so `eval "$(ops/postgres.sh start)"` works too.
#
# Settings (environment):
#   POSTROOM_OPS_DIR  (default /tmp/postroom-ops)  cluster lives in $POSTROOM_OPS_DIR/pg
#   POSTROOM_PG_PORT  (default 55432)              TCP port on 127.0.0.1
set -euo pipefail

OPS_DIR="${POSTROOM_OPS_DIR:-/tmp/postroom-ops}"
PG_PORT="${POSTROOM_PG_PORT:-55432}"
PG_HOST=127.0.0.1
PG_ROOT="$OPS_DIR/pg"
PG_DATA="$PG_ROOT/data"
PG_RUN="$PG_ROOT/run"          # unix socket directory (private, not /var/run/postgresql)
PG_LOG="$PG_ROOT/postgres.log"
PG_OS_USER=postgres
DB_USER=postroom
DB_PASSWORD=postroom
DB_NAME=postroom
WAIT_SECONDS=60

log() { printf '[postgres] %s\n' "$*" >&2; }
die() { printf '[postgres] ERROR: %s\n' "$*" >&2; exit 1; }

print_env() {
    echo "export POSTROOM_TEST_DATABASE_URL=postgresql+psycopg://${DB_USER}:${DB_PASSWORD}@${PG_HOST}:${PG_PORT}/${DB_NAME}"
}

# Plain libpq URL (for psql), same credentials as the exported one.
libpq_url() { echo "postgresql://${DB_USER}:${DB_PASSWORD}@${PG_HOST}:${PG_PORT}/${DB_NAME}"; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y "$@" >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2
        apt-get install -y "$@" >&2
    fi
}

# Locate the directory holding initdb/pg_ctl/postgres; installs PostgreSQL when absent.
find_pg_bin() {
    local d
    if d="$(command -v initdb 2>/dev/null)"; then dirname "$(readlink -f "$d")"; return 0; fi
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    return 1
}

ensure_installed() {
    if ! PG_BIN="$(find_pg_bin)"; then
        log "PostgreSQL server binaries not found; installing the Debian package 'postgresql'"
        apt_install postgresql
        PG_BIN="$(find_pg_bin)" || die "initdb still not found after installing postgresql"
    fi
    for tool in initdb pg_ctl postgres; do
        [[ -x "$PG_BIN/$tool" ]] || die "$PG_BIN/$tool missing"
    done
    # psql/pg_isready: prefer the versioned ones next to the server.
    PSQL="$PG_BIN/psql";          [[ -x "$PSQL" ]] || PSQL="$(command -v psql)" || die "psql not found"
    PG_ISREADY="$PG_BIN/pg_isready"; [[ -x "$PG_ISREADY" ]] || PG_ISREADY="$(command -v pg_isready)" || die "pg_isready not found"
}

ensure_os_user() {
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        log "creating system user $PG_OS_USER"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_OS_USER"
    fi
}

# Run a command as the postgres OS user (initdb/postgres refuse to run as root).
as_pg() { (cd / && runuser -u "$PG_OS_USER" -- "$@"); }

pg_running() {
    [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# "Really answers": accepting connections AND a real query as the app role works.
service_ok() {
    "$PG_ISREADY" -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1 || return 1
    PGCONNECT_TIMEOUT=3 "$PSQL" "$(libpq_url)" -XtAq -c 'select 1' 2>/dev/null | grep -qx 1
}

init_cluster() {
    mkdir -p "$OPS_DIR"
    chmod 755 "$OPS_DIR" 2>/dev/null || true
    mkdir -p "$PG_ROOT" "$PG_RUN"
    chown -R "$PG_OS_USER:" "$PG_ROOT"
    as_pg test -w "$PG_ROOT" || die "user $PG_OS_USER cannot write $PG_ROOT (is $OPS_DIR under a directory it cannot traverse?)"
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "initdb $PG_DATA"
        rm -rf "$PG_DATA"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_OS_USER" -E UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 >&2
        echo "include_if_exists = 'postroom.conf'" >>"$PG_DATA/postgresql.conf"
    fi
    # Rewritten on every start so the port/paths follow the current settings.
    cat >"$PG_DATA/postroom.conf" <<EOF
# Written by ops/postgres.sh -- test cluster for Postroom.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 200
fsync = on
logging_collector = off
EOF
    chown "$PG_OS_USER:" "$PG_DATA/postroom.conf"
    touch "$PG_LOG"; chown "$PG_OS_USER:" "$PG_LOG"
}

# SQL as the postgres superuser over the private unix socket.
admin_psql() { as_pg "$PSQL" -X -h "$PG_RUN" -p "$PG_PORT" -U "$PG_OS_USER" -d postgres -v ON_ERROR_STOP=1 "$@"; }

ensure_role_and_db() {
    admin_psql -q >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
SQL
    if [[ "$(admin_psql -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
        log "creating database $DB_NAME"
        admin_psql -q -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
    fi
}

cmd_start() {
    ensure_installed
    if service_ok; then
        log "already running and answering on $PG_HOST:$PG_PORT"
        print_env
        return 0
    fi
    ensure_os_user
    if pg_running; then
        log "cluster in $PG_DATA is running (role/database not ready yet)"
    else
        init_cluster
        log "starting cluster $PG_DATA on $PG_HOST:$PG_PORT (log: $PG_LOG)"
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_SECONDS" start >&2; then
            tail -n 30 "$PG_LOG" >&2 || true
            die "pg_ctl start failed (is port $PG_PORT already in use by something else?); see $PG_LOG"
        fi
    fi
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        "$PG_ISREADY" -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1 && break
        sleep 1
    done
    "$PG_ISREADY" -h "$PG_HOST" -p "$PG_PORT" -t 2 >&2 \
        || die "PostgreSQL did not accept connections on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s; see $PG_LOG"
    ensure_role_and_db
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if service_ok; then
            log "ready: $(libpq_url)"
            print_env
            return 0
        fi
        sleep 1
    done
    die "PostgreSQL is up but 'select 1' as $DB_USER on $PG_HOST:$PG_PORT/$DB_NAME failed within ${WAIT_SECONDS}s; see $PG_LOG"
}

cmd_stop() {
    PG_BIN="$(find_pg_bin)" || { log "PostgreSQL not installed; nothing to stop"; return 0; }
    if pg_running; then
        log "stopping cluster $PG_DATA"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$WAIT_SECONDS" stop >&2
    else
        log "cluster $PG_DATA is not running"
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
