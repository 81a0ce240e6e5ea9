#!/usr/bin/env bash
# nextest wrapper script (.config/nextest.toml): runs the test ("$@") with the Azurite of its
# slot from EDW_SUITE_AZURITE_POOL (ci/suite-azurite.sh) as EDW_AZURITE_QUEUE_ENDPOINT and
# EDW_AZURITE_TABLE_ENDPOINT. nextest gives every running test its own slot
# (NEXTEST_TEST_GLOBAL_SLOT), so no two running tests share an Azurite. Without a pool (or
# with EDW_AZURITE_* already set) the test runs as it is.
set -euo pipefail
if [ -n "${EDW_SUITE_AZURITE_POOL:-}" ] && [ -z "${EDW_AZURITE_QUEUE_ENDPOINT:-}" ]; then
  IFS=';' read -ra pool <<<"$EDW_SUITE_AZURITE_POOL"
  slot=${NEXTEST_TEST_GLOBAL_SLOT:-0}
  entry=${pool[$((slot % ${#pool[@]}))]}
  export EDW_AZURITE_QUEUE_ENDPOINT="${entry%% *}"
  export EDW_AZURITE_TABLE_ENDPOINT="${entry##* }"
fi
exec "$@"
