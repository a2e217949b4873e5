#!/usr/bin/env bash
# Local Redis and PostgreSQL for tests, scripts/run.sh and benchmarks: the one place that starts
# and stops them. Both listen on 127.0.0.1 only, on free ports, with all their data in one DIR.
#
# As a library (functions return non-zero with a message on stderr; nothing calls exit):
#   source scripts/services.sh
#   services_start [DIR]       start both (DIR default: a fresh mktemp -d /tmp/aipalq-svc.XXXXXX,
#                              removed again by services_stop). Reuses an initialised cluster and
#                              Redis AOF in DIR; if both are already running from DIR, reuses them.
#   services_cleanup_on_exit   trap: services_stop on EXIT; INT/TERM exit the shell (running it)
#   services_stop [DIR]        stop both; idempotent
#   services_reset             empty Redis (FLUSHALL) and recreate database aipalq
#   services_redis_restart     SHUTDOWN (AOF kept) and start again on the same port/dir
#   services_redis_kill9       SIGKILL redis-server (no shutdown, AOF everysec may lose ~1s)
#   services_redis_start_again start redis-server again on the same port/dir (AOF reloads)
#   services_pg_restart [fast|immediate]   pg_ctl stop -m MODE, then start on the same port
#   services_pg_stop [fast|immediate|smart] / services_pg_start_again
# Exported after start: AIPALQ_REDIS_URL AIPALQ_DATABASE_URL AIPALQ_REDIS_PORT AIPALQ_PG_PORT
#   AIPALQ_SVC_DIR AIPALQ_PG_DATA AIPALQ_REDIS_PID. They are also written to DIR/env.
# Inputs: AIPALQ_PREFER_REDIS_PORT / AIPALQ_PREFER_PG_PORT (used when free, else any free port),
#   AIPALQ_SVC_TIMEOUT (seconds to wait for readiness, default 60), AIPALQ_PG_BINDIR.
#
# As a command:
#   scripts/services.sh start [DIR]   start, print `export ...` lines for eval, leave running
#   scripts/services.sh stop [DIR]    stop what DIR/env records (DIR default: $AIPALQ_SVC_DIR)
#   scripts/services.sh env [DIR]     print DIR/env
#   e.g.  eval "$(scripts/services.sh start /tmp/q)"; ...; scripts/services.sh stop /tmp/q
#
# When run as root, PostgreSQL runs as the `postgres` user (DIR/pg is chowned to it, and DIR must
# be traversable by it); otherwise everything runs as the current user.

_svc_vars=(AIPALQ_SVC_DIR AIPALQ_SVC_TEMP AIPALQ_REDIS_PORT AIPALQ_REDIS_PID AIPALQ_REDIS_URL
  AIPALQ_PG_PORT AIPALQ_PG_DATA AIPALQ_DATABASE_URL)

_svc_log() { echo "services: $*" >&2; }

