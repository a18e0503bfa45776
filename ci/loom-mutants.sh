#!/usr/bin/env bash
# Do the loom models bite? Each patch in loom-tests/mutants/ breaks one step
# or one ordering of a core protocol; the loom test named in its header
# (`# test:` file, `# filter:` test-name filter) must FAIL with the patch
# applied. The patches are applied to a scratch copy of the workspace, never
# to this checkout.
#
# Prints one line per mutant (killed / SURVIVED / ERROR) followed by the
# first lines of loom's panic message, and keeps each full log under
# $LOGS (default target/loom-mutants/logs). Exits non-zero if any mutant
# survived or could not be built.
#
# Usage: ci/loom-mutants.sh [mutant-name ...]
#   MUTANT_TARGET_DIR  target dir shared by all mutant builds (default
#                     target/loom-mutants). Never the suite's target/loom:
#                     cargo names a workspace member's artifacts by its path
#                     relative to the workspace root, so a mutant built from
#                     the scratch copy would overwrite the suite's artifacts
#                     and, being newer than this checkout's sources, be taken
#                     as fresh by the next suite run.
#   LOOM_MAX_PREEMPTIONS (default 2), MUTANT_TIMEOUT seconds per test (300)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${MUTANT_TARGET_DIR:-$root/target/loom-mutants}
case $target in /*) ;; *) target=$root/$target ;; esac
logs=${LOGS:-$root/target/loom-mutants/logs}
timeout_s=${MUTANT_TIMEOUT:-300}

# A first run seeds its target dir with a copy of the suite's, for the
# dependencies (loom and the rest, built with the same RUSTFLAGS). The
# workspace members in it are rebuilt all the same: the scratch sources
# below are newer than any artifact.
if [ ! -e "$target" ] && [ -d "$root/target/loom/release" ]; then
    mkdir -p "$(dirname "$target")"
    cp -a "$root/target/loom" "$target"
fi
mkdir -p "$logs"

# Scratch copy of the workspace: everything but target/ and .git/. `-m`
# stamps every file with the current time, so that the first build rebuilds
# the workspace members whatever a previous run left in the target dir.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/shmcast-mutants.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tar -C "$root" --exclude=./target --exclude=./.git -cf - . | tar -C "$scratch" -xmf -

export RUSTFLAGS="--cfg loom -C debug_assertions${RUSTFLAGS:+ $RUSTFLAGS}"
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}
export CARGO_TERM_COLOR=never
# Name the source lines of the two accesses in a causality violation.
export LOOM_LOCATION=1

if [ $# -gt 0 ]; then
    patches=()
    for name in "$@"; do patches+=("$root/loom-tests/mutants/$name.patch"); done
else
    patches=("$root"/loom-tests/mutants/*.patch)
fi

summary=$logs/summary.txt
: >"$summary"
say() { echo "$@" | tee -a "$summary"; }

bad=0
for patch in "${patches[@]}"; do
    name=$(basename "$patch" .patch)
    test=$(sed -n 's/^# test: *//p' "$patch" | head -n1)
    filter=$(sed -n 's/^# filter: *//p' "$patch" | head -n1)
    log=$logs/$name.log
    started=$(date +%s)
    if ! (cd "$scratch" && patch -p1 --forward --no-backup-if-mismatch -s) <"$patch" >"$log" 2>&1; then
        say "$name: ERROR patch does not apply (see $log)"
        bad=1
        # Undo whatever part of it applied.
        (cd "$scratch" && patch -p1 -R -f -s --no-backup-if-mismatch) <"$patch" >/dev/null 2>&1 || true
        continue
    fi
    cargo_test=(cargo test -p shmcast-loom-tests --release --target-dir "$target" --test "$test")
    if ! (cd "$scratch" && "${cargo_test[@]}" --no-run) >>"$log" 2>&1; then
        say "$name: ERROR does not build (see $log)"
        bad=1
    else
        set +e
        (cd "$scratch" && timeout "$timeout_s" "${cargo_test[@]}" -- ${filter:+"$filter"}) >>"$log" 2>&1
        status=$?
        set -e
        took=$(($(date +%s) - started))
        if [ "$status" -eq 0 ] && grep -q "^running 0 tests" "$log" && ! grep -q "^running [1-9]" "$log"; then
            say "$name: ERROR no test matches '$test ${filter}'"
            bad=1
        elif [ "$status" -eq 0 ]; then
            say "$name: SURVIVED ($test ${filter}, ${took}s)"
            bad=1
        elif [ "$status" -eq 124 ]; then
            say "$name: ERROR timed out after ${timeout_s}s ($test ${filter})"
            bad=1
        else
            say "$name: killed by $test ${filter} (${took}s)"
            # The panic location and the first lines of its message.
            awk '/panicked at/ { on = 1 } /^stack backtrace:|^note: / { if (on) exit }
                 on && NF && n < 6 { print "    | " $0; n++ }' "$log" | tee -a "$summary"
        fi
    fi
    (cd "$scratch" && patch -p1 -R -s --no-backup-if-mismatch) <"$patch" >>"$log" 2>&1
done

if [ "$bad" -ne 0 ]; then
    say "loom mutants: some mutant survived or failed to build" >&2
    exit 1
fi
say "loom mutants: all ${#patches[@]} killed (summary: $summary)"
