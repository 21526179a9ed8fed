#!/usr/bin/env bash
# Debian's PostgreSQL 15 and Redis for the prod-profile test (make e2e-prod), when missing
# (under MLOPS_E2E_REQUIRE_SERVICES=1, as in CI, the test fails without them; otherwise it
# skips). Only the binaries are used: the test starts its own servers on 127.0.0.1 and
# stops them; the package's own cluster is not started.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
exec bash "$(dirname "$0")/apt-install.sh" "${need[@]}"
