#!/usr/bin/env bash
# The main job, end to end: move a live 1M-row table into a TimescaleDB hypertable while
# a synthetic application keeps writing to it.
#
#   bash scripts/demo.sh          # from the repository root, as root on Debian bookworm
#
# Installs PostgreSQL 15 + TimescaleDB if needed, starts the throwaway cluster, builds
# hyperswap and the workload example, (re)creates the database hyperswap_demo, seeds
# public.metrics, starts the writer (4 connections, 300 ops/s), runs
# `hyperswap plan apply plans/demo.yaml`, stops the writer and prints its statistics
# (max_latency_ms is the application's worst stall), then `hyperswap status` and
# `hyperswap parity`. Idempotent: every run starts from a fresh database.
#
# Environment: DEMO_ROWS (default 1000000) rows to seed; the cluster's own variables
# (see scripts/cluster.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DB=hyperswap_demo
ROWS=${DEMO_ROWS:-1000000}
PLAN=plans/demo.yaml
TABLE=public.metrics

step() { printf '==> %s\n' "$*" >&2; }

WRITER_PID=""
stop_writer() {
  # Ctrl-C for the writer: it stops, then prints its statistics. Returns its exit code.
  local pid=$WRITER_PID rc=0
  WRITER_PID=""
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  return "$rc"
}
WORK_DIR=""
KEEP_WORK_DIR=""
cleanup() {
  if [ -n "$WRITER_PID" ]; then stop_writer || true; fi
  if [ -n "$WORK_DIR" ] && [ -z "$KEEP_WORK_DIR" ]; then rm -rf "$WORK_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "installing PostgreSQL 15 and TimescaleDB (if needed)"
bash scripts/install-timescaledb.sh

step "starting the throwaway cluster"
bash scripts/cluster.sh start
ADMIN_URL=$(bash scripts/cluster.sh url)
DEMO_URL="${ADMIN_URL%/*}/$DB"

step "building hyperswap and the workload example"
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  step "cargo was not found: install a Rust toolchain (1.80 or newer) and run again"
  exit 2
fi
cargo build --release --bin hyperswap --example workload
TARGET_DIR=${CARGO_TARGET_DIR:-target}
HYPERSWAP=$TARGET_DIR/release/hyperswap
WORKLOAD=$TARGET_DIR/release/examples/workload

step "creating the database $DB"
psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" \
  -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
  -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 "$DEMO_URL" -c "CREATE EXTENSION timescaledb"

export DATABASE_URL=$DEMO_URL

step "seeding $TABLE with $ROWS rows"
"$WORKLOAD" seed --table "$TABLE" --rows "$ROWS"

step "starting the writer (4 connections, 300 ops/s)"
WORK_DIR=$(mktemp -d -t hyperswap-demo.XXXXXX)
WRITER_STATS=$WORK_DIR/writer-stats.json
WRITER_LOG=$WORK_DIR/writer.log
"$WORKLOAD" write --table "$TABLE" --connections 4 --rate 300 >"$WRITER_STATS" 2>"$WRITER_LOG" &
WRITER_PID=$!
sleep 2
if ! kill -0 "$WRITER_PID" 2>/dev/null; then
  KEEP_WORK_DIR=1
  cat "$WRITER_LOG" >&2
  step "the writer did not start"
  exit 1
fi

step "hyperswap plan apply $PLAN"
APPLY_RC=0
"$HYPERSWAP" plan apply "$PLAN" || APPLY_RC=$?

if [ "$APPLY_RC" -eq 0 ]; then
  # A moment of writing through the name, now the hypertable's, before stopping.
  sleep 2
fi
step "stopping the writer"
WRITER_RC=0
stop_writer || WRITER_RC=$?
cat "$WRITER_STATS"
if [ "$WRITER_RC" -ne 0 ] || grep -q WARN "$WRITER_LOG"; then
  KEEP_WORK_DIR=1
  step "writer exit code $WRITER_RC; its log: $WRITER_LOG"
  tail -n 20 "$WRITER_LOG" >&2
fi

step "hyperswap status $PLAN"
STATUS_RC=0
"$HYPERSWAP" status "$PLAN" || STATUS_RC=$?

step "hyperswap parity $PLAN"
PARITY_RC=0
"$HYPERSWAP" parity "$PLAN" || PARITY_RC=$?

if [ "$APPLY_RC" -ne 0 ]; then
  step "plan apply failed (exit code $APPLY_RC)"
  exit "$APPLY_RC"
fi
if [ "$STATUS_RC" -ne 0 ] || [ "$PARITY_RC" -ne 0 ]; then
  step "status exited $STATUS_RC, parity exited $PARITY_RC"
  exit $((STATUS_RC != 0 ? STATUS_RC : PARITY_RC))
fi
# The application must not have seen a single failed statement.
WRITER_ERRORS=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$WRITER_STATS")
if [ "${WRITER_ERRORS:-1}" -ne 0 ] || [ "$WRITER_RC" -ne 0 ]; then
  step "the writer saw ${WRITER_ERRORS:-?} failed statements (exit code $WRITER_RC); its log: $WRITER_LOG"
  exit 1
fi
step "done: $TABLE is a hypertable"
