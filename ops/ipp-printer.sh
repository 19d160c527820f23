#!/usr/bin/env bash
# Local IPP Everywhere printer for Postroom's print-device channel tests: CUPS's ippeveprinter on loopback.
#
#   ops/ipp-printer.sh start   # apt-install cups-ipp-utils if missing, start the printer, print env
#   ops/ipp-printer.sh stop    # stop the printer started by this script
#   ops/ipp-printer.sh env     # print the export lines
#
# Human-readable progress goes to stderr; only `export ...` lines go to stdout,
# so `eval "$(ops/ipp-printer.sh start)"` works too.
#
# The printer accepts application/pdf, keeps every job's file in its spool directory (-k) and completes a job
# after a short simulated print. ippeveprinter insists on DNS-SD (Avahi over the D-Bus system bus); instead of
# the machine's bus and an Avahi daemon (which would announce the printer on the network) it gets a private,
# empty bus of its own and `-r off`, so nothing is announced and it listens on localhost only.
#
# Settings (environment):
#   POSTROOM_OPS_DIR   (default /tmp/postroom-ops)  state in $POSTROOM_OPS_DIR/ipp (spool/, logs, pids)
#   POSTROOM_IPP_PORT  (default 58631)              IPP port on 127.0.0.1 and ::1
set -euo pipefail

OPS_DIR="${POSTROOM_OPS_DIR:-/tmp/postroom-ops}"
IPP_PORT="${POSTROOM_IPP_PORT:-58631}"
IPP_DIR="$OPS_DIR/ipp"
SPOOL="$IPP_DIR/spool"
LOG="$IPP_DIR/ippeveprinter.log"
PIDFILE="$IPP_DIR/ippeveprinter.pid"
BUS_SOCKET="$IPP_DIR/dbus.sock"
BUS_PIDFILE="$IPP_DIR/dbus.pid"
PRINTER_NAME="Postroom Test Printer"
URI="ipp://127.0.0.1:$IPP_PORT/ipp/print"
WAIT_SECONDS=30

log() { printf '[ipp-printer] %s\n' "$*" >&2; }
die() { printf '[ipp-printer] ERROR: %s\n' "$*" >&2; exit 1; }

print_env() {
    echo "export POSTROOM_TEST_IPP_URI=$URI"
    echo "export POSTROOM_TEST_IPP_SPOOL=$SPOOL"
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@" >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2
        apt-get install -y --no-install-recommends "$@" >&2
    fi
}

ensure_tools() {
    if ! command -v ippeveprinter >/dev/null 2>&1 || ! command -v ipptool >/dev/null 2>&1; then
        log "installing the Debian package 'cups-ipp-utils' (ippeveprinter, ipptool)"
        apt_install cups-ipp-utils
    fi
    if ! command -v dbus-daemon >/dev/null 2>&1; then
        log "installing the Debian package 'dbus-daemon' (a private bus for ippeveprinter)"
        apt_install dbus-daemon || apt_install dbus
    fi
    command -v ippeveprinter >/dev/null 2>&1 || die "ippeveprinter still missing after installing cups-ipp-utils"
}

healthy() {
    command -v ipptool >/dev/null 2>&1 &&
        ipptool -q -T 3 "$URI" get-printer-attributes.test >/dev/null 2>&1
}

# Prints the pid in $1 if it is alive and its command line contains $2.
live_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
    echo "$pid"
}

start_bus() {
    if live_pid "$BUS_PIDFILE" "$BUS_SOCKET" >/dev/null; then return 0; fi
    rm -f "$BUS_SOCKET"
    dbus-daemon --session --address="unix:path=$BUS_SOCKET" --fork --print-pid --nopidfile >"$BUS_PIDFILE" \
        || die "could not start a private dbus-daemon"
}

cmd_start() {
    if healthy; then
        log "already running and answering at $URI"
        print_env
        return 0
    fi
    ensure_tools
    mkdir -p "$SPOOL"
    local pid
    if pid="$(live_pid "$PIDFILE" ippeveprinter)"; then
        log "ippeveprinter (pid $pid) is running but not answering yet; waiting"
    else
        start_bus
        log "starting ippeveprinter on localhost:$IPP_PORT, spool $SPOOL, log $LOG"
        DBUS_SYSTEM_BUS_ADDRESS="unix:path=$BUS_SOCKET" \
            setsid nohup ippeveprinter -p "$IPP_PORT" -n localhost -r off -f application/pdf -k -d "$SPOOL" \
                -M Postroom -m "Test Printer" "$PRINTER_NAME" >>"$LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi
    local i
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        if healthy; then
            log "ready: $URI (pid $pid)"
            print_env
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            die "ippeveprinter exited during startup (port $IPP_PORT in use?); see $LOG"
        fi
        sleep 0.5
    done
    tail -n 20 "$LOG" >&2 || true
    die "ippeveprinter did not answer at $URI within ${WAIT_SECONDS}s; see $LOG"
}

stop_pid() {  # pidfile, pattern, label
    local pid i
    if ! pid="$(live_pid "$1" "$2")"; then
        rm -f "$1"
        return 1
    fi
    log "stopping $3 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

cmd_stop() {
    local stopped=0
    stop_pid "$PIDFILE" ippeveprinter ippeveprinter && stopped=1
    stop_pid "$BUS_PIDFILE" "$BUS_SOCKET" "the private dbus-daemon" || true
    rm -f "$BUS_SOCKET"
    if [[ "$stopped" == 0 ]]; then
        if healthy; then
            die "something answers at $URI but it was not started by this script (no valid $PIDFILE); not stopping it"
        fi
        log "ippeveprinter is not running"
    else
        log "stopped"
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
