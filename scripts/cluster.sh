#!/usr/bin/env bash
# A throwaway PostgreSQL 15 + TimescaleDB cluster on a private port, for the demo and tests.
#
#   scripts/cluster.sh start   # idempotent: reuses a running cluster; prints nothing else
#   scripts/cluster.sh stop
#   scripts/cluster.sh url     # the admin connection URL
#   scripts/cluster.sh destroy # stop and delete the data directory
#   scripts/cluster.sh tls-dir # where the test CA and server certificate are
#
# Environment: HYPERSWAP_PGPORT (default 54329), HYPERSWAP_PGROOT (default
# /var/tmp/hyperswap-pg: data, socket and server.log), HYPERSWAP_PGDATA (default
# $HYPERSWAP_PGROOT/data). The cluster trusts local connections: it is for tests only.
#
# TLS is on: `start` makes a CA (ca.crt, ca.key) and a server certificate for localhost
# and 127.0.0.1 in $HYPERSWAP_PGROOT/tls, and adds TLS to a cluster made without it
# (config reloaded, no restart). Two roles are TLS-only (the tests create them):
# hyperswap_cert logs in with a client certificate (CN=hyperswap_cert, signed by the
# CA), hyperswap_scram with a SCRAM password.
set -euo pipefail

PORT=${HYPERSWAP_PGPORT:-54329}
ROOT=${HYPERSWAP_PGROOT:-/var/tmp/hyperswap-pg}
DATA=${HYPERSWAP_PGDATA:-$ROOT/data}
TLS=$ROOT/tls
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
  local changed
  changed=$(tls_setup)
  if running; then
    if [ -n "$changed" ]; then
      log "turning TLS on ($TLS)"
      as_owner "$BIN/pg_ctl" -D "$DATA" reload >/dev/null
      wait_for_tls
    fi
    return 0
  fi
  log "starting PostgreSQL on 127.0.0.1:$PORT"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -o "-p $PORT" -w -t 60 start >/dev/null
}

# The test CA, the server's certificate and the TLS settings, each written only when
# missing; prints "changed" when the configuration was.
tls_setup() {
  command -v openssl >/dev/null || apt-get install -y -qq openssl >/dev/null
  mkdir -p "$TLS"
  if [ ! -f "$TLS/ca.crt" ]; then
    log "making a test CA in $TLS"
    openssl req -x509 -new -nodes -days 3650 -subj "/CN=hyperswap test CA" \
      -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null
  fi
  if [ ! -f "$TLS/server.crt" ]; then
    openssl req -new -nodes -subj "/CN=localhost" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
      >"$TLS/server.ext"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial \
      -days 3650 -extfile "$TLS/server.ext" -out "$TLS/server.crt" 2>/dev/null
  fi
  chown -R "$OWNER" "$TLS" 2>/dev/null || true
  chmod 600 "$TLS/server.key" "$TLS/ca.key"
  if ! grep -q '^# hyperswap TLS' "$DATA/postgresql.conf"; then
    cat >>"$DATA/postgresql.conf" <<CONF
# hyperswap TLS
ssl = on
ssl_cert_file = '$TLS/server.crt'
ssl_key_file = '$TLS/server.key'
ssl_ca_file = '$TLS/ca.crt'
CONF
    echo changed
  fi
  if ! grep -q '^# hyperswap TLS' "$DATA/pg_hba.conf"; then
    local hba
    hba=$(cat "$DATA/pg_hba.conf")
    cat >"$DATA/pg_hba.conf" <<HBA
# hyperswap TLS: two TLS-only roles for the tests; everyone else as below
hostssl   all hyperswap_cert  127.0.0.1/32 cert
hostssl   all hyperswap_scram 127.0.0.1/32 scram-sha-256
hostnossl all hyperswap_cert  127.0.0.1/32 reject
hostnossl all hyperswap_scram 127.0.0.1/32 reject
$hba
HBA
    echo changed
  fi
}

# After a reload, new sessions see ssl=on within a moment.
wait_for_tls() {
  for _ in $(seq 50); do
    if [ "$("$BIN/psql" -h "$DATA" -p "$PORT" -U postgres -XAtc 'SHOW ssl' postgres 2>/dev/null)" = on ]; then
      return 0
    fi
    sleep 0.1
  done
  log "TLS did not come on after a reload; see $ROOT/server.log"
  return 1
}

case "${1:-start}" in
  start) start ;;
  stop) running && as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || true ;;
  url) echo "postgres://postgres@127.0.0.1:$PORT/postgres" ;;
  tls-dir) echo "$TLS" ;;
  destroy)
    running && as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null || true
    rm -rf "$DATA" "$TLS" ;;
  *) echo "usage: $0 start|stop|url|tls-dir|destroy" >&2; exit 2 ;;
esac
