#!/usr/bin/env bash
# Regenerates fixtures/protobuf/kubernetes.binpb, the descriptor set the twin decodes
# protobuf request bodies with (`application/vnd.kubernetes.protobuf`, what kubectl sends),
# from the upstream `generated.proto` files of one Kubernetes release.
#
# Usage: ci/kubernetes-protobuf.sh API_REPO APIMACHINERY_REPO APIEXTENSIONS_REPO [TAG]
#   *_REPO: git repositories (clones or bare mirrors) of github.com/kubernetes/api,
#   /apimachinery and /apiextensions-apiserver; TAG: their tag (default v0.33.2, the release
#   of the Kubernetes version the twin reports, v1.33.2). Needs `protoc` (Debian:
#   protobuf-compiler). Maintainers run it when the twin's Kubernetes version changes; the
#   build and the tests only read the file it writes.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,11p' "$0" >&2
  exit 2
fi
api_repo=$1 apimachinery_repo=$2 apiextensions_repo=$3 tag=${4:-v0.33.2}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/fixtures/protobuf/kubernetes.binpb"
command -v protoc >/dev/null 2>&1 || { echo "protoc is missing (Debian: apt-get install protobuf-compiler)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The protos import each other as k8s.io/<repo>/<path>: lay the three trees out that way.
export_tree() {
  local repo=$1 name=$2
  mkdir -p "$work/k8s.io/$name"
  git -C "$repo" archive "$tag" | tar -x -C "$work/k8s.io/$name"
}
export_tree "$api_repo" api
export_tree "$apimachinery_repo" apimachinery
export_tree "$apiextensions_repo" apiextensions-apiserver

mapfile -t protos < <(cd "$work" && find k8s.io -name generated.proto \
  -not -path '*/testapigroup/*' | sort)
mkdir -p "$(dirname "$out")"
# protoc warns about every unused import upstream: keep its other messages.
(cd "$work" && protoc --proto_path=. --include_imports --descriptor_set_out="$out" "${protos[@]}") \
  2> >(grep -v "is unused" >&2)

commit() { git -C "$1" rev-parse "$tag^{commit}"; }
echo "wrote $out from ${#protos[@]} files at $tag:"
echo "  kubernetes/api $(commit "$api_repo")"
echo "  kubernetes/apimachinery $(commit "$apimachinery_repo")"
echo "  kubernetes/apiextensions-apiserver $(commit "$apiextensions_repo")"
echo "  $(protoc --version)"
