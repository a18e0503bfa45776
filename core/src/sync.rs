//! The one place that names `core::sync::atomic` or `loom`.
//!
//! Every atomic, fence, cell and spin hint in the algorithm comes from here, so
//! that building with `RUSTFLAGS="--cfg loom"` swaps all of them for loom's
//! model-checked versions at once (STYLE.md section 4). Algorithm files write
//! `use crate::sync::atomic::{AtomicU64, Ordering}`; clippy's `disallowed-types`
//! (see `clippy.toml`) rejects the raw `core` types anywhere else.

#[cfg(loom)]
mod imp {
    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
    }

    /// Spin-wait helper that hands control back to the loom scheduler.
    ///
    /// `crossbeam_utils::Backoff` is loom-aware only under crossbeam's own
    /// `--cfg crossbeam_loom`, so under our `--cfg loom` it would spin
    /// invisibly and the model would never terminate.
    #[derive(Debug, Default)]
    pub(crate) struct Backoff;

    impl Backoff {
        pub(crate) fn new() -> Self {
            Backoff
        }
        pub(crate) fn spin(&self) {
            loom::thread::yield_now();
        }
    }
}

#[cfg(not(loom))]
mod imp {
    pub(crate) mod atomic {
        pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
    }

    pub(crate) use crossbeam_utils::Backoff;
}

pub(crate) use imp::*;

/// Word-sized atomics over raw shared memory (never under loom: loom rings
/// live on the heap, see `storage.rs`).
#[cfg(not(loom))]
pub(crate) mod raw {
    pub(crate) use core::sync::atomic::AtomicU64;
    /// For the copy module's cached CPU-feature checks (only where its wide
    /// loops and its `PREFETCHW` exist).
    #[cfg(all(target_arch = "x86_64", not(miri), not(fuzzing)))]
    pub(crate) use core::sync::atomic::AtomicU8;
}

/// Loom's `UnsafeCell`, used as a race detector on loom payloads.
#[cfg(loom)]
pub(crate) mod cell {
    pub(crate) use loom::cell::UnsafeCell;
}
