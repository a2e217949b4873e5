#!/usr/bin/env bash
# Runs a command the way the container images run it: as uid/gid 1000 with no supplementary
# groups and no capabilities, with every filesystem read-only except the given writable paths
# (fresh tmpfs each, owned by 1000, like emptyDir volumes), and with DIST/usr/local (the output
# of docker/build-dist.sh) mounted at /usr/local, so /usr/local/bin/aipal-* and
# /usr/local/lib/libaipalq.so.* sit where the images put them. Needs root (a private mount
# namespace); the network namespace is the host's, so loopback services stay reachable.
#
# Usage: sandbox.sh DIST WRITABLE[:WRITABLE...] -- COMMAND [ARGS...]
#   The environment is passed through as given (run it under `env -i ...` to control it).
#   The command is exec'd: the PID of sandbox.sh becomes the daemon's PID.
set -euo pipefail
if [[ ${1:-} != --inside ]]; then
  dist=$(cd "$1" && pwd)
  writable=$2
  shift 2
  [[ ${1:-} == -- ]] && shift
  exec unshare --mount --propagation private -- "$0" --inside "$dist" "$writable" "$@"
fi
shift
dist=$1 writable=$2
shift 2

# Everything read-only (the sandbox's own tool mounts under /mnt are left alone).
while read -r m; do
  case $m in /proc* | /sys* | /dev | /dev/pts* | /mnt/*) continue ;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done < <(findmnt -rno TARGET | awk '{ print length, $0 }' | sort -n | cut -d' ' -f2-)

# The image's /usr/local.
mount --bind "$dist/usr/local" /usr/local
mount -o remount,bind,ro /usr/local

# Writable paths: tmpfs owned by 1000. A path whose parent does not exist gets a read-only
# tmpfs scaffold at its nearest existing ancestor.
IFS=: read -r -a paths <<<"$writable"
for p in "${paths[@]}"; do
  [[ -n $p ]] || continue
  if [[ ! -d $p ]]; then
    a=$p
    while [[ ! -d $a ]]; do a=$(dirname "$a"); done
    if ! mountpoint -q "$a" || [[ $(findmnt -no FSTYPE "$a") != tmpfs ]]; then
      mount -t tmpfs -o mode=0755 tmpfs "$a"
    else
      mount -o remount,rw "$a"
    fi
    mkdir -p "$p"
    mount -o remount,ro "$a"
  fi
  mount -t tmpfs -o mode=0750,uid=1000,gid=1000,size=256m tmpfs "$p"
done

cd /
exec setpriv --reuid 1000 --regid 1000 --clear-groups --inh-caps=-all --bounding-set=-all \
  --no-new-privs -- "$@"
