#!/usr/bin/env bash
# Makes Debian's chromium available for the agent console's browser test (Playwright drives it
# through executable_path; no browser is downloaded by Playwright). Fails loudly if it cannot.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
echo "==> $CHROMIUM is missing: installing Debian's chromium package (apt-get)..."
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "error: chromium is not installed and this user cannot run apt-get. Run as root: apt-get install -y chromium" >&2; exit 1; }
else
  SUDO=
fi
if ! command -v apt-get >/dev/null; then
  echo "error: no apt-get here. Install Chromium and run the tests with CHROMIUM=/path/to/chromium." >&2
  exit 1
fi
if ! { $SUDO apt-get install -y chromium >/tmp/ensure_browser.log 2>&1 || { $SUDO apt-get update >>/tmp/ensure_browser.log 2>&1 && $SUDO apt-get install -y chromium >>/tmp/ensure_browser.log 2>&1; }; }; then
  tail -20 /tmp/ensure_browser.log >&2
  echo "error: could not install chromium (see above). Install it by hand: apt-get install -y chromium" >&2
  exit 1
fi
[ -x "$CHROMIUM" ] || { echo "error: apt-get installed chromium but $CHROMIUM is still missing." >&2; exit 1; }
echo "==> chromium installed: $CHROMIUM"
