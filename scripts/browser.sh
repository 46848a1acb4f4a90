#!/usr/bin/env bash
# Debian's chromium for the page tests (tests/e2e/browser.py), from the machine's package
# manager, never a browser download. Harmless when it is already installed.
set -u
CHROMIUM="${FERRY_TEST_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "chromium: $CHROMIUM"
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing Debian's chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
fi
if [ -x "$CHROMIUM" ]; then
  echo "chromium: $CHROMIUM"
else
  echo "chromium: NOT installed at $CHROMIUM (install Debian's chromium; the page tests need it)"
fi
exit 0
