#!/usr/bin/env bash
# Debian's Chromium for the UI end-to-end test (make e2e), when it is missing: as root, or
# through passwordless sudo; otherwise say so (the test then skips, or fails in CI).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no chromium and no apt-get: install Chromium yourself (MLOPS_CHROMIUM=path)" >&2
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    run=()
elif sudo -n true 2>/dev/null; then
    run=(sudo)
else
    echo "no chromium, and installing it needs root: sudo apt-get install chromium" >&2
    exit 0
fi
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
