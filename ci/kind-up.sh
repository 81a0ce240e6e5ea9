#!/usr/bin/env bash
# A kind cluster for the `kube` target: kind + KEDA (Helm) + Azurite + the consumer image.
#
#   eval "$(ci/kind-up.sh)"     # progress on stderr; the EDW_* variables on stdout
#   EDW_TARGET=kube cargo nextest run -p edw-scenarios --profile ci --run-ignored all -E 'test(/::kube$/)'
#   ci/kind-down.sh
#
# Idempotent: an existing cluster, KEDA release, Azurite container or image is reused or
# upgraded, never duplicated. Under GitHub Actions the variables are also appended to
# $GITHUB_ENV, so later steps of the job have them.
#
# Needs: docker (a running engine), kind, kubectl, helm, curl.
#
# Where Azurite runs, and why: a container (mcr.microsoft.com/azure-storage/azurite) on kind's
# own docker network "kind", with the queue and table ports also published on 127.0.0.1.
#   - the harness (nextest on the runner) reaches it at http://127.0.0.1:10001|10002, with no
#     `kubectl port-forward` process to keep alive;
#   - pods reach it at the container's address on the "kind" network (the nodes are containers
#     on that network), printed below; it survives cluster re-creation.
# A Deployment+Service inside the cluster would need a port-forward or NodePort mapping for the
# harness side, and would disappear with the cluster.
#
# What the kube target still lacks on kind (the flow's manifests are the sample's, written for
# AKS with workload identity), so the scale-out step is expected to fail here until they are
# added:
#   1. KEDA's azure-queue trigger must read Azurite by connection string: a Secret holding the
#      development account's connection string (with QueueEndpoint=http://<azurite>:10001/...)
#      and a TriggerAuthentication mapping it to `connection`. fixtures/manifests/scaledobject.yaml
#      uses `podIdentity: azure-workload` and an `accountName`, i.e. the public cloud endpoint;
#      the flow's manifests do not do the Azurite variant yet.
#   2. The consumer Deployment passes only AZURE_QUEUE_NAME / AZURE_TABLE_NAME /
#      AZURE_STORAGE_ACCOUNT_NAME, so the pod would choose Entra ID; it needs the in-cluster
#      EDW_AZURITE_QUEUE_ENDPOINT / EDW_AZURITE_TABLE_ENDPOINT (or the connection string).
#   3. The Deployment has `imagePullPolicy: Always`, which makes the kubelet pull the image from
#      a registry instead of using the one `kind load` put on the nodes; kind needs
#      IfNotPresent (or Never).
# This script prepares everything those manifests will need (cluster, KEDA, a reachable
# Azurite, the loaded image) and prints the in-cluster Azurite address for them.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${EDW_KIND_CLUSTER:-edw}"
context="kind-${cluster}"
image="${EDW_CONSUMER_IMAGE:-edw-consumer:kind}"
azurite_name="${EDW_AZURITE_CONTAINER:-edw-azurite}"
# The version the harness pins for its embedded Azurite (harness/engine/src/azurite.rs).
azurite_image="${EDW_AZURITE_IMAGE:-mcr.microsoft.com/azure-storage/azurite:3.37.0}"
keda_chart_version="${EDW_KEDA_CHART_VERSION:-}"
account="devstoreaccount1"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'kind-up: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

log "kind cluster ${cluster}"
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "cluster ${cluster} exists: reusing it"
else
  kind create cluster --name "$cluster" --wait 180s >&2
fi
kubectl --context "$context" get nodes >&2

log "KEDA (Helm chart kedacore/keda)"
helm repo add kedacore https://kedacore.github.io/charts --force-update >&2
helm repo update kedacore >&2
keda_args=(upgrade --install keda kedacore/keda -n keda --create-namespace --wait --timeout 5m
  --kube-context "$context")
if [ -n "$keda_chart_version" ]; then
  keda_args+=(--version "$keda_chart_version")
fi
helm "${keda_args[@]}" >&2
kubectl --context "$context" -n keda wait --for=condition=Available deployment --all --timeout=180s >&2

log "Azurite (${azurite_image}) on the kind network"
state="$(docker inspect -f '{{.State.Running}}' "$azurite_name" 2>/dev/null || true)"
case "$state" in
  true) log "container ${azurite_name} is running: reusing it" ;;
  false) docker start "$azurite_name" >/dev/null ;;
  *)
    docker run -d --name "$azurite_name" --network kind \
      -p 127.0.0.1:10001:10001 -p 127.0.0.1:10002:10002 \
      "$azurite_image" \
      azurite --blobHost 0.0.0.0 --queueHost 0.0.0.0 --tableHost 0.0.0.0 \
      --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry >/dev/null
    ;;
esac
# Ready when both services answer HTTP at all (an unsigned request gets 4xx: that is an answer).
deadline=$((SECONDS + 90))
for port in 10001 10002; do
  until code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/${account}")" \
    && [ "$code" != "000" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      docker logs "$azurite_name" >&2 || true
      die "Azurite did not answer on 127.0.0.1:${port} within 90 s"
    fi
    sleep 1
  done
done
azurite_ip="$(docker inspect -f '{{with index .NetworkSettings.Networks "kind"}}{{.IPAddress}}{{end}}' "$azurite_name")"
[ -n "$azurite_ip" ] || die "container ${azurite_name} has no address on the kind network"

log "consumer image ${image}"
docker build -f fixtures/images/consumer/Dockerfile -t "$image" . >&2
kind load docker-image "$image" --name "$cluster" >&2

vars=(
  "EDW_TARGET=kube"
  "EDW_KUBE_CONTEXT=${context}"
  "EDW_CONSUMER_IMAGE=${image}"
  "EDW_STORAGE_AUTH=azurite"
  "EDW_AZURITE_QUEUE_ENDPOINT=http://127.0.0.1:10001/${account}"
  "EDW_AZURITE_TABLE_ENDPOINT=http://127.0.0.1:10002/${account}"
  # Where the consumer pods and KEDA reach the same Azurite: its address on kind's network.
  # The flow puts these in the connection string of the Secret its pods and KEDA read.
  "EDW_CLUSTER_QUEUE_ENDPOINT=http://${azurite_ip}:10001/${account}"
  "EDW_CLUSTER_TABLE_ENDPOINT=http://${azurite_ip}:10002/${account}"
)
if [ -n "${GITHUB_ENV:-}" ]; then
  printf '%s\n' "${vars[@]}" >>"$GITHUB_ENV"
fi
log "ready; the variables for the harness side follow (stdout)"
printf 'export %s\n' "${vars[@]}"
