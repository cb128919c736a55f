#!/usr/bin/env bash
# Every test: the full suite on the embedded default (SQLite), then the integration tier
# (immutability triggers, audit chain, permissions, crash safety) again on a real PostgreSQL.
# Both tiers run across the cores with pytest-xdist: each file on one worker (module fixtures are
# built once), each worker with its own database (pytest-django names it *_gw0, *_gw1, ...).
#
#   scripts/test.sh [pytest args]     both tiers
#   scripts/test.sh --fast [args]     the edit loop: SQLite only, no sandboxed runner, no browser,
#                                     no slow test (the demo subprocess, coverage simulations)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export BLINDSPOT_VAR_DIR="${BLINDSPOT_VAR_DIR:-$(mktemp -d /tmp/blindspot-test-XXXXXX)}"
WORKERS="${BLINDSPOT_TEST_WORKERS:-auto}"
PARALLEL=(-n "$WORKERS" --dist loadfile)

if [ "${1:-}" = "--fast" ]; then
  shift
  echo "== Fast tier: SQLite, no sandbox, no browser, no slow test =="
  BLINDSPOT_TEST_FAST=1 exec $PY -m pytest "${PARALLEL[@]}" \
    -m "not sandbox and not browser and not slow" "$@"
fi

echo "== Tier 1: full suite on SQLite =="
$PY -m pytest "${PARALLEL[@]}" "$@"

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! $PY scripts/ensure_postgres.py "$PG_URL"; then
  echo "== Tier 2 SKIPPED: no PostgreSQL reachable at $PG_URL and none could be started =="
  exit 0
fi
echo "== Tier 2: integration tier on PostgreSQL =="
DATABASE_URL="$PG_URL" $PY -m pytest "${PARALLEL[@]}" -m integration "$@"
