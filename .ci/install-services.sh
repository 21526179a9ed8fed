#!/usr/bin/env bash
# Debian's PostgreSQL 15 and Redis for the prod-profile test (make e2e-prod), when missing:
# as root, or through passwordless sudo; otherwise say so (the test then skips, or fails
# under MLOPS_E2E_REQUIRE_SERVICES=1 as in CI). Only the binaries are used: the test starts
# its own servers on 127.0.0.1 and stops them; the package's own cluster is not started.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${need[*]} and no apt-get: install them yourself" >&2
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    run=()
elif sudo -n true 2>/dev/null; then
    run=(sudo)
else
    echo "missing ${need[*]}; installing needs root: sudo apt-get install ${need[*]}" >&2
    exit 0
fi
# no service starts from the package's maintainer scripts (there is no init system here)
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
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
