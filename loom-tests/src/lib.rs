//! Loom models of the shmcast-core protocols, written once and run two ways.
//!
//! - `RUSTFLAGS="--cfg loom" cargo test -p shmcast-loom-tests --release`:
//!   every scenario in [`scenarios`] runs under [`loom::model`], which
//!   explores the thread interleavings and the weak-memory outcomes the C++20
//!   model allows (bounded by `LOOM_MAX_PREEMPTIONS`). Core swaps its atomics
//!   for loom's under the same cfg, and its heap storage puts a loom
//!   `UnsafeCell` race detector on every slot, so a payload read that is not
//!   ordered after its write is reported as a causality violation.
//! - `cargo test -p shmcast-loom-tests`: the same scenarios run as stress
//!   tests on real threads, [`stress_iterations`] times each.
//!
//! Scenario code names only what this crate exports ([`spawn`], [`Arc`], the
//! atomics in [`atomic`], [`Spin`]), so it compiles against either runtime.
//!
//! [`loom::model`]: https://docs.rs/loom/0.7/loom/fn.model.html

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod scenarios;

#[cfg(loom)]
mod rt {
    pub use loom::sync::{Arc, Mutex};
    pub use loom::thread::{spawn, yield_now, JoinHandle};

    /// Test-side atomics (flags and counters shared between scenario threads).
    pub mod atomic {
        pub use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    }
}

#[cfg(not(loom))]
mod rt {
    pub use std::sync::{Arc, Mutex};
    pub use std::thread::{spawn, yield_now, JoinHandle};

    /// Test-side atomics (flags and counters shared between scenario threads).
    pub mod atomic {
        pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    }
}

pub use rt::*;

/// Run `f` under loom's model checker (`cfg(loom)`) with the suite's
/// preemption bound ([`preemption_bound`]), or [`stress_iterations`] times on
/// real threads.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    run(0, f);
}

/// [`model`] with one preemption more than the suite's bound, for models
/// that stay cheap there and whose races need a thread to be interrupted
/// three times (e.g. a leave racing a min-head scan that races a write).
/// The same as [`model`] on real threads.
pub fn model_deep<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    run(1, f);
}

/// Loom's preemption bound for [`model`]: `LOOM_MAX_PREEMPTIONS`, or 2 when
/// it is not set (loom's own default, no bound, does not finish on these
/// models).
pub fn preemption_bound() -> usize {
    std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .map(|v| v.parse().expect("LOOM_MAX_PREEMPTIONS must be a number"))
        .unwrap_or(2)
}

#[cfg(loom)]
fn run<F>(extra_preemptions: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemption_bound() + extra_preemptions);
    // Room for `Spin::LOOM_MAX_WAITS` rounds of a wait, so that a wedge is
    // reported by `Spin` (naming what it waited for) rather than by loom's
    // branch budget.
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        builder.max_branches = 20_000;
    }
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = executions.clone();
    let started = std::time::Instant::now();
    builder.check(move || {
        // A plain std counter: bookkeeping outside the model.
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    std::println!(
        "loom: {} executions in {:.1?} (preemption bound {:?})",
        executions.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed(),
        builder.preemption_bound
    );
}

#[cfg(not(loom))]
fn run<F>(_extra_preemptions: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    for _ in 0..stress_iterations() {
        f();
    }
}

/// How often [`model`] repeats a scenario on real threads:
/// `SHMCAST_STRESS_ITERS`, default 1000.
pub fn stress_iterations() -> usize {
    std::env::var("SHMCAST_STRESS_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// A spin-wait that the model checker can see.
///
/// On real threads a wait yields to the OS and panics after
/// [`Spin::TIMEOUT`], so a wedge fails the test instead of hanging it.
///
/// Under loom every wait yields to the scheduler. Loom's default choice after
/// a yield is fair (the runnable thread that yielded least), but its
/// exploration is not: a switch after a yield costs no preemption, so when
/// two threads wait for a third (two producers on a full ring, say), loom
/// also explores the endless schedule where the two waiters hand the CPU to
/// each other and the third never runs. That schedule is not a bug of the
/// ring; it is the model's unfairness. So after [`Spin::LOOM_EXPLORE_WAITS`]
/// rounds of one wait, the wait calls `loom::skip_branch`: this execution
/// runs on with loom's fair default choices and no further alternatives are
/// explored from it (all the interleavings before that point still are).
/// A wait that still has not ended after [`Spin::LOOM_MAX_WAITS`] rounds
/// under fair scheduling is a real wedge (no thread can make the progress it
/// waits for) and fails the model with a message naming what it waited for.
#[derive(Debug)]
pub struct Spin {
    what: &'static str,
    waits: usize,
    #[cfg(not(loom))]
    since: std::time::Instant,
}

impl Spin {
    /// How long a real-thread wait may last before it counts as a wedge.
    pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

    /// Rounds of one wait that loom explores every alternative of.
    pub const LOOM_EXPLORE_WAITS: usize = 4;

    /// Rounds of one wait after which loom reports a wedge. Under fair
    /// scheduling each round lets every other runnable thread run until it
    /// yields, blocks or ends, so an honest wait in our tiny scenarios ends
    /// after a handful of rounds.
    pub const LOOM_MAX_WAITS: usize = 200;

    /// A new wait for `what` (named in the panic message of a wedge).
    pub fn new(what: &'static str) -> Self {
        Spin {
            what,
            waits: 0,
            #[cfg(not(loom))]
            since: std::time::Instant::now(),
        }
    }

    /// One round of waiting.
    pub fn wait(&mut self) {
        self.waits += 1;
        #[cfg(not(loom))]
        assert!(
            self.since.elapsed() < Self::TIMEOUT,
            "wedged: still waiting for {} after {:?} ({} rounds)",
            self.what,
            Self::TIMEOUT,
            self.waits
        );
        #[cfg(loom)]
        {
            assert!(
                self.waits <= Self::LOOM_MAX_WAITS,
                "wedged: still waiting for {} after {} rounds under fair scheduling",
                self.what,
                Self::LOOM_MAX_WAITS
            );
            if self.waits == Self::LOOM_EXPLORE_WAITS {
                loom::skip_branch();
            }
        }
        yield_now();
    }
}
