#!/usr/bin/env bash
# Start a local Ray cluster for `ray job submit`: a head node and, with --worker, a second
# node on this machine (exercises multi-node scheduling and object transfer).
#   infra/local/start-ray.sh [--worker]      eval "$(infra/local/start-ray.sh)" exports RAY_ADDRESS
# Env: RAY_HEAD_CPUS (all cores), RAY_WORKER_CPUS (2), RAY_PORT (6379), RAY_DASHBOARD_PORT (8265).
# Start S3 first (eval "$(infra/local/start-s3.sh)") so the Ray workers inherit the AWS_* variables.
# Each node is `ray start --block` in the background with its pid in .cache/ray/, so
# infra/local/stop-ray.sh stops this cluster only (no drain wait: local dev).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."

WORKER=0
case "${1:-}" in
  --worker) WORKER=1 ;;
  "") ;;
  *) echo "usage: $0 [--worker]" >&2; exit 2 ;;
esac
HEAD_CPUS=${RAY_HEAD_CPUS:-$(nproc)}
WORKER_CPUS=${RAY_WORKER_CPUS:-2}
PORT=${RAY_PORT:-6379}
DASHBOARD_PORT=${RAY_DASHBOARD_PORT:-8265}
DIR=.cache/ray
RAY=.venv/bin/ray
if [ -x "$RAY" ]; then
  export PATH="$PWD/.venv/bin:$PATH"   # so `python` in a job's entrypoint is the venv's
else
  RAY=$(command -v ray) || { echo "ray not found: pip install -e ." >&2; exit 1; }
fi

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start_node NAME ARGS...: run `ray start --block ARGS` in the background, wait until it is up.
start_node() {
  local name=$1; shift
  if [ -f "$DIR/$name.pid" ] && alive "$(cat "$DIR/$name.pid")"; then
    echo "Ray $name already running (pid $(cat "$DIR/$name.pid"))" >&2
    return 0
  fi
  nohup env RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 "$RAY" start --block --disable-usage-stats "$@" \
    >"$DIR/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" > "$DIR/$name.pid"
  for _ in $(seq 1 120); do
    if ! alive "$pid"; then
      echo "Ray $name exited during startup; last log lines:" >&2
      tail -n 20 "$DIR/$name.log" >&2
      rm -f "$DIR/$name.pid"
      return 1
    fi
    if grep -q "Ray runtime started" "$DIR/$name.log"; then
      echo "Ray $name started (pid $pid, log $DIR/$name.log)" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "Ray $name not up after 60s; see $DIR/$name.log" >&2
  return 1
}

# Token auth on both nodes and for clients (token in ~/.ray/auth_token, made if missing);
# without it set explicitly a head node turns it on by itself while `--address` nodes don't.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
mkdir -p "$DIR"
if ! { [ -f "$DIR/head.pid" ] && alive "$(cat "$DIR/head.pid")"; }; then
  for p in "$PORT" "$DASHBOARD_PORT"; do
    if port_open "$p"; then
      echo "port $p is already in use; set RAY_PORT / RAY_DASHBOARD_PORT" >&2
      exit 1
    fi
  done
fi
start_node head --head --port="$PORT" --num-cpus="$HEAD_CPUS" \
  --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
  || { "$HERE/stop-ray.sh"; exit 1; }
for _ in $(seq 1 60); do port_open "$DASHBOARD_PORT" && break; sleep 0.5; done
port_open "$DASHBOARD_PORT" || echo "warning: no dashboard on port $DASHBOARD_PORT, so no" \
  "\`ray job submit\`: install ray[default] (see .cache/ray/head.log and /tmp/ray/session_latest/logs/dashboard.log)" >&2
if [ "$WORKER" = 1 ]; then
  # A second node on this host: its own agent ports, the rest chosen free by Ray.
  start_node worker --address="127.0.0.1:$PORT" --num-cpus="$WORKER_CPUS" \
    --dashboard-agent-listen-port=0 --metrics-export-port=0 \
    || { "$HERE/stop-ray.sh"; exit 1; }
fi

cat <<OUT
export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT
export RAY_AUTH_MODE=$RAY_AUTH_MODE
# Submit a job (the working dir is uploaded without .gitignore'd paths such as .venv):
#   ray job submit --working-dir . -- python -m jobs.label s3://BUCKET/videos/ \\
#       --output s3://BUCKET/lake --model mobilenet_v3_small --weights s3://BUCKET/models/model.pt --sample fps:1
# Or run the driver here against the cluster: python -m jobs.label ... --address 127.0.0.1:$PORT
# Dashboard: http://127.0.0.1:$DASHBOARD_PORT   Stop: infra/local/stop-ray.sh
OUT
