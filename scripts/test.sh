#!/usr/bin/env bash
# The test command: installs what is missing (PostgreSQL 15 + TimescaleDB), starts the
# throwaway cluster, and runs every test against it. Idempotent; safe to run again.
#
#   bash scripts/test.sh            # all tests
#   bash scripts/test.sh parity     # only tests whose name contains "parity"
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-timescaledb.sh
bash scripts/cluster.sh start
HYPERSWAP_TEST_URL=$(bash scripts/cluster.sh url)
HYPERSWAP_TEST_TLS_DIR=$(bash scripts/cluster.sh tls-dir)
export HYPERSWAP_TEST_URL HYPERSWAP_TEST_TLS_DIR

echo "==> cargo test (server: $HYPERSWAP_TEST_URL)" >&2
cargo test --locked --workspace "$@"
