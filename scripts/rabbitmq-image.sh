#!/usr/bin/env bash
# Build (or reuse) a RabbitMQ image from Debian's packages, for machines that cannot pull the
# official `rabbitmq` image. Prints the image tag on stdout; progress goes to stderr.
#
#   scripts/rabbitmq-image.sh bookworm   -> workqueue/rabbitmq:bookworm  (RabbitMQ 3.10.x)
#   scripts/rabbitmq-image.sh forky      -> workqueue/rabbitmq:forky     (RabbitMQ 4.x)
#
# The root filesystem comes from debootstrap (minbase + rabbitmq-server), with the mirror read
# from this machine's apt sources; scripts/rabbitmq-entrypoint.sh is added as the entrypoint
# (a changed entrypoint or script re-imports the image, found by its label), and the image is
# labelled with its rabbitmq-server package's version.
# The rootfs tarball is cached in WORKQUEUE_IMAGE_CACHE (default /var/cache/workqueue) and the
# image in the Docker engine, so a second call costs nothing.
set -euo pipefail
suite=${1:?usage: $0 bookworm|forky}
tag="workqueue/rabbitmq:$suite"
cache=${WORKQUEUE_IMAGE_CACHE:-/var/cache/workqueue}

here=$(cd "$(dirname "$0")" && pwd)
entrypoint="$here/rabbitmq-entrypoint.sh"
sum=$(cat "$entrypoint" "$0" | sha256sum | cut -c1-16)     # a change of either re-imports
have=$(docker image inspect -f '{{ index .Config.Labels "workqueue.entrypoint" }}' "$tag" 2>/dev/null || true)
if [ "$have" = "$sum" ]; then echo "$tag"; exit 0; fi

mirror() {  # the first Debian (non-security) mirror in this machine's apt sources
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ {print $2}' "$f" | grep -v security | grep -i debian | head -1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  awk '$1=="deb" && $2 !~ /security/ && $2 ~ /debian/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null
}

tarball="$cache/rabbitmq-$suite.tar"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  url=$(mirror); [ -n "$url" ] || { echo "no Debian mirror found in /etc/apt/sources*" >&2; exit 1; }
  script=/usr/share/debootstrap/scripts/$suite
  [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid   # newest suites share sid's script
  mkdir -p "$cache"
  dir=$(mktemp -d "$cache/rootfs-$suite.XXXX")
  trap 'rm -rf "$dir"' EXIT
  echo "debootstrap $suite from the machine's mirror (about a minute)..." >&2
  debootstrap --variant=minbase --include=rabbitmq-server "$suite" "$dir" "$url" "$script" >"$dir.log" 2>&1 \
    || { echo "debootstrap failed; last lines:" >&2; tail -20 "$dir.log" >&2; exit 1; }
  rm -f "$dir.log"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$dir"; trap - EXIT
fi

echo "importing $tarball as $tag" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/usr/local/bin"
install -m 0755 "$entrypoint" "$work/usr/local/bin/workqueue-entrypoint"
cp "$tarball" "$work/rootfs.tar"
tar --delete -f "$work/rootfs.tar" ./usr/local/bin/workqueue-entrypoint 2>/dev/null || true
tar -rf "$work/rootfs.tar" -C "$work" ./usr/local/bin/workqueue-entrypoint
# The rabbitmq-server package's version, as dpkg recorded it: the harness reads it to know
# which of Debian's patches the broker carries (workqueue/testing/debian.py).
package=$(tar -xOf "$work/rootfs.tar" ./var/lib/dpkg/status \
  | awk '/^Package: /{p=($2=="rabbitmq-server")} p && /^Version: /{print $2; exit}')
docker import \
  --change "LABEL workqueue.entrypoint=$sum" \
  --change "LABEL workqueue.rabbitmq-package=$package" \
  --change 'ENTRYPOINT ["/usr/local/bin/workqueue-entrypoint"]' \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'EXPOSE 5672 15672' \
  "$work/rootfs.tar" "$tag" >/dev/null
echo "$tag"
