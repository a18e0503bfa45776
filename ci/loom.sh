#!/usr/bin/env bash
# The loom job: model-check every core protocol (loom-tests/, run under
# `--cfg loom`), then check that the models bite (ci/loom-mutants.sh: each
# deliberately broken core must fail its model).
#
#   LOOM_MAX_PREEMPTIONS  suite bound (default 2; the cheap models add one)
#   SKIP_MUTANTS=1        run the suite only
set -euo pipefail
cd "$(dirname "$0")/.."

user_rustflags=${RUSTFLAGS:-}
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}

started=$(date +%s)
# ci/loom-mutants.sh builds with the very same flags, so that it can reuse
# the dependencies built here.
RUSTFLAGS="--cfg loom -C debug_assertions${user_rustflags:+ $user_rustflags}" \
    cargo test -p shmcast-loom-tests --release --target-dir target/loom -- --nocapture
suite=$(($(date +%s) - started))
echo "loom suite: ${suite}s (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"

if [ "${SKIP_MUTANTS:-0}" = 1 ]; then
    exit 0
fi
started=$(date +%s)
RUSTFLAGS=$user_rustflags ci/loom-mutants.sh
echo "loom suite: ${suite}s, mutants: $(($(date +%s) - started))s"
