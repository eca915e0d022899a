#!/usr/bin/env bash
# Install Debian's rabbitmq-server for the node backend, when it is missing and we are root.
# The system service is not started (a policy-rc.d denies it for the duration of the install):
# the project runs its own private nodes.
set -euo pipefail
server=/usr/lib/rabbitmq/bin/rabbitmq-server
[ -x "$server" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "rabbitmq-server is not installed and this is not root: install it (apt-get install rabbitmq-server)" >&2
  echo "or start a Docker engine for the container backend" >&2
  exit 0   # the test run itself then says which broker it can or cannot have
fi
command -v apt-get >/dev/null || { echo "no apt-get here: install rabbitmq-server or Docker yourself" >&2; exit 0; }
own_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
fi
trap '[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
echo "installing rabbitmq-server (Debian package; its system service stays stopped)..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
