#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver (the page's browser test drives them with
# selenium), when they are missing and we are root. Browsers cannot be downloaded here any
# other way (playwright's own downloads are not reachable).
set -euo pipefail
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium and chromium-driver are not installed: apt-get install chromium chromium-driver" >&2
  exit 0   # the browser test itself then fails, saying so in one line
fi
echo "installing chromium and chromium-driver (Debian packages) for the page's browser test..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
