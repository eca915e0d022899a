#!/usr/bin/env bash
# A stock RabbitMQ to run the specification against with `make test BROKER=url`, as a user
# runs it against a broker of theirs: Debian's rabbitmq-server with its own defaults (the user
# guest:guest, allowed from loopback only; AMQP on 5672, the management plugin on 15672) and
# nothing configured for the tests, except that it listens on 127.0.0.1 only and keeps its data,
# logs, cookie and port mapper (epmd) in a directory of its own.
#   eval "$(scripts/stock-broker.sh start)"   prints the exports of WORKQUEUE_BROKER_URL and
#                                             WORKQUEUE_MANAGEMENT_URL once it answers
#   scripts/stock-broker.sh stop              stops it and removes its directory
# Exit codes: 0 done; 1 it could not start (its log's last lines on stderr); 2 bad usage.
set -euo pipefail
dir=${WORKQUEUE_STOCK_DIR:-/tmp/workqueue-stock-broker}
server=/usr/lib/rabbitmq/bin/rabbitmq-server
ctl=/usr/lib/rabbitmq/bin/rabbitmqctl
epmd_port=${WORKQUEUE_STOCK_EPMD_PORT:-4370}

env_of() {
  export HOME="$dir/home" RABBITMQ_NODENAME=stock@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_PID_FILE="$dir/rabbit.pid" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1
}

case "${1:-}" in
start)
  [ -x "$server" ] || { echo "stock-broker: $server not found (apt-get install rabbitmq-server)" >&2; exit 1; }
  for port in 5672 15672 25672 "$epmd_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "stock-broker: port $port on 127.0.0.1 is taken: is a broker already running?" >&2; exit 1
    fi
  done
  rm -rf "$dir"; mkdir -p "$dir/home" "$dir/log" "$dir/mnesia"
  echo "[rabbitmq_management]." >"$dir/enabled_plugins"
  printf 'listeners.tcp.default = 127.0.0.1:5672\nmanagement.tcp.ip = 127.0.0.1\n' >"$dir/rabbitmq.conf"
  env_of
  setsid "$server" >"$dir/log/console.log" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  # await_startup fails at once while the node has not registered with epmd: asked again
  for _ in $(seq 1 60); do
    if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then break; fi
    if "$ctl" -n stock@localhost await_startup --timeout 60 >/dev/null 2>&1 \
       && (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
      echo "export WORKQUEUE_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/"
      echo "export WORKQUEUE_MANAGEMENT_URL=http://127.0.0.1:15672"
      exit 0
    fi
    sleep 2
  done
  echo "stock-broker: rabbitmq-server did not start within 120 s; its last log lines:" >&2
  tail -20 "$dir/log/console.log" "$dir"/log/*.log >&2 || true
  "$0" stop; exit 1
  ;;
stop)
  [ -d "$dir" ] || exit 0
  env_of
  if [ -f "$dir/server.pid" ]; then
    pid=$(cat "$dir/server.pid")
    "$ctl" -n stock@localhost stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 -- "-$pid" 2>/dev/null || true
  fi
  epmd -kill >/dev/null 2>&1 || true          # the port mapper the node started, on its own port
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
