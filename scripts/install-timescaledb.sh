#!/usr/bin/env bash
# Installs what hyperswap's tests and demo need on a fresh Debian bookworm machine:
# PostgreSQL 15 (server + contrib) and TimescaleDB 2.19 (Apache-only), built from
# Debian trixie's source package. Idempotent: does nothing when already installed.
#
# The machine's own apt configuration is left untouched: trixie's source index is
# fetched through a private sources list under $WORK.
set -euo pipefail

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
WORK=${HYPERSWAP_BUILD_DIR:-/var/tmp/hyperswap-timescaledb-build}

log() { printf '[install-timescaledb] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

installed() {
  [ -x "$PG_CONFIG" ] || return 1
  local libdir sharedir
  libdir=$("$PG_CONFIG" --pkglibdir)
  sharedir=$("$PG_CONFIG" --sharedir)
  ls "$libdir"/timescaledb*.so >/dev/null 2>&1 &&
    [ -f "$sharedir/extension/timescaledb.control" ] &&
    [ -x /usr/lib/postgresql/$PG_MAJOR/bin/initdb ]
}

if installed; then
  log "PostgreSQL $PG_MAJOR and TimescaleDB are already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
$SUDO apt-get update -qq
log "installing PostgreSQL $PG_MAJOR server and build tools"
$SUDO apt-get install -y -qq "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" \
  postgresql-contrib cmake gcc make xz-utils dpkg-dev >/dev/null

# The mirror the machine already uses for bookworm, so we reach only what it reaches.
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$MIRROR" ]; then
  MIRROR=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$MIRROR" ]; then
  MIRROR=${HYPERSWAP_DEBIAN_MIRROR:-}
fi
if [ -z "$MIRROR" ]; then
  log "error: no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  log "fix: set HYPERSWAP_DEBIAN_MIRROR to the Debian mirror this machine may use (the URL apt uses), then run again"
  exit 2
fi

rm -rf "$WORK"
mkdir -p "$WORK/lists/partial" "$WORK/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" \
  >"$WORK/trixie-src.list"
APT_OPTS=(-o "Dir::Etc::SourceList=$WORK/trixie-src.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$WORK/lists")
log "fetching the timescaledb source package from trixie ($MIRROR)"
$SUDO apt-get "${APT_OPTS[@]}" update -qq
(cd "$WORK/src" && $SUDO apt-get "${APT_OPTS[@]}" source --download-only -qq timescaledb)

ORIG=$(ls "$WORK"/src/timescaledb_*.orig.tar.* | head -n1)
mkdir -p "$WORK/build-src"
tar -xf "$ORIG" -C "$WORK/build-src" --strip-components=1
log "building $(basename "$ORIG")"
(
  cd "$WORK/build-src"
  ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
    -DWARNINGS_AS_ERRORS=OFF -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF \
    -DPG_CONFIG="$PG_CONFIG" >"$WORK/bootstrap.log" 2>&1 || { tail -50 "$WORK/bootstrap.log"; exit 1; }
  make -C build -j"$(nproc)" >"$WORK/make.log" 2>&1 || { tail -50 "$WORK/make.log"; exit 1; }
  $SUDO make -C build install >"$WORK/install.log" 2>&1 || { tail -50 "$WORK/install.log"; exit 1; }
)
installed || { log "TimescaleDB did not install"; exit 1; }
log "TimescaleDB installed into $("$PG_CONFIG" --pkglibdir)"
