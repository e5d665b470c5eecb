#!/usr/bin/env bash
# Stop the SeaweedFS started by infra/local/start-s3.sh (only that pid). Data stays in .cache/seaweed/.
set -euo pipefail
cd "$(dirname "$0")/../.."
PIDFILE=.cache/seaweed/weed.pid

alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }   # not a zombie
is_weed() { alive "$1" && [ "$(ps -o comm= -p "$1")" = weed ]; }

if [ ! -f "$PIDFILE" ]; then
  echo "no $PIDFILE: nothing started by start-s3.sh" >&2
  exit 0
fi
PID=$(cat "$PIDFILE")
if is_weed "$PID"; then
  kill "$PID"   # graceful: the filer waits up to 15s for its gRPC streams
  for _ in $(seq 1 120); do
    alive "$PID" || break
    sleep 0.25
  done
  if alive "$PID"; then
    echo "SeaweedFS (pid $PID) still running 30s after SIGTERM; sending SIGKILL" >&2
    kill -9 "$PID" 2>/dev/null || true
  fi
  echo "SeaweedFS stopped (pid $PID)" >&2
else
  echo "SeaweedFS (pid $PID) was not running" >&2
fi
rm -f "$PIDFILE"
