#!/usr/bin/env bash
# Every test: the full suite on the embedded default (SQLite), then the integration tier
# (immutability triggers, audit chain, permissions) again on a real PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export BLINDSPOT_VAR_DIR="${BLINDSPOT_VAR_DIR:-$(mktemp -d /tmp/blindspot-test-XXXXXX)}"

echo "== Tier 1: full suite on SQLite =="
$PY -m pytest "$@"

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! $PY scripts/ensure_postgres.py "$PG_URL"; then
  echo "== Tier 2 SKIPPED: no PostgreSQL reachable at $PG_URL and none could be started =="
  exit 0
fi
echo "== Tier 2: integration tier on PostgreSQL =="
DATABASE_URL="$PG_URL" $PY -m pytest -m integration "$@"
