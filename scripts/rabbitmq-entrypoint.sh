#!/bin/sh
# Entrypoint of the workqueue/rabbitmq images (scripts/rabbitmq-image.sh): writes rabbitmq.conf
# from the environment variables testcontainers' RabbitMqContainer sets, enables the management
# plugin, and runs the broker in the foreground, logging to stdout.
set -e
mkdir -p /etc/rabbitmq
{
  echo "listeners.tcp.default = ${RABBITMQ_NODE_PORT:-5672}"
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
  echo "loopback_users = none"
  echo "management.tcp.port = 15672"
  if [ -n "${RABBITMQ_EXTRA_CONF:-}" ]; then printf '%s\n' "$RABBITMQ_EXTRA_CONF"; fi
} >/etc/rabbitmq/rabbitmq.conf
echo '[rabbitmq_management].' >/etc/rabbitmq/enabled_plugins
export RABBITMQ_LOGS=-
exec /usr/lib/rabbitmq/bin/rabbitmq-server
