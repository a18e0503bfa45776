#!/usr/bin/env bash
# Everything the test command needs beyond a Rust toolchain. Idempotent.
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true
# Fetch crates up front so a network hiccup fails here, clearly.
cargo fetch --locked 2>/dev/null || cargo fetch
