#!/usr/bin/env bash
# Install test: libaipalq installed into a temporary place works for a program built outside
# this tree, with nothing but pkg-config to find it.
#   - pkg-config --cflags --libs aipalq points into the installation;
#   - headers, libaipalq.so (SONAME libaipalq.so.1) and libaipalq.a are installed;
#   - examples/enqueue.c compiles as C11 and as C++ (-x c++), links against the shared and
#     against the static library, and the programs run against the servers of
#     AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL (required: the test fails without them) and list
#     the tasks they enqueued.
#
# Usage: tests/install_test.sh SOURCE_ROOT [BUILDDIR]
#   without BUILDDIR: configures, builds and installs a fresh build with --prefix=TMP/prefix
#   with BUILDDIR:    meson install --destdir TMP/dest of that (already built) build directory,
#                     found through PKG_CONFIG_SYSROOT_DIR; a sanitizer build's flags are reused
set -euo pipefail
root=$(cd "${1:?usage: install_test.sh SOURCE_ROOT [BUILDDIR]}" && pwd)
builddir=${2:-}

passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

if [[ -z ${AIPALQ_REDIS_URL:-} || -z ${AIPALQ_DATABASE_URL:-} ]]; then
  echo "FAIL: AIPALQ_REDIS_URL and AIPALQ_DATABASE_URL must name running servers" \
    "(source scripts/services.sh; services_start DIR)" >&2
  exit 1
fi

tmp=$(mktemp -d /tmp/aipalq-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sanitize=none

if [[ -z $builddir ]]; then
  prefix=$tmp/prefix
  libdir=$prefix/lib
  includedir=$prefix/include
  echo "install: configuring and building $root into $prefix"
  meson setup "$tmp/build" "$root" --prefix="$prefix" --libdir=lib -Dtests=false \
    --buildtype=debugoptimized >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
  meson compile -C "$tmp/build" >"$tmp/compile.log" 2>&1 || { tail -n 40 "$tmp/compile.log" >&2; exit 1; }
  meson install -C "$tmp/build" --no-rebuild >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; exit 1; }
  export PKG_CONFIG_PATH=$libdir/pkgconfig
  unset PKG_CONFIG_SYSROOT_DIR
else
  builddir=$(cd "$builddir" && pwd)
  read -r o_prefix o_libdir o_includedir sanitize < <(meson introspect "$builddir" --buildoptions |
    python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], o["libdir"], o["includedir"], o.get("b_sanitize", "none"))')
  dest=$tmp/dest
  prefix=$dest$o_prefix
  [[ $o_libdir == /* ]] && libdir=$dest$o_libdir || libdir=$prefix/$o_libdir
  [[ $o_includedir == /* ]] && includedir=$dest$o_includedir || includedir=$prefix/$o_includedir
  echo "install: meson install --destdir $dest of $builddir"
  meson install -C "$builddir" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; exit 1; }
  export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
fi

# What is installed.
check "header aipal/aipalq.h installed" test -f "$includedir/aipal/aipalq.h"
check "header aipal/status.h installed" test -f "$includedir/aipal/status.h"
check "header aipal/version.h installed" test -f "$includedir/aipal/version.h"
check "no internal header installed" test ! -e "$includedir/aipal/internal.h"
check "libaipalq.so installed" test -e "$libdir/libaipalq.so"
check "libaipalq.so.1 installed" test -e "$libdir/libaipalq.so.1"
check "static libaipalq.a installed" test -f "$libdir/libaipalq.a"
check "pkg-config file installed" test -f "$libdir/pkgconfig/aipalq.pc"
soname=$(readelf -d "$libdir/libaipalq.so" | sed -nE 's/.*\(SONAME\).*\[(.*)\]/\1/p')
check "SONAME is libaipalq.so.1 (got '$soname')" test "$soname" = libaipalq.so.1
check "libaipalq.a holds the library's objects" \
  bash -c "nm '$libdir/libaipalq.a' 2>/dev/null | grep -q ' T aipalq_enqueue$'"

# pkg-config.
check "pkg-config finds aipalq" pkg-config --exists aipalq
version=$(sed -nE 's/^#define AIPALQ_VERSION_STRING "(.*)"/\1/p' "$root/include/aipal/version.h")
check "pkg-config version is $version" test "$(pkg-config --modversion aipalq)" = "$version"
cflags=$(pkg-config --cflags aipalq)
libs=$(pkg-config --libs aipalq)
check "cflags point at the installed headers ($cflags)" grep -qF -- "-I$includedir" <<<"$cflags"
check "libs point at the installed library ($libs)" grep -qF -- "-L$libdir" <<<"$libs"
check "libs link -laipalq" grep -qw -- "-laipalq" <<<"$libs"

extra=()
if [[ $sanitize != none ]]; then
  extra=("-fsanitize=$sanitize")
fi
example=$root/examples/enqueue.c
# shellcheck disable=SC2086
check "examples/enqueue.c compiles and links as C11" \
  cc -std=c11 -Wall -Wextra -Werror -pedantic "${extra[@]}" "$example" $cflags -o "$tmp/enqueue_c" $libs
# shellcheck disable=SC2086
check "examples/enqueue.c compiles and links as C++ (-x c++)" \
  c++ -x c++ -std=c++17 -Wall -Wextra -Werror "${extra[@]}" "$example" -x none $cflags -o "$tmp/enqueue_cpp" $libs
# libaipalq.a with its dependencies (Requires.private) as shared libraries: pkg-config --static
# would also want the static-only archives of libpq's own dependencies.
private=$(pkg-config --print-requires-private aipalq | awk '{ print $1 }')
# shellcheck disable=SC2086
static_libs="$(pkg-config --libs $private) -pthread -lm"
# shellcheck disable=SC2086
check "examples/enqueue.c links against the static library" \
  cc -std=c11 "${extra[@]}" "$example" $cflags -o "$tmp/enqueue_static" "$libdir/libaipalq.a" $static_libs
check "the static program does not need libaipalq.so" \
  bash -c "test -x '$tmp/enqueue_static' && ! readelf -d '$tmp/enqueue_static' | grep -q 'libaipalq'"

# The installed library is the one the program loads.
resolved=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/enqueue_c" | awk '/libaipalq/ { print $3 }')
check "the program loads the installed libaipalq.so.1 ($resolved)" test "$resolved" = "$libdir/libaipalq.so.1"

run_example() { # run_example NAME BINARY
  local out=$tmp/$1.out rc=0
  LD_LIBRARY_PATH=$libdir "$2" >"$out" 2>"$tmp/$1.err" || rc=$?
  if ((rc != 0)); then
    fail "$1 runs (exit status $rc): $(tail -n 5 "$tmp/$1.err")"
    return
  fi
  ok "$1 runs"
  check "$1 reports its version" grep -qE "^libaipalq $version$" "$out"
  check "$1 enqueued a batch" grep -qE '^batch of 100 enqueued, first [0-9a-f-]{36}$' "$out"
  check "$1 lists the tasks it enqueued" bash -c "
    sed -n '/^tasks:/,/^pending view/p' '$out' | grep -cE '^  [0-9a-f-]{36}  (aggregate_ari_snapshots|plan_ffe_goal|echo) ' | grep -qx 3"
  check "$1 lists pending tasks as JSON" grep -qE '^  \{"task_id":"[0-9a-f-]{36}"' "$out"
}
run_example enqueue_c "$tmp/enqueue_c"
run_example enqueue_cpp "$tmp/enqueue_cpp"
run_example enqueue_static "$tmp/enqueue_static"

echo "install: $passed passed, $failed failed"
((failed == 0))
