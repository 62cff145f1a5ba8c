#!/usr/bin/env bash
# Builds target/debian/hyperswap_<version>_<arch>.deb (under CARGO_TARGET_DIR if set): the stripped release binary, bash,
# zsh and fish completions and a man page generated from the command line's definition,
# and the README. Then checks it: its contents, and (as root, with --install) that
# `dpkg -i` installs a working tool whose man page and completions are in place.
#
#   bash scripts/package.sh              # build and check the contents
#   bash scripts/package.sh --install    # also dpkg -i it, run it, and remove it again
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dpkg-deb >/dev/null || { echo "package.sh: dpkg-deb is missing (Debian's dpkg package)" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bin hyperswap
bin=$target/release/hyperswap
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
root=$target/debian/root
rm -rf "$root"
install -Dm755 "$bin" "$root/usr/bin/hyperswap"
mkdir -p "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
         "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1" "$root/usr/share/doc/hyperswap"
"$bin" completions bash > "$root/usr/share/bash-completion/completions/hyperswap"
"$bin" completions zsh  > "$root/usr/share/zsh/vendor-completions/_hyperswap"
"$bin" completions fish > "$root/usr/share/fish/vendor_completions.d/hyperswap.fish"
"$bin" man | gzip -9n > "$root/usr/share/man/man1/hyperswap.1.gz"
install -m644 README.md "$root/usr/share/doc/hyperswap/README.md"
install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: hyperswap
Version: $version
Architecture: $arch
Maintainer: hyperswap developers
Section: database
Priority: optional
Depends: libc6
Recommends: postgresql-client
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Description: move a live PostgreSQL table into a TimescaleDB hypertable
 Blue/green, with zero downtime: a resumable state machine driven by a YAML plan
 (create the hypertable, copy triggers, backfill, parity, atomic rename cutover,
 rollback).
CONTROL
deb="$target/debian/hyperswap_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null

# Check what is inside.
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/hyperswap ./usr/share/man/man1/hyperswap.1.gz \
         ./usr/share/bash-completion/completions/hyperswap ./usr/share/zsh/vendor-completions/_hyperswap \
         ./usr/share/fish/vendor_completions.d/hyperswap.fish; do
  grep -q " $f\$" <<<"$contents" || { echo "package.sh: $f is missing from $deb" >&2; exit 1; }
done
if file "$bin" | grep -q "not stripped"; then echo "package.sh: the binary is not stripped" >&2; exit 1; fi

if [ "${1:-}" = "--install" ]; then
  [ "$(id -u)" = 0 ] || { echo "package.sh: --install needs root (dpkg -i)" >&2; exit 2; }
  dpkg -i "$deb" >/dev/null
  /usr/bin/hyperswap --version
  /usr/bin/hyperswap --help | grep -q "Exit codes:"
  test -s /usr/share/man/man1/hyperswap.1.gz
  zcat /usr/share/man/man1/hyperswap.1.gz | grep -q '^\.TH hyperswap'
  dpkg -r hyperswap >/dev/null
  echo "package.sh: installed, ran and removed $deb"
fi
echo "$deb ($(du -h "$deb" | cut -f1), binary $(du -h "$bin" | cut -f1))"
