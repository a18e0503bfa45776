#!/usr/bin/env bash
# The one test command (README "Quick start"; .ci/run calls it too):
# lints, every unit / integration / doc test (cross-process included), the
# release-mode stress tests, the sleeping-receiver examples, the loom models
# and their mutants, a short fuzz run of every target, and a smoke run of
# the benchmark binary. Needs the nightly toolchain for the fuzz step
# (ci/install.sh checks).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "=== ci/test.sh: $* ($(date -u +%T))"; }

step lint
bash ci/lint.sh
step "workspace tests"
cargo test --workspace
step "stress tests (release)"
cargo test --release -p shmcast-core --test stress
step "examples"
cargo run -q -p shmcast --example epoll_receiver
cargo run -q -p shmcast --example uring_receiver
step "loom models and mutants"
bash ci/loom.sh
step "fuzz smoke"
bash ci/fuzz-smoke.sh
step "bench smoke"
bash ci/bench-smoke.sh
step done
