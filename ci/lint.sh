#!/usr/bin/env bash
# Formatting, clippy, and the sync-shim rule: algorithm code in core/ reaches
# atomics, fences and cells only through core/src/sync.rs, so `--cfg loom`
# swaps all of them (clippy's disallowed-types resolves re-exports and cannot
# tell the shim from the raw types, hence this grep).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build -p shmcast-core --no-default-features

bad=$(grep -rnE 'core::sync::atomic|std::sync::atomic|loom::' core/src \
    | grep -vE '^core/src/sync\.rs:|^core/src/lib\.rs:.*pub use (loom|core)::sync::atomic' || true)
if [ -n "$bad" ]; then
    echo "atomics named outside core/src/sync.rs:" >&2
    echo "$bad" >&2
    exit 1
fi
echo "lint: ok"