_svc_pg_bindir() {
  if [[ -n ${AIPALQ_PG_BINDIR:-} ]]; then
    echo "$AIPALQ_PG_BINDIR"
  elif [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
    echo /usr/lib/postgresql/15/bin
  else
    dirname "$(command -v pg_ctl)"
  fi
}

# Runs a PostgreSQL server program as the cluster's owner (postgres when we are root).
_svc_pg_as_owner() {
  local prog=$1
  shift
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$(_svc_pg_bindir)/$prog" "$@")
  else
    "$(_svc_pg_bindir)/$prog" "$@"
  fi
}

_svc_psql() {
  "$(_svc_pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$AIPALQ_PG_PORT" -U postgres "$@"
}

# Prints PREFERRED if it can be bound on 127.0.0.1, else a free port chosen by the kernel.
_svc_free_port() {
  python3 - "${1:-0}" <<'PY'
import socket, sys

def bind(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis and postgres do
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()

print((int(sys.argv[1]) and bind(int(sys.argv[1]))) or bind(0))
PY
}

_svc_port_in_use_error() { grep -qiE 'address already in use|could not bind|could not create listen socket' "$1" 2>/dev/null; }

# Waits up to AIPALQ_SVC_TIMEOUT seconds for "$@" to succeed. Gives up early when LOG shows a
# fatal startup error. On failure prints the log's tail.
_svc_wait() {
  local name=$1 log=$2
  shift 2
  local deadline=$((SECONDS + ${AIPALQ_SVC_TIMEOUT:-60})) why
  until "$@" >/dev/null 2>&1; do
    why=''
    if grep -qE 'aborting|Unrecoverable|Bad file format|FATAL|Fatal' "$log" 2>/dev/null; then
      why="$name failed to start"
    elif ((SECONDS >= deadline)); then
      why="$name did not become ready within ${AIPALQ_SVC_TIMEOUT:-60}s"
    fi
    if [[ -n $why ]]; then
      _svc_fail "$why" "$log"
      return 1
    fi
    sleep 0.1
  done
}

# Reports a start failure with the tail of LOG (one line when the port was taken: we retry).
_svc_fail() {
  if _svc_port_in_use_error "$2"; then
    _svc_log "$1: port in use"
  else
    _svc_log "$1; last lines of $2:"
    tail -n 30 "$2" >&2 2>/dev/null || true
  fi
}

# Keeps the previous run's log as LOG.prev, so LOG holds only this start's lines.
_svc_new_log() { [[ ! -f $1 ]] || mv -f "$1" "$1.prev"; }

_svc_redis_ping() { [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$AIPALQ_REDIS_PORT" ping 2>/dev/null) == PONG ]]; }
_svc_pg_ready() { "$(_svc_pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$AIPALQ_PG_PORT" -U postgres -d postgres; }

_svc_write_env() {
  local v
  for v in "${_svc_vars[@]}"; do
    printf 'export %s=%q\n' "$v" "${!v-}"
  done >"$AIPALQ_SVC_DIR/env.tmp"
  mv "$AIPALQ_SVC_DIR/env.tmp" "$AIPALQ_SVC_DIR/env"
}

# Starts redis-server on AIPALQ_REDIS_PORT with data in AIPALQ_SVC_DIR/redis.
_svc_redis_launch() {
  local rdir=$AIPALQ_SVC_DIR/redis
  mkdir -p "$rdir"
  rm -f "$rdir/redis.pid"
  _svc_new_log "$rdir/redis.log"
  redis-server --bind 127.0.0.1 --port "$AIPALQ_REDIS_PORT" \
    --appendonly yes --appendfsync everysec --save '' --maxmemory-policy noeviction \
    --daemonize yes --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log" --dir "$rdir" \
    || { _svc_fail "redis-server failed to start" "$rdir/redis.log"; return 1; }
  _svc_wait "redis-server on port $AIPALQ_REDIS_PORT" "$rdir/redis.log" _svc_redis_ping || return 1
  AIPALQ_REDIS_PID=$(<"$rdir/redis.pid")
  export AIPALQ_REDIS_PID
  _svc_write_env
}

_svc_pg_launch() {
  local log=$AIPALQ_SVC_DIR/pg/postgres.log
  # Port and socket directory are written per start, so a reused cluster can move to a new port.
  {
    echo "port = $AIPALQ_PG_PORT"
    echo "unix_socket_directories = '${AIPALQ_SVC_DIR//\'/\'\'}/pg/sock'"
  } >"$AIPALQ_PG_DATA/aipalq-runtime.conf"
  ((EUID != 0)) || chown postgres: "$AIPALQ_PG_DATA/aipalq-runtime.conf"
  _svc_new_log "$log"
  _svc_pg_as_owner pg_ctl start -s -D "$AIPALQ_PG_DATA" -l "$log" -w -t "${AIPALQ_SVC_TIMEOUT:-60}" >/dev/null \
    || { _svc_fail "PostgreSQL failed to start on port $AIPALQ_PG_PORT" "$log"; return 1; }
  _svc_wait "PostgreSQL on port $AIPALQ_PG_PORT" "$log" _svc_pg_ready
}

_svc_pg_init() {
  local pg=$AIPALQ_SVC_DIR/pg
  mkdir -p "$pg/sock"
  if ((EUID == 0)); then
    chown -R postgres: "$pg"
    runuser -u postgres -- test -x "$AIPALQ_SVC_DIR" || {
      _svc_log "user postgres cannot reach $AIPALQ_SVC_DIR (check the permissions of it and its parents)"
      return 1
    }
  fi
  [[ -f $AIPALQ_PG_DATA/PG_VERSION ]] && return 0
  _svc_log "initdb $AIPALQ_PG_DATA"
  _svc_pg_as_owner initdb -D "$AIPALQ_PG_DATA" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
    >"$pg/initdb.log" 2>&1 || { _svc_log "initdb failed:"; tail -n 30 "$pg/initdb.log" >&2; return 1; }
  cat >>"$AIPALQ_PG_DATA/postgresql.conf" <<CONF

# libaipalq local service (scripts/services.sh)
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = ${AIPALQ_PG_SHARED_BUFFERS:-128MB}
fsync = on
include_if_exists = 'aipalq-runtime.conf'
CONF
}

# Creates role and database aipalq when missing.
_svc_pg_bootstrap() {
  _svc_psql -d postgres -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aipalq') THEN
        CREATE ROLE aipalq LOGIN SUPERUSER;
      END IF; END \$\$;" || return 1
  if [[ -z $(_svc_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'aipalq'") ]]; then
    _svc_psql -d postgres -c 'CREATE DATABASE aipalq OWNER aipalq' || return 1
  fi
}

# Picks ports and launches; retries with another port if one was taken in the meantime.
_svc_start_with_free_port() {
  local what=$1 prefer=$2 log=$3 attempt
  for attempt in 1 2 3 4 5; do
    if [[ $what == redis ]]; then
      AIPALQ_REDIS_PORT=$(_svc_free_port "$prefer") || return 1
      export AIPALQ_REDIS_PORT
      _svc_redis_launch && return 0
    else
      AIPALQ_PG_PORT=$(_svc_free_port "$prefer") || return 1
      export AIPALQ_PG_PORT
      _svc_pg_launch && return 0
    fi
    _svc_port_in_use_error "$log" || return 1
    _svc_log "retrying on another port ($attempt)"
    prefer=0
  done
  return 1
}

services_start() {
  local dir=${1:-} temp=0
  if ! command -v redis-server >/dev/null || ! command -v python3 >/dev/null || [[ ! -x $(_svc_pg_bindir)/pg_ctl ]]; then
    _svc_log "redis-server, python3 or PostgreSQL missing: run scripts/deps.sh"
    return 1
  fi
  if [[ -z $dir ]]; then
    dir=$(mktemp -d /tmp/aipalq-svc.XXXXXX) || return 1
    chmod 755 "$dir"
    temp=1
  fi
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1

  # Leftovers of an earlier start from this DIR: reuse them if both answer, else stop them.
  if [[ -f $dir/env ]]; then
    # shellcheck disable=SC1091
    source "$dir/env"
    if _svc_redis_ping && _svc_pg_ready; then
      _svc_log "reusing Redis :$AIPALQ_REDIS_PORT and PostgreSQL :$AIPALQ_PG_PORT already running from $dir"
      return 0
    fi
    _svc_stop_processes
  fi

  export AIPALQ_SVC_DIR=$dir AIPALQ_SVC_TEMP=$temp AIPALQ_PG_DATA=$dir/pg/data
  AIPALQ_REDIS_PORT='' AIPALQ_PG_PORT='' AIPALQ_REDIS_PID=''
  if ! { _svc_start_with_free_port redis "${AIPALQ_PREFER_REDIS_PORT:-0}" "$dir/redis/redis.log" \
    && _svc_pg_init \
    && _svc_start_with_free_port pg "${AIPALQ_PREFER_PG_PORT:-0}" "$dir/pg/postgres.log" \
    && _svc_pg_bootstrap; }; then
    _svc_log "start failed (data and logs in $dir)"
    _svc_stop_processes
    return 1
  fi

  export AIPALQ_REDIS_URL="redis://127.0.0.1:$AIPALQ_REDIS_PORT/0"
  export AIPALQ_DATABASE_URL="postgresql://aipalq@127.0.0.1:$AIPALQ_PG_PORT/aipalq"
  _svc_write_env
  _svc_log "Redis $AIPALQ_REDIS_URL, PostgreSQL $AIPALQ_DATABASE_URL (data in $dir)"
}

# True while PID runs (a zombie waiting for its reaper does not count).
_svc_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

_svc_redis_wait_gone() {
  local pid=$1 i
  for ((i = 0; i < 100; i++)); do
    _svc_alive "$pid" || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

_svc_redis_stop() {
  local pid=${AIPALQ_REDIS_PID:-}
  [[ -n $pid ]] && _svc_alive "$pid" || return 0
  redis-cli -h 127.0.0.1 -p "$AIPALQ_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  _svc_redis_wait_gone "$pid"
}

_svc_pg_stop() {
  local mode=${1:-fast}
  [[ -f $AIPALQ_PG_DATA/postmaster.pid ]] || return 0
  _svc_pg_as_owner pg_ctl stop -D "$AIPALQ_PG_DATA" -m "$mode" -w -t "${AIPALQ_SVC_TIMEOUT:-60}" >/dev/null 2>&1 \
    || { [[ $mode == immediate ]] || _svc_pg_as_owner pg_ctl stop -D "$AIPALQ_PG_DATA" -m immediate -w >/dev/null 2>&1; } || true
}

_svc_stop_processes() {
  [[ -n ${AIPALQ_SVC_DIR:-} ]] || return 0
  _svc_redis_stop
  [[ -z ${AIPALQ_PG_DATA:-} ]] || _svc_pg_stop fast
}

services_stop() {
  local dir=${1:-${AIPALQ_SVC_DIR:-}}
  [[ -n $dir && -f $dir/env ]] || return 0
  # shellcheck disable=SC1091
  source "$dir/env"
  _svc_stop_processes
  if [[ $AIPALQ_SVC_TEMP == 1 ]]; then
    rm -rf "$dir"
  else
    rm -f "$dir/env"
  fi
  unset "${_svc_vars[@]}"
  _svc_log "stopped (data in $dir)"
}

services_cleanup_on_exit() {
  trap services_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

services_reset() {
  redis-cli -h 127.0.0.1 -p "$AIPALQ_REDIS_PORT" flushall >/dev/null || return 1
  _svc_psql -d postgres -c 'DROP DATABASE IF EXISTS aipalq WITH (FORCE)' -c 'CREATE DATABASE aipalq OWNER aipalq'
}

services_redis_kill9() {
  kill -9 "$AIPALQ_REDIS_PID" && _svc_redis_wait_gone "$AIPALQ_REDIS_PID"
}
services_redis_start_again() { _svc_redis_launch; }
services_redis_restart() { _svc_redis_stop && _svc_redis_launch; }
services_pg_stop() { _svc_pg_stop "${1:-fast}"; }
services_pg_start_again() { _svc_pg_launch; }
services_pg_restart() { _svc_pg_stop "${1:-fast}" && _svc_pg_launch; }

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  cmd=${1:-}
  dir=${2:-${AIPALQ_SVC_DIR:-}}
  case $cmd in
    start)
      services_start "${2:-}"
      cat "$AIPALQ_SVC_DIR/env"
      ;;
    stop)
      [[ -n $dir ]] || { _svc_log "usage: $0 stop DIR"; exit 2; }
      services_stop "$dir"
      ;;
    env)
      [[ -n $dir && -f $dir/env ]] || { _svc_log "no services recorded in '${dir}'"; exit 1; }
      cat "$dir/env"
      ;;
    *)
      echo "usage: $0 start [DIR] | stop [DIR] | env [DIR]   (or: source $0; services_start [DIR])" >&2
      exit 2
      ;;
  esac
fi
