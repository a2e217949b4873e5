#!/usr/bin/env bash
# Builds what the container images ship: the two daemons and the shared library, nothing else.
# The Dockerfiles run it in their build stage, and tests/packaging/run.sh runs the very same
# script on the same sources, so the binaries tested there are built the way the images are.
#
# Usage: docker/build-dist.sh SRCDIR BUILDDIR DISTDIR
#   DISTDIR receives usr/local/bin/aipal-api, usr/local/bin/aipal-worker and
#   usr/local/lib/libaipalq.so.* (stripped; no headers, static library or pkg-config file).
# Exits non-zero, naming what is missing, when either daemon was not built.
set -euo pipefail

src=$(cd "${1:?usage: build-dist.sh SRCDIR BUILDDIR DISTDIR}" && pwd)
build=${2:?usage: build-dist.sh SRCDIR BUILDDIR DISTDIR}
dist=${3:?usage: build-dist.sh SRCDIR BUILDDIR DISTDIR}

# Release build; -Dwerror=false: warnings are enforced by the development builds, a new
# optimiser warning must not break an image build.
setup_opts=(--buildtype=release -Dtests=false -Dwerror=false -Db_ndebug=if-release
  --prefix=/usr/local --libdir=lib)

if [[ -f $build/meson-private/coredata.dat ]]; then
  meson setup --reconfigure "$build" "$src" "${setup_opts[@]}" >/dev/null
else
  meson setup "$build" "$src" "${setup_opts[@]}"
fi
meson compile -C "$build"

missing=()
for d in api worker; do
  [[ -x $build/daemons/$d/aipal-$d ]] || missing+=("daemons/$d/aipal-$d")
done
if ((${#missing[@]})); then
  echo "build-dist: not built: ${missing[*]} (is libmicrohttpd-dev installed? are the daemons in daemons/meson.build?)" >&2
  exit 1
fi

rm -rf "$dist"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --no-rebuild --destdir "$stage" --tags runtime >/dev/null
mkdir -p "$dist/usr/local/bin" "$dist/usr/local/lib"
for d in api worker; do
  # Installed when the daemon's meson.build says install: true; else the build tree's binary
  # (its build-tree RUNPATH is removed).
  if [[ -x $stage/usr/local/bin/aipal-$d ]]; then
    cp "$stage/usr/local/bin/aipal-$d" "$dist/usr/local/bin/"
  else
    cp "$build/daemons/$d/aipal-$d" "$dist/usr/local/bin/"
    if command -v chrpath >/dev/null; then chrpath -d "$dist/usr/local/bin/aipal-$d" >/dev/null || true; fi
  fi
done
cp -P "$stage"/usr/local/lib/libaipalq.so.* "$dist/usr/local/lib/"
strip --strip-unneeded "$dist"/usr/local/bin/*
find "$dist/usr/local/lib" -type f -exec strip --strip-unneeded {} +
echo "build-dist: $(cd "$dist" && find . -type f -o -type l | sort | tr '\n' ' ')" >&2
