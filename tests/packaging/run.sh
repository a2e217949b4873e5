#!/usr/bin/env bash
# Checks of the packaging (docker/, k8s/, deploy/systemd/, the Grafana dashboard) without a
# Docker engine or a Kubernetes cluster: what can be checked here is checked for real, the rest
# is said in docs/DEPLOYMENT_GUIDE.md ("What was verified").
#   1. docker-compose config (Debian's docker-compose) accepts docker/docker-compose.yml with
#      docker/.env.example, and refuses it without the passwords;
#   2. kubectl kustomize k8s/ renders;
#   3. every object of k8s/*.yaml and of the rendered output validates against the Kubernetes
#      schemas, unknown fields included (validate.js: kubernetes-models + TypeScript declarations);
#   4. systemd-analyze verify accepts the units, and their exposure score is at most 2.0;
#   5. the daemons build with docker/build-dist.sh from exactly the Docker build context
#      (.dockerignore applied by context.py), as the images build them;
#   6. checks.py: every image, flag, variable, port, probe path, grace period, queue and metric of
#      the manifests exists in the daemons, and the built daemons start with each manifest's flags
#      and environment as uid 1000 on a read-only root (sandbox.sh), pass their probes and
#      health checks, and stop cleanly on SIGTERM within the grace period.
# Needs root (private mount namespaces). Uses AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL when set
# (scripts/test.sh), else starts private servers with scripts/services.sh.
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

passed=0 failed=0
work=$(mktemp -d /tmp/aipal-packaging.XXXXXX)
chmod 755 "$work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
svc_started=0
finish() {
  # Servers this script started are stopped first: the summary must be the last line.
  if ((svc_started)); then services_stop 2>/dev/null; trap cleanup EXIT; fi
  echo "$passed passed, $failed failed"
  ((failed == 0))
  exit
}
# count FILE: adds the PASS/FAIL lines of FILE; a run that printed none counts as one failure.
count() {
  local p f
  p=$(grep -c '^PASS ' "$1") f=$(grep -c '^FAIL ' "$1")
  passed=$((passed + p)) failed=$((failed + f))
  if ((p + f == 0)) || { (($2 != 0)) && ((f == 0)); }; then
    fail "$3 (exit $2, see output above)"
  fi
}

if ((EUID != 0)); then
  fail "packaging checks need root (mount namespaces, setpriv to uid 1000)"
  finish
fi

# ---- tools: Debian's packages, and the npm registry for the schema validator
need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v readelf >/dev/null || need+=(binutils)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  echo "packaging: installing ${need[*]}" >&2
  { DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; } >&2 \
    || fail "could not install ${need[*]}"
fi
if [[ ! -d $here/node_modules/kubernetes-models ]]; then
  (cd "$here" && npm ci --no-audit --no-fund) >&2 || fail "npm ci in tests/packaging"
fi

# ---- 1. Compose
if docker-compose -f docker/docker-compose.yml --env-file docker/.env.example config >"$work/compose.yaml" 2>"$work/compose.err"; then
  pass "docker-compose config accepts docker/docker-compose.yml with docker/.env.example"
else
  fail "docker-compose config: $(tail -n 5 "$work/compose.err")"
fi
printf 'AIPAL_VERSION=1.0.0\n' >"$work/empty.env"
if env -u POSTGRES_PASSWORD -u REDIS_PASSWORD docker-compose -f docker/docker-compose.yml --env-file "$work/empty.env" config -q >/dev/null 2>"$work/compose2.err"; then
  fail "docker-compose config accepts the file without POSTGRES_PASSWORD/REDIS_PASSWORD"
else
  pass "docker-compose config refuses the file without the passwords ($(grep -o 'set [A-Z_]* in docker/.env' "$work/compose2.err" | head -n 1))"
fi

# ---- 2. kustomize
if ! command -v kubectl >/dev/null; then
  fail "kubectl not found: cannot render k8s/ with kubectl kustomize"
elif kubectl kustomize k8s/ >"$work/rendered.yaml" 2>"$work/kustomize.err"; then
  pass "kubectl kustomize k8s/ renders ($(grep -c '^kind:' "$work/rendered.yaml") objects; $(kubectl version --client 2>/dev/null | grep -i kustomize | tr -d '\n'))"
else
  fail "kubectl kustomize k8s/: $(tail -n 5 "$work/kustomize.err")"
fi

# ---- 3. schemas
rc=0
node "$here/validate.js" k8s/[0-9]*.yaml $( [[ -s $work/rendered.yaml ]] && echo "$work/rendered.yaml") >"$work/validate.out" 2>&1 || rc=$?
cat "$work/validate.out"
count "$work/validate.out" "$rc" "schema validation (validate.js)"

# ---- 4. systemd units
mkdir -p "$work/units"
for unit in deploy/systemd/*.service; do
  name=$(basename "$unit")
  [[ $name == *@.service ]] && name=${name/@/@maintenance}
  sed "s|/usr/local/bin/|$root/build-pkg/dist/usr/local/bin/|" "$unit" >"$work/units/$name"
done
# (verified after the build below, when the binaries it names exist)

# ---- 5. build as the images do
rc=0
python3 "$here/context.py" "$root" "$root/build-pkg/context" >/dev/null \
  && docker/build-dist.sh "$root/build-pkg/context" "$root/build-pkg/build" "$root/build-pkg/dist" >"$work/build.log" 2>&1 || rc=$?
if ((rc == 0)); then
  pass "docker/build-dist.sh builds aipal-api, aipal-worker and libaipalq from the Docker build context"
else
  tail -n 30 "$work/build.log"
  fail "docker/build-dist.sh failed (exit $rc): the daemon checks below cannot run"
  finish
fi

for u in "$work"/units/*.service; do
  out=$(systemd-analyze verify --man=no "$u" 2>&1)
  if [[ -z $out ]]; then pass "systemd-analyze verify $(basename "$u")"; else fail "systemd-analyze verify $(basename "$u"): $out"; fi
  score=$(systemd-analyze security --offline=yes "$u" 2>/dev/null | grep -o 'exposure level for [^:]*: [0-9.]*' | awk '{ print $NF }')
  if systemd-analyze security --offline=yes --threshold=20 "$u" >/dev/null 2>&1; then
    pass "systemd-analyze security $(basename "$u"): exposure $score <= 2.0"
  else
    fail "systemd-analyze security $(basename "$u"): exposure $score > 2.0"
  fi
done

# ---- 6. drift and runs
if [[ -z ${AIPALQ_REDIS_URL:-} || -z ${AIPALQ_DATABASE_URL:-} ]]; then
  # shellcheck source=scripts/services.sh disable=SC1091
  source scripts/services.sh
  if services_start; then
    svc_started=1
    trap 'services_stop; cleanup' EXIT
  else
    fail "could not start Redis and PostgreSQL (scripts/services.sh)"
    finish
  fi
fi
mkdir -p "$work/logs"
rc=0
/usr/bin/python3 "$here/checks.py" --repo "$root" --dist "$root/build-pkg/dist" --build "$root/build-pkg/build" \
  --rendered "$work/rendered.yaml" --compose "$work/compose.yaml" --logdir "$work/logs" >"$work/checks.out" 2>&1 || rc=$?
cat "$work/checks.out"
count "$work/checks.out" "$rc" "checks.py"
if grep -q '^FAIL .*runs as uid 1000' "$work/checks.out"; then
  for f in "$work"/logs/*.log; do echo "--- $f"; tail -n 15 "$f"; done
fi
finish
