#!/usr/bin/env bash
# Prove the ROS test traffic never leaves loopback: capture UDP on all non-loopback addresses while
# the two-process DDS smoke test runs; fail on any packet.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v tcpdump >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq tcpdump) >/dev/null 2>&1 || true
  fi
fi
if ! command -v tcpdump >/dev/null; then
  echo "[loopback-check] SKIPPED: tcpdump not available (cannot capture)"; exit 0
fi
pcap=$(mktemp --suffix=.pcap)
tcpdump -i any -n -U -w "$pcap" 'udp and not net 127.0.0.0/8 and not port 53' >/dev/null 2>&1 &
cap=$!
sleep 1
bash tools/run_tests.sh -q tests/foundation/test_ros_smoke.py -p no:cacheprovider
sleep 1
kill "$cap"; wait "$cap" 2>/dev/null || true
n=$(tcpdump -r "$pcap" -n 2>/dev/null | wc -l)
if [ "$n" -ne 0 ]; then
  echo "[loopback-check] FAILED: $n UDP packet(s) left loopback:"; tcpdump -r "$pcap" -n | head -20; exit 1
fi
echo "[loopback-check] OK: 0 UDP packets outside loopback during the DDS smoke test"
