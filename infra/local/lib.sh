# Shared helpers of the local dev scripts (sourced, not run).

# True while pid $1 runs (a zombie counts as gone).
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }

# True when 127.0.0.1:$1 accepts TCP connections.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pid LABEL PID: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
  local label=$1 pid=$2
  kill "$pid"
  for _ in $(seq 1 120); do
    alive "$pid" || break
    sleep 0.25
  done
  if alive "$pid"; then
    echo "$label (pid $pid) still running 30s after SIGTERM; sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
  echo "$label stopped (pid $pid)" >&2
}
