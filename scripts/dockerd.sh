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
  # overlay2 where the kernel has it: a container is then created in a fraction of a second;
  # vfs copies the whole image (230 MB) for each one, which took over 60 s on a loaded 2-core
  # machine (measured 2026-12-06). WORKQUEUE_DOCKER_DRIVER names one; vfs is the fallback.
  drivers=${WORKQUEUE_DOCKER_DRIVER:-}
  [ -n "$drivers" ] || { grep -qw overlay /proc/filesystems && drivers="overlay2 vfs" || drivers=vfs; }
  for driver in $drivers; do
    nohup dockerd --host "unix://$sock" --data-root "$root" --exec-root "$run/exec" \
      --pidfile "$pidfile" --storage-driver="$driver" --iptables=false --ip-masq=false >"$run/dockerd.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do
      if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
        echo "export DOCKER_HOST=unix://$sock"; exit 0
      fi
      kill -0 "$pid" 2>/dev/null || break           # this driver refused: the next one
      sleep 0.5
    done
    echo "dockerd with storage driver $driver did not answer; its log:" >&2; tail -5 "$run/dockerd.log" >&2
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done
  echo "dockerd did not start with any of: $drivers" >&2; exit 1
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
