#!/bin/sh
# Builds promtool from the Prometheus Go module into .tools/bin (once; later calls reuse it) and prints
# the bin directory. deploy/prometheus's test checks the alert rules and the scrape config with it.
#   scripts/prometheus-tools.sh     exit 3 when Go is missing; the build's own status when it fails
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
# Prometheus v3.x is tagged v0.3xx.y as a Go module (v3.6.0 = v0.306.0).
PROMETHEUS_MODULE_VERSION=${PROMETHEUS_MODULE_VERSION:-v0.316.0}
command -v go >/dev/null 2>&1 || { echo "go not installed" >&2; exit 3; }
mkdir -p "$bin"
export GOBIN="$bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local
# -tags: leave out the service-discovery plugins promtool never loads (smaller, faster build)
[ -x "$bin/promtool" ] || go install -tags "remove_all_sd" "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >&2
echo "$bin"
