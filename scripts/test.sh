#!/usr/bin/env bash
# `make lint` (scripts/lint.sh), then every test: the full suite on the embedded default
# (SQLite), and the integration tier (immutability triggers, audit chain, permissions, crash
# safety) again on a real PostgreSQL.
# Both tiers run across the cores with pytest-xdist: each file on one worker (module fixtures are
# built once), longest files first, each worker with its own database (pytest-django names it
# *_gw0, *_gw1, ...). The PostgreSQL tier runs beside the lint and the SQLite tier (its crash
# test spends much of its time waiting for worker processes; mypy uses one core); its output
# follows the SQLite tier's. A lint failure stops everything.
#
#   scripts/test.sh [pytest args]     both tiers
#   scripts/test.sh --fast [args]     the edit loop: SQLite only, no sandboxed runner, no browser,
#                                     no slow test (the demo subprocess, coverage simulations)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export BLINDSPOT_VAR_DIR="${BLINDSPOT_VAR_DIR:-$(mktemp -d /tmp/blindspot-test-XXXXXX)}"
# One xdist worker more than cores: much of the suite waits (worker processes, a browser's
# live pages, the sandbox's start), so a third worker on 2 cores keeps them busy.
WORKERS="${BLINDSPOT_TEST_WORKERS:-$(( $(nproc) + 1 ))}"
# One xdist worker per core or more: a process (the demo's training, an in-process model) that
# also started a thread per core would have its OpenMP threads spin against the other workers
# (the demo subprocess took 113 s instead of 74 s beside the sandbox tests). Sandboxed runners
# set their own thread count.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
# Files in the order tests/conftest.py gives them (longest first), not xdist's by size.
PARALLEL=(-n "$WORKERS" --dist loadfile --no-loadscope-reorder)

if [ "${1:-}" = "--fast" ]; then
  shift
  echo "== Fast tier: SQLite, no sandbox, no browser, no slow test =="
  BLINDSPOT_TEST_FAST=1 exec $PY -m pytest "${PARALLEL[@]}" \
    -m "not sandbox and not browser and not slow" "$@"
fi

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
tier2_log="$BLINDSPOT_VAR_DIR/tier2-postgresql.log"
tier2_pid=""
if $PY scripts/ensure_postgres.py "$PG_URL"; then
  # One worker: it runs beside the SQLite tier, which has the cores; its 60 tests need ~70 s.
  DATABASE_URL="$PG_URL" $PY -m pytest -n "${BLINDSPOT_TEST_PG_WORKERS:-1}" --dist loadfile \
    --no-loadscope-reorder -m integration \
    --basetemp "$BLINDSPOT_VAR_DIR/pytest-tier2" "$@" > "$tier2_log" 2>&1 &
  tier2_pid=$!
  trap 'kill "$tier2_pid" 2>/dev/null || true' EXIT
fi

echo "== Lint: ruff, lint-imports, mypy =="
scripts/lint.sh

echo "== Tier 1: full suite on SQLite =="
tier1=0
$PY -m pytest "${PARALLEL[@]}" --basetemp "$BLINDSPOT_VAR_DIR/pytest-tier1" "$@" || tier1=$?

if [ -z "$tier2_pid" ]; then
  echo "== Tier 2 SKIPPED: no PostgreSQL reachable at $PG_URL and none could be started =="
  exit "$tier1"
fi
tier2=0
wait "$tier2_pid" || tier2=$?
trap - EXIT
echo "== Tier 2: integration tier on PostgreSQL =="
cat "$tier2_log"
[ "$tier1" -eq 0 ] && [ "$tier2" -eq 0 ]
