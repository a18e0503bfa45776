//! Futex wait and wake on a word in shared memory.
//!
//! Never `FUTEX_PRIVATE_FLAG`: the word lives in a `MAP_SHARED` mapping
//! that other processes map at other addresses, and only a shared futex is
//! keyed by the underlying page rather than the virtual address.

use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex::{self, Flags};
use rustix::time::{clock_gettime, ClockId, Timespec};
use shmcast_core::atomic::AtomicU32;

use crate::SleepError;

/// Wait-any bitset (`FUTEX_BITSET_MATCH_ANY`).
pub const MATCH_ANY: u32 = u32::MAX;

/// `d` as a timespec; durations past ~146 billion years saturate rather
/// than wrap to a negative (invalid) time.
pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// `futex(word, FUTEX_WAIT_BITSET, expected, deadline, bitset)`: sleep while
/// `*word == expected`, until a `FUTEX_WAKE(_BITSET)` whose mask meets
/// `bitset`, or until `timeout`. Returns `Ok` on a wake, a changed word or a
/// signal (callers re-check anyway), [`SleepError::Timeout`] on timeout.
#[doc(alias = "FUTEX_WAIT_BITSET")]
pub fn wait(
    word: &AtomicU32,
    expected: u32,
    bitset: u32,
    timeout: Option<Duration>,
) -> Result<(), SleepError> {
    let bitset = std::num::NonZeroU32::new(bitset).unwrap_or(std::num::NonZeroU32::MAX);
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline.
    let deadline = timeout.map(|t| {
        let now = clock_gettime(ClockId::Monotonic);
        let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
        timespec(now.saturating_add(t))
    });
    match futex::wait_bitset(word, Flags::empty(), expected, deadline.as_ref(), bitset) {
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(()),
        Err(Errno::TIMEDOUT) => Err(SleepError::Timeout),
        Err(errno) => Err(SleepError::Io {
            op: "futex(FUTEX_WAIT_BITSET)",
            errno,
        }),
    }
}

/// `futex(word, FUTEX_WAKE_BITSET, n, bitset)`: wake up to `n` waiters
/// whose bitset meets `bitset`. Returns how many were woken.
#[doc(alias = "FUTEX_WAKE_BITSET")]
pub fn wake(word: &AtomicU32, n: u32, bitset: u32) -> Result<usize, Errno> {
    let bitset = std::num::NonZeroU32::new(bitset).unwrap_or(std::num::NonZeroU32::MAX);
    futex::wake_bitset(word, Flags::empty(), n, bitset)
}
