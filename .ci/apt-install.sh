#!/usr/bin/env bash
# Install Debian packages for a test target: as root, or through passwordless sudo;
# otherwise say what to run and exit 0 (the test then skips, or fails in CI, which is told
# to require it). No service starts from the packages' maintainer scripts (there is no init
# system here, and the tests start their own servers on 127.0.0.1).
# Usage: apt-install.sh PACKAGE...
set -euo pipefail
[ $# -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing $*, and no apt-get: install them yourself" >&2
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    run=()
elif sudo -n true 2>/dev/null; then
    run=(sudo)
else
    echo "missing $*; installing needs root: sudo apt-get install $*" >&2
    exit 0
fi
policy=$(mktemp)
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod +x "$policy"
"${run[@]}" install -m 755 "$policy" /usr/sbin/policy-rc.d.mlops
rm -f "$policy"
if [ ! -e /usr/sbin/policy-rc.d ]; then
    "${run[@]}" ln -s /usr/sbin/policy-rc.d.mlops /usr/sbin/policy-rc.d
    trap '"${run[@]}" rm -f /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.mlops' EXIT
fi
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
