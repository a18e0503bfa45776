#!/usr/bin/env bash
# Everything the test command needs beyond a Rust toolchain. Idempotent.
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "the nightly toolchain is required for the fuzz step: rustup toolchain install nightly" >&2
    exit 1
fi
# cargo-fuzz, pinned; installed only when that version is missing.
CARGO_FUZZ_VERSION=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
# Fetch crates up front so a network hiccup fails here, clearly.
cargo fetch --locked
(cd fuzz && cargo fetch --locked)
