#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: install Postroom and the test tools,
# install the system test tools (litmus), install and start the real services (PostgreSQL, MinIO, Elasticsearch, IPP) on
# loopback, then run pytest.
# Service tests fail (instead of skipping) when POSTROOM_REQUIRE_SERVICES=1, the default here.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ops/setup-python.sh test
ops/test-tools.sh
eval "$(ops/services.sh start)"
export POSTROOM_REQUIRE_SERVICES="${POSTROOM_REQUIRE_SERVICES:-1}"
exec .venv/bin/pytest "$@"
