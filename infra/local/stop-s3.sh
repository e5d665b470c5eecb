#!/usr/bin/env bash
# Stop the SeaweedFS started by infra/local/start-s3.sh (only that pid). Data stays in .cache/seaweed/.
set -euo pipefail
cd "$(dirname "$0")/../.."
PIDFILE=.cache/seaweed/weed.pid

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
is_weed() { alive "$1" && [ "$(ps -o comm= -p "$1")" = weed ]; }

if [ ! -f "$PIDFILE" ]; then
  echo "no $PIDFILE: nothing started by start-s3.sh" >&2
  exit 0
fi
PID=$(cat "$PIDFILE")
if is_weed "$PID"; then
  stop_pid SeaweedFS "$PID"   # graceful: the filer waits up to 15s for its gRPC streams
else
  echo "SeaweedFS (pid $PID) was not running" >&2
fi
rm -f "$PIDFILE"
