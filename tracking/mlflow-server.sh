#!/usr/bin/env bash
# The study's MLflow tracking server: PostgreSQL backend store, artifacts on a shared file system.
#
#   tracking/mlflow-server.sh start    start in the background, wait until healthy, print the URL
#   tracking/mlflow-server.sh stop
#   tracking/mlflow-server.sh status
#
# Settings (environment):
#   MLFLOW_BACKEND_STORE_URI   postgresql://user@dbhost/mlflow   (password: PGPASSWORD or ~/.pgpass, never here)
#   MLFLOW_ARTIFACTS_DIR       /shared/project/mlflow-artifacts  (a folder every worker and you can read)
#   MLFLOW_HOST (0.0.0.0)  MLFLOW_PORT (5000)  MLFLOW_WORKERS (2)  MLFLOW_STATE_DIR (~/.tornadostudy/mlflow-server)
#   MLFLOW_SERVER (gunicorn | uvicorn): gunicorn serves MLflow's tracking API, UI and artifacts; measured here,
#     it answers a call in ~18 ms where MLflow's default, uvicorn, takes ~65 ms (docs/benchmarks.md). uvicorn
#     adds only what a study does not use (GenAI gateway, OpenTelemetry trace ingestion).
#   MLFLOW_PYTHON (the python of this project's environment; default: python3 beside `tornadostudy`)
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION (false here; MLflow's default is true): MLflow's job runner starts 8 more
#     Python processes for GenAI jobs a study never submits; off, the server starts ~1 s and stops ~7 s sooner
#     (docs/cluster.md)
set -euo pipefail

BACKEND=${MLFLOW_BACKEND_STORE_URI:-}
ARTIFACTS=${MLFLOW_ARTIFACTS_DIR:-$PWD/mlflow-artifacts}
HOST=${MLFLOW_HOST:-0.0.0.0}
PORT=${MLFLOW_PORT:-5000}
WORKERS=${MLFLOW_WORKERS:-2}
SERVER=${MLFLOW_SERVER:-gunicorn}
STATE=${MLFLOW_STATE_DIR:-$HOME/.tornadostudy/mlflow-server}
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
PIDFILE=$STATE/mlflow-$PORT.pid
LOG=$STATE/mlflow-$PORT.log
if [ -n "${MLFLOW_PYTHON:-}" ]; then PY=$MLFLOW_PYTHON
elif command -v tornadostudy >/dev/null; then PY=$(dirname "$(command -v tornadostudy)")/python
else PY=python3; fi

say() { printf 'mlflow-server: %s\n' "$*" >&2; }
running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
url() { local h=$HOST; [ "$h" = 0.0.0.0 ] && h=$(hostname -f 2>/dev/null || hostname); echo "http://$h:$PORT"; }

start() {
  if running; then say "already running (pid $(cat "$PIDFILE"))"; url; return 0; fi
  [ -n "$BACKEND" ] || { say "set MLFLOW_BACKEND_STORE_URI, e.g. postgresql://user@dbhost/mlflow"; exit 2; }
  local serve=()
  case "$SERVER" in
    gunicorn) serve=(--gunicorn-opts "--timeout 120") ;;  # a long search or upload is not a hung worker
    uvicorn) ;;
    *) say "MLFLOW_SERVER=$SERVER: use gunicorn or uvicorn"; exit 2 ;;
  esac
  case "$BACKEND" in
    postgresql://*|postgres://*) BACKEND="postgresql+psycopg2://${BACKEND#*://}" ;;  # SQLAlchemy 2 would pick psycopg 3
  esac
  mkdir -p "$STATE" "$ARTIFACTS"
  # The server creates/migrates the schema once, here, before any worker logs (concurrent first use races).
  nohup "$PY" -m mlflow server --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS" \
    --host "$HOST" --port "$PORT" --workers "$WORKERS" "${serve[@]}" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local probe_host=$HOST; [ "$probe_host" = 0.0.0.0 ] && probe_host=127.0.0.1
  for _ in $(seq 120); do
    if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://$probe_host:$PORT/health', timeout=2)" 2>/dev/null; then
      say "healthy; log $LOG"; url; return 0
    fi
    running || { say "exited; last lines of $LOG:"; tail -n 20 "$LOG" >&2; exit 1; }
    sleep 1
  done
  say "not healthy after 120 s; see $LOG"; exit 1
}

stop() {
  if running; then
    kill "$(cat "$PIDFILE")"
    for _ in $(seq 30); do running || break; sleep 0.5; done
    running && kill -9 "$(cat "$PIDFILE")" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"; say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then say "running (pid $(cat "$PIDFILE"))"; url; else say "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
