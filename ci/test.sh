#!/usr/bin/env bash
# The one test command (README "Quick start"; .ci/run calls it too).
# Runs lints, every unit/integration/doc test, the release-mode stress tests,
# and (when present) the loom models and fuzz smoke runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/lint.sh
cargo test --workspace
cargo test --release -p shmcast-core --test stress
# The runnable examples of sleeping receivers (they exit on their own).
cargo run -q -p shmcast --example epoll_receiver
cargo run -q -p shmcast --example uring_receiver
if [ -x ci/loom.sh ] || [ -f ci/loom.sh ]; then
    bash ci/loom.sh
fi
if [ -f ci/fuzz-smoke.sh ]; then
    bash ci/fuzz-smoke.sh
fi
