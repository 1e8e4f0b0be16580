#!/bin/sh
# Builds helm and kubeconform from their Go modules into .tools/bin (once; later calls reuse them) and
# generates kubeconform's schemas for the built-in Kubernetes kinds from the k8s.io/api Go module
# (kubeconform fetches them from GitHub by default, which CI machines here cannot reach).
#   scripts/k8s-tools.sh            prints the bin directory; exit 3 when Go is missing
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
bin="$tools/bin"
HELM_VERSION=v3.16.4
KUBECONFORM_VERSION=v0.6.7
command -v go >/dev/null 2>&1 || { echo "go not installed" >&2; exit 3; }
mkdir -p "$bin"
export GOBIN="$bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local
[ -x "$bin/helm" ] || go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
[ -x "$bin/kubeconform" ] || go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2
echo "$bin"
