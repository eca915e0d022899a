#!/usr/bin/env bash
# Start or stop a private Docker engine for the container backend (root only).
#   scripts/dockerd.sh start   prints `export DOCKER_HOST=...` once the engine answers
#   scripts/dockerd.sh stop    stops the engine this script started (by its pid file)
# The engine keeps its images under WORKQUEUE_DOCKER_ROOT (default /var/lib/workqueue/docker),
# so the RabbitMQ images built by scripts/rabbitmq-image.sh stay cached between runs.
set -euo pipefail
root=${WORKQUEUE_DOCKER_ROOT:-/var/lib/workqueue/docker}
run=${WORKQUEUE_DOCKER_RUN:-/run/workqueue-docker}
sock="$run/docker.sock"
pidfile="$run/docker.pid"

case "${1:-}" in
start)
  command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)" >&2; exit 1; }
  mkdir -p "$root" "$run"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "export DOCKER_HOST=unix://$sock"; exit 0
  fi
  rm -f "$pidfile"
  nohup dockerd --host "unix://$sock" --data-root "$root" --exec-root "$run/exec" \
    --pidfile "$pidfile" --storage-driver=vfs --iptables=false --ip-masq=false >"$run/dockerd.log" 2>&1 &
  for _ in $(seq 1 120); do
    if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
      echo "export DOCKER_HOST=unix://$sock"; exit 0
    fi
    sleep 0.5
  done
  echo "dockerd did not answer within 60 s; its log:" >&2; tail -20 "$run/dockerd.log" >&2; exit 1
  ;;
stop)
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
