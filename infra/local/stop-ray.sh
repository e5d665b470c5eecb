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

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Workers first, then the head.
for name in worker head; do
  pidfile=$DIR/$name.pid
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if alive "$pid" && ps -o args= -p "$pid" | grep -q "ray start"; then
    stop_pid "Ray $name" "$pid"
  else
    echo "Ray $name (pid $pid) was not running" >&2
  fi
  rm -f "$pidfile"
done
