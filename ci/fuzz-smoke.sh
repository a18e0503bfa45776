#!/usr/bin/env bash
# Fuzz smoke job: build every cargo-fuzz target in fuzz/ (its own workspace)
# and run each for a bounded time from the committed seed corpus
# fuzz/corpus/<target>/. Exits non-zero on a crash, a leak, a timeout
# (a call that does not return within 10 s) or a build failure; the input
# that failed is left in fuzz/artifacts/<target>/.
#
# Cost on 2 cores: about 2.5 min to build (ASan, first time), then
# FUZZ_SECONDS (default 30) per target, one target at a time.
# Longer runs: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
TARGETS=(ops_model attach_bytes hostile_writer handshake_decode)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz-smoke: the nightly toolchain is required (cargo-fuzz needs -Zsanitizer)" >&2
    exit 1
fi
# Install the pinned cargo-fuzz only when that version is not there yet.
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# -a: debug assertions and overflow checks on, so arithmetic on peer data
# that could overflow fails here instead of wrapping silently.
cargo +nightly fuzz build -a

# New inputs go to a scratch directory; the committed corpus is only read.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${TARGETS[@]}"; do
    echo "fuzz-smoke: $t for ${FUZZ_SECONDS}s"
    mkdir -p "$scratch/$t" "fuzz/corpus/$t"
    log="$scratch/$t.log"
    if ! cargo +nightly fuzz run -a "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 100 "$log" >&2
        echo "fuzz-smoke: $t FAILED; the input is in fuzz/artifacts/$t/;" \
            "reproduce with: cargo +nightly fuzz run -a $t fuzz/artifacts/$t/<file>" >&2
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec)' "$log" || true
done
echo "fuzz-smoke: ok (${#TARGETS[@]} targets, ${FUZZ_SECONDS}s each)"
