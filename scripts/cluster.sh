#!/usr/bin/env bash
# A throwaway PostgreSQL 15 + TimescaleDB cluster on a private port, for the demo and tests.
#
#   scripts/cluster.sh start   # idempotent: reuses a running cluster; prints nothing else
#   scripts/cluster.sh stop
#   scripts/cluster.sh url     # the admin connection URL
#   scripts/cluster.sh destroy # stop and delete the data directory
#
# Environment: HYPERSWAP_PGPORT (default 54329), HYPERSWAP_PGROOT (default
# /var/tmp/hyperswap-pg: data, socket and server.log), HYPERSWAP_PGDATA (default
# $HYPERSWAP_PGROOT/data). The cluster trusts local connections: it is for tests only.
set -euo pipefail

PORT=${HYPERSWAP_PGPORT:-54329}
ROOT=${HYPERSWAP_PGROOT:-/var/tmp/hyperswap-pg}
DATA=${HYPERSWAP_PGDATA:-$ROOT/data}
BIN=/usr/lib/postgresql/15/bin
OWNER=postgres

log() { printf '[cluster] %s\n' "$*" >&2; }

as_owner() {
  if [ "$(id -un)" = "$OWNER" ]; then "$@"
  elif [ "$(id -u)" -eq 0 ]; then runuser -u "$OWNER" -- "$@"
  else OWNER=$(id -un); "$@"
  fi
}

if [ "$(id -u)" -ne 0 ] && [ "$(id -un)" != postgres ]; then OWNER=$(id -un); fi

running() { as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    mkdir -p "$ROOT"
    chown "$OWNER" "$ROOT" 2>/dev/null || true
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$DATA/postgresql.conf" <<CONF
# hyperswap throwaway cluster
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DATA'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
timescaledb.max_background_workers = 0
max_connections = 200
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
log_min_messages = warning
log_min_error_statement = panic
CONF
  fi
  if running; then
    return 0
  fi
  log "starting PostgreSQL on 127.0.0.1:$PORT"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -o "-p $PORT" -w -t 60 start >/dev/null
}

case "${1:-start}" in
  start) start ;;
  stop) running && as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || true ;;
  url) echo "postgres://postgres@127.0.0.1:$PORT/postgres" ;;
  destroy)
    running && as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null || true
    rm -rf "$DATA" ;;
  *) echo "usage: $0 start|stop|url|destroy" >&2; exit 2 ;;
esac
