#!/usr/bin/env bash
# `make serve`: the web app and real Celery workers on this machine, with no broker server.
#
# The broker is kombu's filesystem transport (config/broker.py): each message is a file under
# var/broker. Package smoke tests, dataset imports, runs and report issuing therefore happen in
# the workers, never inside a web request, as in production (where Redis is the broker; an
# exported CELERY_BROKER_URL is used as it is). `make demo` stays eager and in one process.
#
# Two workers, each `--pool solo` (a task runs in the worker's own process, one at a time):
#   gpu0  queue gpu: smoke tests, run shards, Grad-CAM. Solo as in production (Procfile), where
#         its warm model runners and its heartbeat live.
#   cpu   queues default,reports: imports, run planning and scoring, report drafts and issuing.
#         Solo instead of the Procfile's pool of 2: on a 2-core dev machine an import already
#         fans out to a process per core, and each pool child would be one more resident Django.
# Two rather than one so that a long import or run does not hold up a smoke test or an issue.
#
#   scripts/serve.sh                the workers, then runserver on 127.0.0.1:${PORT:-8000}
#   scripts/serve.sh --worker-only  the workers only (tests/test_serve.py), until INT or TERM
#
# Ctrl-C or TERM stops everything: the web server, then each worker with a warm shutdown (its
# running task finishes) for up to BLINDSPOT_SERVE_STOP_S seconds (a second Ctrl-C cuts that
# short), then SIGKILL to the worker's process group (its sandboxed model process with it).
# A worker that dies stops the rest: the web app is never left queueing work nobody takes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CELERY=.venv/bin/celery

WORKER_ONLY=""
case "${1:-}" in
  --worker-only) WORKER_ONLY=1 ;;
  "") ;;
  *) echo "usage: $0 [--worker-only]" >&2; exit 2 ;;
esac

export BLINDSPOT_VAR_DIR="${BLINDSPOT_VAR_DIR:-$PWD/var}"
VAR="$BLINDSPOT_VAR_DIR"
# With a hostname, kombu does not warn that it is "reverting to default 'localhost'".
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-filesystem://localhost/}"
BROKER_DIR="${BLINDSPOT_BROKER_DIR:-$VAR/broker}"
PORT="${PORT:-8000}"
STOP_S="${BLINDSPOT_SERVE_STOP_S:-30}"
mkdir -p "$VAR/log" "$VAR/run"

HOST="$(hostname)"
WORKERS=(cpu gpu0)
declare -A QUEUES=([cpu]="default,reports" [gpu0]="gpu")
declare -A PIDS=()
WEB_PID=""

log_of() { echo "$VAR/log/worker-$1.log"; }
pidfile_of() { echo "$VAR/run/worker-$1.pid"; }
# Running, and not a child that exited but has not been waited for yet.
alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }

for name in "${WORKERS[@]}"; do
  pidfile="$(pidfile_of "$name")"
  if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then
    echo "worker $name of another serve on $VAR is running (pid $(cat "$pidfile")); stop that one" >&2
    exit 1
  fi
done
# Messages the workers took in an earlier session (kept for debugging until now); messages
# still queued in $BROKER_DIR/messages are taken by the workers started below.
rm -f "$BROKER_DIR"/processed/*.msg

start_worker() {
  local name="$1" log
  log="$(log_of "$name")"
  [ -f "$log" ] && mv -f "$log" "$log.1"
  # A session of its own: Ctrl-C reaches the worker only through stop(), and SIGKILL reaches its
  # whole process group. Gossip, mingle and heartbeat events need broadcasts and auto-delete
  # queues, which the filesystem transport lacks (config/broker.py); the pidfile refuses a
  # second serve on the same var/. INFO logs say "<hostname> ready." and each task's progress.
  # Concurrency 1: a solo worker would otherwise prefetch a message per core that it cannot
  # start, and this transport loses a taken message if the worker is killed.
  BLINDSPOT_CELERY_LOG_LEVEL="${BLINDSPOT_CELERY_LOG_LEVEL:-INFO}" setsid "$CELERY" -A config \
    worker --pool solo --concurrency 1 --queues "${QUEUES[$name]}" --hostname "$name@$HOST" \
    --without-gossip --without-mingle --without-heartbeat --loglevel INFO \
    --pidfile "$(pidfile_of "$name")" >"$log" 2>&1 </dev/null &
  PIDS[$name]=$!
}

wait_ready() {
  local name="$1" log deadline=$((SECONDS + 120))
  log="$(log_of "$name")"
  until grep -q "$name@$HOST ready\.$" "$log" 2>/dev/null; do
    if ! alive "${PIDS[$name]}" || [ "$SECONDS" -ge "$deadline" ]; then
      echo "worker $name did not start; the end of $log:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
}


STOPPING="" HURRY=""
stop() {
  [ -n "$STOPPING" ] && return
  STOPPING=1
  trap 'HURRY=1' INT TERM
  if [ -n "$WEB_PID" ]; then
    kill -TERM "$WEB_PID" 2>/dev/null || true
  fi
  local name pid deadline=$((SECONDS + STOP_S))
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for name in "${!PIDS[@]}"; do
    pid="${PIDS[$name]}"
    while alive "$pid" && [ -z "$HURRY" ] && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.2
    done
    if alive "$pid"; then
      echo "worker $name did not stop in time: killed (see $(log_of "$name"))" >&2
    fi
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$WEB_PID" ]; then
    wait "$WEB_PID" 2>/dev/null || true
  fi
  echo "stopped the workers${WEB_PID:+ and the web server}"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for name in "${WORKERS[@]}"; do
  start_worker "$name"
done
for name in "${WORKERS[@]}"; do
  wait_ready "$name"
done

if [[ "$CELERY_BROKER_URL" == filesystem://* ]]; then
  echo "Celery workers ready (broker: message files in $BROKER_DIR):"
else
  echo "Celery workers ready (broker: ${CELERY_BROKER_URL%%://*}, from CELERY_BROKER_URL):"
fi
for name in "${WORKERS[@]}"; do
  printf '  %-24s queues %-16s log %s\n' "$name@$HOST" "${QUEUES[$name]}" "$(log_of "$name")"
done

if [ -z "$WORKER_ONLY" ]; then
  cat <<EOF

Blindspot: http://127.0.0.1:$PORT/ (sign in at http://127.0.0.1:$PORT/accounts/login/)
After \`make demo\`, sign in as (password blindspot-demo-<username>):
  vera     vendor member      Northwind Radiology AI: uploads packages, reads its reports
  pat      partner steward    St. Elsewhere Health Network: imports and grants datasets
  rita     reviewer           validation team: approves packages, starts runs, signs first
  quinn    QA approver        validation team: signs second, which issues the report
  audrey   auditor            validation team: reads the audit trail
Ctrl-C stops the web server and the workers.

EOF
  # No autoreloader: it would restart the web process on a code change but not the workers.
  "$PY" manage.py runserver --noreload "127.0.0.1:$PORT" &
  WEB_PID=$!
fi

# Until Ctrl-C or TERM (the traps), or until one of them exits, which stops the others.
wait -n ${WEB_PID:+"$WEB_PID"} "${PIDS[@]}" || true
if [ -n "$WEB_PID" ] && ! alive "$WEB_PID"; then
  echo "the web server exited" >&2
fi
for name in "${WORKERS[@]}"; do
  if ! alive "${PIDS[$name]}"; then
    echo "worker $name exited; the end of $(log_of "$name"):" >&2
    tail -n 20 "$(log_of "$name")" >&2
  fi
done
exit 1
