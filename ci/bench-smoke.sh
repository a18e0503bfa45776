#!/usr/bin/env bash
# Bench smoke: build the cross-process benchmark and run its tiny mode, which
# checks that every mechanism (pipe, unix socket, shm+eventfd, raw spin,
# shmcast unicast busy-polling and sleeping in every notify backend that
# works here, broadcast, multicast, multi-producer throughput, and the two
# peer libraries, iceoryx2 and shmem-ipc) moves
# messages intact between real processes and that every table renders
# (markdown, CSV, SVG). The numbers of this run mean nothing. A few seconds
# plus the build.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run --release -q -p shmcast-benches --bin shmcast-bench -- --quick --smoke --out "$out" >"$out/stdout.md"
test -s "$out/report.md"
for t in latency-p50 streaming broadcast-scaling multicast-sender-cpu throughput-msgs notify-wakeup notify-send-cost; do
    for ext in md csv svg; do
        test -s "$out/$t.$ext" || { echo "bench smoke: missing $t.$ext" >&2; exit 1; }
    done
done
echo "bench smoke: ok"
