#!/usr/bin/env bash
# Installs Debian's chromium for the report's browser test (tests/test_report_browser.py), unless one is on PATH.
# Playwright drives this system binary; it downloads no browser of its own.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "chromium is missing and this user cannot install it: install Debian's chromium package, or set" \
       "NEUROSPEC_SKIP_BROWSER=1 to leave the browser test out" >&2
  exit 1
fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
