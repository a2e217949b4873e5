#!/usr/bin/env bash
# Fault test wrapper: starts a private Redis and PostgreSQL (scripts/services.sh, in a temporary
# directory removed again on exit) so that the Check program fault_reconnect can kill and restart
# them without disturbing the servers other tests use.
# Usage: tests/fault_reconnect.sh SOURCE_ROOT FAULT_RECONNECT_BINARY
set -euo pipefail
root=${1:?usage: fault_reconnect.sh SOURCE_ROOT BINARY}
bin=${2:?usage: fault_reconnect.sh SOURCE_ROOT BINARY}

# shellcheck source=../scripts/services.sh disable=SC1091
source "$root/scripts/services.sh"
# Fresh ports and a fresh directory, whatever the caller's environment says.
unset AIPALQ_SVC_DIR AIPALQ_PREFER_REDIS_PORT AIPALQ_PREFER_PG_PORT
services_start
services_cleanup_on_exit
export AIPALQ_SERVICES_SH=$root/scripts/services.sh
"$bin"
