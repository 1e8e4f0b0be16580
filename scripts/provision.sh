#!/usr/bin/env bash
# Installs what the integration tests use beyond Node: libvirt (+ headers for the @unraid/libvirt addon),
# qemu, a guest kernel and busybox for the real-VM smoke test, Debian's clickhouse-server, and a JDK + Maven
# to fetch Kafka's jars. Idempotent; needs root (CI runs as root). Without root it says what it skipped.
set -uo pipefail
pkgs=(libvirt-dev libvirt-daemon-system libvirt-clients qemu-system-x86 linux-image-amd64 busybox-static
      clickhouse-server clickhouse-client default-jre-headless maven protobuf-compiler chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "provision: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/wattsplit-apt.log 2>&1 \
      || { echo "provision: apt-get failed, see /tmp/wattsplit-apt.log"; tail -20 /tmp/wattsplit-apt.log; }
  else
    echo "provision: not root, skipping Debian packages: ${missing[*]} (their integration tests will skip)"
  fi
fi
if [ -x scripts/kafka.sh ]; then bash scripts/kafka.sh fetch || echo "provision: Kafka fetch failed (Kafka tests will skip)"; fi
exit 0
