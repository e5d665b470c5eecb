#!/usr/bin/env bash
# Stop the local Ray cluster started by infra/local/start-ray.sh: SIGTERM to each node's
# `ray start --block` process (pids in .cache/ray/), which shuts down that node's Ray processes.
#   infra/local/stop-ray.sh          this cluster only
#   infra/local/stop-ray.sh --all    `ray stop`: every Ray process of this user on the machine
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
DIR=.cache/ray
RAY=.venv/bin/ray
[ -x "$RAY" ] || RAY=$(command -v ray) || RAY=ray

if [ "${1:-}" = --all ]; then
  exec "$RAY" stop
fi

alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }   # not a zombie

# Workers first, then the head.
for name in worker head; do
  pidfile=$DIR/$name.pid
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if alive "$pid" && ps -o args= -p "$pid" | grep -q "ray start"; then
    kill "$pid"
    for _ in $(seq 1 120); do
      alive "$pid" || break
      sleep 0.25
    done
    if alive "$pid"; then
      echo "Ray $name (pid $pid) still running 30s after SIGTERM; sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
    echo "Ray $name stopped (pid $pid)" >&2
  else
    echo "Ray $name (pid $pid) was not running" >&2
  fi
  rm -f "$pidfile"
done
