#!/usr/bin/env bash
# Debian's Chromium for the UI end-to-end test (make e2e), when it is missing (the test then
# skips, or fails in CI; MLOPS_CHROMIUM=path points it at another browser).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
exec bash "$(dirname "$0")/apt-install.sh" chromium
