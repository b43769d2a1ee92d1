#!/usr/bin/env bash
# Makes Debian's haproxy available for `make scale-test` (the load balancer in front of the Rasa
# and action replicas, as in deploy/compose/). Installs it with apt-get if missing; fails loudly if
# it cannot. Only the binary is used: the scale test runs its own haproxy on loopback ports with
# its own configuration, never the system service.
set -euo pipefail
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
if [ -x "$HAPROXY" ]; then
  exit 0
fi
echo "==> haproxy is missing: installing Debian's haproxy package (apt-get)..."
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "error: haproxy is not installed and this user cannot run apt-get. Run as root: apt-get install -y haproxy" >&2; exit 1; }
else
  SUDO=
fi
if ! command -v apt-get >/dev/null; then
  echo "error: no apt-get here. Install HAProxy (2.2 or newer) and run with HAPROXY=/path/to/haproxy." >&2
  exit 1
fi
# Where a service manager runs, the package also starts the system service (/etc/haproxy/); the
# scale test neither uses nor touches it.
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get install -y --no-install-recommends haproxy >/tmp/ensure_haproxy.log 2>&1 || { $SUDO apt-get update >>/tmp/ensure_haproxy.log 2>&1 && $SUDO apt-get install -y --no-install-recommends haproxy >>/tmp/ensure_haproxy.log 2>&1; }; }; then
  tail -20 /tmp/ensure_haproxy.log >&2
  echo "error: could not install haproxy (see above). Install it by hand: apt-get install -y haproxy" >&2
  exit 1
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "error: apt-get installed haproxy but it is still missing from PATH." >&2; exit 1; }
echo "==> haproxy installed: $HAPROXY ($("$HAPROXY" -v | head -1))"
