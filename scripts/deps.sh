#!/usr/bin/env bash
# Installs the Debian 12 packages libaipalq needs to build, test and run, when any is missing.
# Idempotent: when everything is present it only runs dpkg-query and touches nothing.
# Usage: scripts/deps.sh            (needs root, or sudo, only when something must be installed)
set -euo pipefail

packages=(
  build-essential pkg-config meson ninja-build
  libhiredis-dev libpq-dev libcjson-dev check libmicrohttpd-dev libcurl4-openssl-dev
  redis-server postgresql-15 postgresql-client-15
  python3 clang libclang-rt-14-dev valgrind
  python3-psycopg2 # tests/python: the transactional enqueue through a psycopg2 connection
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages installed" >&2
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "deps: must run as root (or have sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo -n)
fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
