#!/usr/bin/env bash
# All local test services for Postroom: PostgreSQL (ops/postgres.sh), MinIO (ops/minio.sh) and
# Elasticsearch (ops/elasticsearch.sh). Also an IPP printer (ops/ipp-printer.sh, CUPS's ippeveprinter)
# for the print-device channel.
#
#   ops/services.sh start   # start them all (idempotent), print all exports
#   ops/services.sh stop    # stop them all
#   ops/services.sh env     # print all exports:  eval "$(ops/services.sh env)"
#
# Progress goes to stderr; only `export ...` lines go to stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "${1:-}" in
    start)
        # Sub-scripts print their exports; collect them so a failure prints nothing half-done.
        pg_env="$("$HERE/postgres.sh" start)"
        minio_env="$("$HERE/minio.sh" start)"
        ipp_env="$("$HERE/ipp-printer.sh" start)"
        es_env="$("$HERE/elasticsearch.sh" start)"
        printf '%s\n%s\n' "$pg_env" "$minio_env"
        printf '%s\n' "$ipp_env" "$es_env"
        ;;
    stop)
        rc=0
        "$HERE/elasticsearch.sh" stop || rc=1
        "$HERE/ipp-printer.sh" stop || rc=1
        "$HERE/minio.sh" stop || rc=1
        "$HERE/postgres.sh" stop || rc=1
        exit "$rc"
        ;;
    env)
        "$HERE/postgres.sh" env
        "$HERE/minio.sh" env
        "$HERE/ipp-printer.sh" env
        "$HERE/elasticsearch.sh" env
        ;;
    *)
        echo "usage: $0 start|stop|env" >&2
        exit 2
        ;;
esac
