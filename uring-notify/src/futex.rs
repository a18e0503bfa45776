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

/// Whether `futex_waitv` works here (cleared at its first `ENOSYS`,
/// `EPERM` or `EACCES`).
static WAITV: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether [`wait_or_nudged`] may be used.
pub(crate) fn waitv_works() -> bool {
    // Relaxed: a stale `true` costs one more ENOSYS, answered by a fallback.
    WAITV.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sleep until `word` is woken (any bitset) or `nudge` is: one
/// `futex_waitv` (Linux 5.16+) on the shared `word` while it holds
/// `expected` and on the process-private `nudge` while it holds
/// `nudge_expected`. A peer can move the wait on `word` elsewhere
/// (`FUTEX_CMP_REQUEUE`), but not the one on `nudge`, a word of our own
/// memory that only [`nudge`] wakes. Returns as [`wait`] does; `ENOSYS`,
/// `EPERM` or `EACCES` where `futex_waitv` cannot be used (from then on
/// [`waitv_works`] says so).
pub(crate) fn wait_or_nudged(
    word: &AtomicU32,
    expected: u32,
    nudge: &AtomicU32,
    nudge_expected: u32,
    timeout: Option<Duration>,
) -> Result<(), Errno> {
    let mut waiters = [futex::Wait::new(), futex::Wait::new()];
    waiters[0].val = expected.into();
    waiters[0].uaddr = futex::WaitPtr::new(word.as_ptr().cast());
    waiters[0].flags = futex::WaitFlags::SIZE_U32;
    waiters[1].val = nudge_expected.into();
    waiters[1].uaddr = futex::WaitPtr::new(nudge.as_ptr().cast());
    waiters[1].flags = futex::WaitFlags::SIZE_U32 | futex::WaitFlags::PRIVATE;
    // futex_waitv takes an absolute deadline.
    let deadline = timeout.map(|t| {
        let now = clock_gettime(ClockId::Monotonic);
        let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
        timespec(now.saturating_add(t))
    });
    match futex::waitv(
        &waiters,
        futex::WaitvFlags::empty(),
        deadline.as_ref(),
        ClockId::Monotonic,
    ) {
        Ok(_) | Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(()),
        Err(Errno::TIMEDOUT) => Err(Errno::TIMEDOUT),
        // No futex_waitv here: a kernel before 5.16, or a seccomp filter
        // that refuses it (ENOSYS, or EPERM / EACCES as some answer).
        Err(e @ (Errno::NOSYS | Errno::PERM | Errno::ACCESS)) => {
            WAITV.store(false, std::sync::atomic::Ordering::Relaxed);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Wake whoever sleeps on the process-private `nudge` word in
/// [`wait_or_nudged`] (after changing it, so that one about to sleep does
/// not).
pub(crate) fn nudge(nudge: &AtomicU32) {
    // Relaxed: the kernel orders the change before the wake against the
    // sleeper's check of the word (the futex barrier pair: a sleeper that
    // checked before the change is queued and woken, one after it sees
    // the new value and does not sleep).
    nudge.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = futex::wake(nudge, Flags::PRIVATE, i32::MAX as u32);
}

/// `futex(word, FUTEX_WAKE_BITSET, n, bitset)`: wake up to `n` waiters
/// whose bitset meets `bitset`. Returns how many were woken.
#[doc(alias = "FUTEX_WAKE_BITSET")]
pub fn wake(word: &AtomicU32, n: u32, bitset: u32) -> Result<usize, Errno> {
    let bitset = std::num::NonZeroU32::new(bitset).unwrap_or(std::num::NonZeroU32::MAX);
    futex::wake_bitset(word, Flags::empty(), n, bitset)
}
