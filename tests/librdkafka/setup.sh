#!/usr/bin/env bash
# Fetch, patch and build librdkafka 2.0.2 (Debian bookworm's source package)
# with its integration test runner, outside the repo. Idempotent: every step
# runs only when its result is missing, so a second call takes seconds.
#
#   tests/librdkafka/setup.sh      # prints the source dir (…/librdkafka-2.0.2)
#
# Env: RDK_CACHE (default $HOME/.cache/sluice-librdkafka).
# Steps: a deb-src entry for bookworm main (if none), apt-get update,
# apt-get source librdkafka, apt-get build-dep librdkafka, ./configure,
# make libs, the patches in tests/librdkafka/*.patch, make -C tests build.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RDK_CACHE="${RDK_CACHE:-$HOME/.cache/sluice-librdkafka}"
RDK_VERSION=2.0.2
SRC="$RDK_CACHE/librdkafka-$RDK_VERSION"

log() { echo "[librdkafka setup] $*" >&2; }
if [[ "$(id -u)" = 0 ]]; then SUDO=(); else SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

have_deb_src() {
  grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}

mkdir -p "$RDK_CACHE"
# One setup at a time (run.sh against two brokers at once).
exec 9>"$RDK_CACHE/.setup.lock"
flock -w 3600 9

if [[ ! -f "$SRC/configure" ]]; then
  if ! have_deb_src; then
    log "adding a deb-src entry for bookworm main"
    "${SUDO[@]}" tee /etc/apt/sources.list.d/sluice-deb-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    "${SUDO[@]}" apt-get update
  fi
  log "apt-get source librdkafka into $RDK_CACHE"
  (cd "$RDK_CACHE" && timeout 600 apt-get source "librdkafka=$RDK_VERSION-1" \
     || timeout 600 apt-get source librdkafka)
  [[ -f "$SRC/configure" ]] || { log "no $SRC after apt-get source"; exit 1; }
fi

# Build dependencies (Debian's list: liblz4, libsasl2, libssl, libzstd, zlib, rapidjson).
if ! dpkg -s liblz4-dev libssl-dev libsasl2-dev libzstd-dev zlib1g-dev >/dev/null 2>&1 \
   || ! command -v g++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  log "apt-get build-dep librdkafka"
  if ! have_deb_src; then "${SUDO[@]}" apt-get update; fi
  "${SUDO[@]}" apt-get build-dep -y librdkafka \
    || "${SUDO[@]}" apt-get install -y build-essential liblz4-dev libssl-dev libsasl2-dev \
         libzstd-dev zlib1g-dev python3
fi

# Patches (idempotent: skipped when they reverse-apply cleanly, i.e. are in).
for p in "$HERE"/*.patch; do
  [[ -e "$p" ]] || continue
  if patch -d "$SRC" -p1 -R --dry-run -s -f <"$p" >/dev/null 2>&1; then
    continue
  fi
  log "applying $(basename "$p")"
  patch -d "$SRC" -p1 -N -s <"$p"
done

cd "$SRC"
if [[ ! -f Makefile.config ]]; then
  log "./configure"
  nice ./configure >"$RDK_CACHE/configure.log" 2>&1 || { tail -n 30 "$RDK_CACHE/configure.log" >&2; exit 1; }
fi
if [[ ! -f src/librdkafka.so.1 || ! -f src-cpp/librdkafka++.so.1 ]]; then
  log "make libs (log: $RDK_CACHE/make.log)"
  nice make -j2 libs >"$RDK_CACHE/make.log" 2>&1 || { tail -n 30 "$RDK_CACHE/make.log" >&2; exit 1; }
fi
# make is incremental: this relinks the runner only after a (new) patch.
if ! nice make -j2 -C tests test-runner >"$RDK_CACHE/make-tests.log" 2>&1; then
  tail -n 30 "$RDK_CACHE/make-tests.log" >&2; exit 1
fi
[[ -x tests/test-runner ]] || { log "tests/test-runner was not built"; exit 1; }
echo "$SRC"
