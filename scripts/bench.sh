#!/usr/bin/env bash
# hyperswap's benchmarks, each a ratio against a baseline measured in the same run.
#
#   bash scripts/bench.sh parity                  # 5M rows, 5 rounds
#   bash scripts/bench.sh parity --rows 1000000   # arguments go to examples/bench.rs
#   bash scripts/bench.sh backfill --rounds 3 --compare OLD_BINARY   # tool vs pgslice-style loop (vs another build)
#   bash scripts/bench.sh cutover --rounds 3      # a writer's longest stall during cutover and rollback
#
# Uses the throwaway cluster (scripts/cluster.sh) and a database hyperswap_bench, kept
# between runs so the 5M-row pair is built only once.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-timescaledb.sh
bash scripts/cluster.sh start
ADMIN_URL=$(bash scripts/cluster.sh url)
DB=hyperswap_bench
if ! psql -X -qtA "$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "CREATE DATABASE $DB"
  psql -X -q -v ON_ERROR_STOP=1 "${ADMIN_URL%/*}/$DB" -c "CREATE EXTENSION timescaledb"
fi
cargo build --release --locked --bin hyperswap --example bench
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
exec target/release/examples/bench "$@"
