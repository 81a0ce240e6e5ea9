#!/usr/bin/env bash
# Removes what ci/kind-up.sh created: the kind cluster and the Azurite container. Safe to run
# when either is already gone (and from an `if: always()` step after a failed setup); exits
# non-zero only when something that exists could not be removed.
set -euo pipefail

cluster="${EDW_KIND_CLUSTER:-edw}"
azurite_name="${EDW_AZURITE_CONTAINER:-edw-azurite}"
status=0

if command -v kind >/dev/null 2>&1; then
  if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    echo "== deleting kind cluster ${cluster}"
    kind delete cluster --name "$cluster" || status=1
  else
    echo "== no kind cluster ${cluster}"
  fi
else
  echo "== kind is not installed: no cluster to delete"
fi

if command -v docker >/dev/null 2>&1 && docker container inspect "$azurite_name" >/dev/null 2>&1; then
  echo "== removing container ${azurite_name}"
  docker rm -f "$azurite_name" >/dev/null || status=1
else
  echo "== no container ${azurite_name}"
fi

exit "$status"
