#!/usr/bin/env bash
# Configures (once) and compiles a meson build directory of this checkout.
# Usage: scripts/build.sh [BUILDDIR [MESON-SETUP-OPTIONS...]]
#   scripts/build.sh                                   -> build/ with --buildtype=debugoptimized
#   scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
# The options apply when BUILDDIR is first configured; later runs just compile
# (meson reconfigures by itself when meson.build files change).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

builddir=${1:-build}
shift || true
(($# > 0)) || set -- --buildtype=debugoptimized

if [[ ! -f $builddir/meson-private/coredata.dat ]]; then
  meson setup "$builddir" "$@"
fi
meson compile -C "$builddir"
