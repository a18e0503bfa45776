//! io_uring pieces: the receiver's own ring (waiting with an
//! `IORING_OP_FUTEX_WAIT` SQE and/or for `IORING_OP_MSG_RING` CQEs), and
//! the producer's ring that batches every wake of one publish into a single
//! `io_uring_enter`. Nearly all of the crate's `unsafe` code (the rest is
//! the guard's `pthread_atfork`): pushing SQEs, whose contract is that
//! what they point to outlives their completion.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, RawFd};
use std::thread::ThreadId;
use std::time::Duration;

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use rustix::io::Errno;
use shmcast_core::atomic::AtomicU32;

use crate::SleepError;

/// `FUTEX2_SIZE_U32`: the futex2 flags of a 32-bit, shared (not private) word.
pub const FUTEX2_SIZE_U32: u32 = 0x02;

/// `user_data` of our own FUTEX_WAIT SQEs. Anything else in our CQ is a
/// `MSG_RING` from a producer (untrusted: only ever a reason to wake).
const FUTEX_TAG: u64 = 0x5348_4d43_4657_4149; // "SHMCFWAI"

/// `user_data` of the cancellation of an abandoned `FUTEX_WAIT` (its
/// completion, posted only if the cancel fails, is not a wake).
const CANCEL_TAG: u64 = 0x5348_4d43_4341_4e43; // "SHMCCANC"

/// `user_data` of the guard thread's `MSG_RING` nudge (see [`nudge_ring`]).
/// (Far from `FUTEX_TAG`'s range of arm numbers.)
const NUDGE_TAG: u64 = 0x4e55_4447_5348_4d43; // "NUDGSHMC"

/// Rings made so far in this process: each [`RingWaiter`] has its own
/// number (an fd number may be reused by a later ring).
static RINGS_MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Post a nudge into the ring `target` with `MSG_RING`, from a ring of the
/// calling thread's own (the guard thread's): it ends the sleep of whoever
/// waits in `target` whatever became of its `FUTEX_WAIT` (a peer can move
/// that off its word with `FUTEX_CMP_REQUEUE`, where a `FUTEX_WAKE` does
/// not reach it). The sleeper then re-arms its `FUTEX_WAIT`.
pub(crate) fn nudge_ring(target: RawFd) {
    thread_local! {
        static SOURCE: std::cell::RefCell<Option<IoUring>> = const { std::cell::RefCell::new(None) };
    }
    SOURCE.with(|source| {
        let mut source = source.borrow_mut();
        if source.is_none() {
            *source = IoUring::new(8).ok();
        }
        let Some(ring) = source.as_mut() else {
            return;
        };
        // Completions are posted only for failures (a target gone): drop
        // them, the guard looks again in half a guard.
        ring.completion().for_each(drop);
        let sqe = opcode::MsgRingData::new(types::Fd(target), 0, NUDGE_TAG, None)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS);
        // SAFETY: a MSG_RING SQE points at no memory; `target` stays open
        // until `submit` returns (the caller holds it).
        if unsafe { ring.submission().push(&sqe) }.is_ok() {
            let _ = ring.submit();
        }
    });
}

/// The value eventfd writes carry: 'static, so it outlives every SQE.
static ONE: u64 = 1;

fn errno(e: std::io::Error) -> Errno {
    Errno::from_io_error(&e).unwrap_or(Errno::IO)
}

/// A ring set up with `SINGLE_ISSUER | DEFER_TASKRUN` where the kernel has
/// them (6.1+), plain otherwise: what a receiver waiting for its
/// `FUTEX_WAIT` completion sleeps in (the completion runs as deferred task
/// work, in the waiter's own `io_uring_enter`).
///
/// Not for `MSG_RING` targets: into a `DEFER_TASKRUN` ring the kernel
/// cannot post the sender's CQE directly and queues it as task work for the
/// target thread instead. Measured (`shmcast-bench --quick --only notify`,
/// six alternating runs): a `MSG_RING` wake-up 1.17–1.18× a bare futex wake
/// into such a ring, 1.10–1.13× into a plain one ([`msg_ring_target`]);
/// the other way round for `FUTEX_WAIT`: 1.10–1.12× with the flags,
/// 1.17–1.19× without.
pub fn receiver_ring(entries: u32) -> Result<IoUring, Errno> {
    match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
    {
        Ok(r) => Ok(r),
        Err(e) => match errno(e) {
            Errno::INVAL => IoUring::new(entries).map_err(errno),
            e => Err(e),
        },
    }
}

/// A ring without `DEFER_TASKRUN`, for receivers woken by `MSG_RING`: a
/// producer's `MSG_RING` posts its CQE straight into it (see
/// [`receiver_ring`]).
pub fn msg_ring_target(entries: u32) -> Result<IoUring, Errno> {
    IoUring::new(entries).map_err(errno)
}

/// A receiver's own ring: it sleeps in `io_uring_enter`, woken by a
/// completion of its armed `FUTEX_WAIT` (a producer's `FUTEX_WAKE`) or by a
/// `MSG_RING` CQE posted by a producer.
pub struct RingWaiter {
    ring: IoUring,
    thread: ThreadId,
    futex_op: bool,
    /// The word and bitset our FUTEX_WAIT SQE is armed with, and its
    /// `user_data`, if one is in flight (another bitset arms anew: the
    /// guard thread's wake, sent with the new one, would not complete the
    /// old).
    armed: Option<(usize, u32, u64)>,
    /// Requests armed so far: each gets its own `user_data`, so that the
    /// completion of an abandoned one is not taken for the current one's.
    arms: u32,
    /// This ring's number in the process (see [`RINGS_MADE`]).
    number: u64,
}

impl std::fmt::Debug for RingWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingWaiter")
            .field("fd", &self.fd())
            .field("armed", &self.armed.is_some())
            .finish()
    }
}

/// The ring fds our own receivers sleep in: a `MSG_RING` producer that
/// finds its own pid in a subscriber entry only posts into one of these, so
/// a peer cannot steer it into another ring of this process.
fn own_rings() -> &'static std::sync::Mutex<std::collections::HashSet<RawFd>> {
    static RINGS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<RawFd>>> =
        std::sync::OnceLock::new();
    RINGS.get_or_init(Default::default)
}

/// Whether `fd` is a ring one of this process's receivers sleeps in.
pub fn is_own_receiver_ring(fd: RawFd) -> bool {
    own_rings().lock().map(|s| s.contains(&fd)).unwrap_or(false)
}

impl Drop for RingWaiter {
    fn drop(&mut self) {
        if let Ok(mut s) = own_rings().lock() {
            s.remove(&self.fd());
        }
    }
}

impl RingWaiter {
    /// A new ring for the calling thread. `futex_op` says whether
    /// `IORING_OP_FUTEX_WAIT` may be used (kernel 6.7+); `msg_ring` that
    /// producers wake it with `MSG_RING` (a plain ring, see
    /// [`receiver_ring`]).
    pub fn new(futex_op: bool, msg_ring: bool) -> Result<Self, Errno> {
        let ring = if msg_ring {
            msg_ring_target(64)?
        } else {
            receiver_ring(64)?
        };
        let w = RingWaiter {
            ring,
            thread: std::thread::current().id(),
            futex_op,
            armed: None,
            arms: 0,
            number: RINGS_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        if let Ok(mut s) = own_rings().lock() {
            s.insert(w.fd());
        }
        Ok(w)
    }

    /// The ring's fd (what a `MSG_RING` producer targets).
    pub fn fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// The ring's fd, borrowed.
    pub(crate) fn borrowed_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // The io-uring version in use implements `AsRawFd` only.
        // SAFETY: the fd is the ring's own, open while `self` lives.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.ring.as_raw_fd()) }
    }

    /// A number no other ring of this process had.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Whether the calling thread is the one that created the ring
    /// (`DEFER_TASKRUN` rings must be entered by it; a sleeper re-makes a
    /// `MSG_RING` target on a new thread as well).
    pub fn on_owner_thread(&self) -> bool {
        std::thread::current().id() == self.thread
    }

    /// The SQE an io_uring event loop arms to wait for `word` to be woken
    /// (for users who run their own ring): `IORING_OP_FUTEX_WAIT` on the
    /// shared 32-bit word, woken by the producer's `FUTEX_WAKE`.
    pub fn futex_wait_sqe(
        word: &AtomicU32,
        expected: u32,
        bitset: u32,
        user_data: u64,
    ) -> squeue::Entry {
        opcode::FutexWait::new(
            word.as_ptr().cast_const(),
            expected as u64,
            bitset as u64,
            FUTEX2_SIZE_U32,
        )
        .build()
        .user_data(user_data)
    }

    /// Sleep until a CQE arrives (a wake), or `timeout`. Arms a
    /// `FUTEX_WAIT` on `word` first if none is in flight.
    pub fn sleep(
        &mut self,
        word: &AtomicU32,
        expected: u32,
        bitset: u32,
        timeout: Option<Duration>,
    ) -> Result<(), SleepError> {
        let arm = (word.as_ptr() as usize, bitset);
        if self.futex_op && self.armed.map(|(w, b, _)| (w, b)) != Some(arm) {
            self.disarm();
            self.arms = self.arms.wrapping_add(1);
            let tag = FUTEX_TAG.wrapping_add(u64::from(self.arms));
            let sqe = Self::futex_wait_sqe(word, expected, bitset, tag);
            // The SQE points at `word`, a futex word in a shared mapping. The
            // kernel reads it once, when the request starts (to compare it
            // with `expected` and take the futex key, which for a shared
            // mapping is the page, not the address); after that it never
            // touches user memory. The ring is closed (and the request
            // cancelled) when `self` drops.
            // SAFETY: the request cannot outlive what it points to in any way
            // that matters (above).
            unsafe { self.ring.submission().push(&sqe) }.map_err(|_| SleepError::Io {
                op: "io_uring SQ push",
                errno: Errno::BUSY,
            })?;
            self.armed = Some((arm.0, arm.1, tag));
        }
        // Re-check after arming: a wake between the caller's check and the
        // arm would otherwise be slept through by a MSG_RING-only waiter.
        if word.load(std::sync::atomic::Ordering::Acquire) != expected && !self.futex_op {
            return Ok(());
        }
        // No clock read for an untimed sleep (the guard thread bounds it).
        let start = timeout.map(|t| (std::time::Instant::now(), t));
        loop {
            let left = start.map(|(at, t)| t.saturating_sub(at.elapsed()));
            let r = match left {
                Some(t) => {
                    // Saturate: the kernel reads the seconds as signed,
                    // and a wrapped negative timeout returns at once
                    // (a busy loop until the wake).
                    let secs = t.as_secs().min(i64::MAX as u64 / 2);
                    let ts = Timespec::new().sec(secs).nsec(t.subsec_nanos());
                    let args = SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
                None => self.ring.submit_and_wait(1),
            };
            let (mut woke, mut nudged) = (false, false);
            for cqe in self.ring.completion() {
                let tag = cqe.user_data();
                nudged |= tag == NUDGE_TAG;
                let current = self.armed.is_some_and(|(_, _, t)| t == tag);
                // Not wakes: a failed cancel, and the end of a FUTEX_WAIT
                // we abandoned (cancelled, or armed anew elsewhere).
                if tag == CANCEL_TAG || (!current && tag.wrapping_sub(FUTEX_TAG) <= u32::MAX.into())
                {
                    continue;
                }
                woke = true;
                if current {
                    self.armed = None;
                }
            }
            if nudged {
                // The guard's nudge: our FUTEX_WAIT may have been moved
                // where no wake reaches it. Arm a new one next time.
                self.disarm();
            }
            if woke {
                return Ok(());
            }
            match r.map_err(errno) {
                // The kernel returns the number *submitted* even when the
                // wait timed out, so no CQE is how a timeout shows.
                Ok(_) | Err(Errno::TIME) => {}
                Err(Errno::INTR | Errno::AGAIN | Errno::BUSY) => return Ok(()),
                Err(e) => {
                    return Err(SleepError::Io {
                        op: "io_uring_enter",
                        errno: e,
                    })
                }
            }
            if start.is_some_and(|(at, t)| at.elapsed() >= t) {
                // A wait that a wake should have ended by now may have been
                // moved off its word (a peer's FUTEX_CMP_REQUEUE), where no
                // wake reaches it: the next sleep arms a new one.
                self.disarm();
                return Err(SleepError::Timeout);
            }
        }
    }

    /// Cancel the `FUTEX_WAIT` in flight, if any (submitted with the next
    /// `io_uring_enter`; its completion, `-ECANCELED`, then reads as a
    /// spurious wake-up).
    fn disarm(&mut self) {
        let Some((_, _, tag)) = self.armed.take() else {
            return;
        };
        let sqe = opcode::AsyncCancel::new(tag)
            .build()
            .user_data(CANCEL_TAG)
            .flags(squeue::Flags::SKIP_SUCCESS);
        // SAFETY: a cancel by `user_data` points at no memory.
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            // SQ full (cannot happen: at most a cancel and an arm are
            // queued between enters): the old request stays until a wake
            // of its word or the ring's drop ends it.
        }
    }
}

/// A producer's ring: every wake of one publish becomes an SQE, and one
/// `io_uring_enter` submits them all. Completions are suppressed on success
/// (`IOSQE_CQE_SKIP_SUCCESS`); failures are reaped and counted.
pub struct Batch {
    ring: IoUring,
    queued: usize,
    /// Failed wakes seen so far (target ring gone, fd closed...).
    pub failures: u64,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("queued", &self.queued)
            .field("failures", &self.failures)
            .finish()
    }
}

impl Batch {
    /// A ring for batching wakes. Not `SINGLE_ISSUER`: the producer handle
    /// may move between threads.
    pub fn new() -> Result<Self, Errno> {
        Ok(Batch {
            ring: IoUring::new(256).map_err(errno)?,
            queued: 0,
            failures: 0,
        })
    }

    fn push(&mut self, sqe: squeue::Entry) -> Result<(), Errno> {
        let sqe = sqe.flags(squeue::Flags::SKIP_SUCCESS);
        // Every SQE queued here points at 'static memory (ONE) or at nothing
        // the kernel dereferences after it starts the request (a futex word,
        // resolved to its key when the request starts). A MSG_RING / write /
        // FUTEX_WAKE completes inline during submit.
        // SAFETY: pointers valid (above); fd numbers stay open until `submit`
        // returns, which happens before the producer's wake returns.
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.submit()?;
            // SAFETY: as above.
            unsafe { self.ring.submission().push(&sqe) }.map_err(|_| Errno::BUSY)?;
        }
        self.queued += 1;
        Ok(())
    }

    /// Queue `write(fd, 1)` for an eventfd.
    /// The caller keeps `fd` open until [`Batch::submit`] returns.
    pub fn eventfd_write(&mut self, fd: RawFd) -> Result<(), Errno> {
        let sqe = opcode::Write::new(types::Fd(fd), (&ONE as *const u64).cast(), 8).build();
        self.push(sqe)
    }

    /// Queue a `MSG_RING` carrying `user_data` into the ring `ring_fd`.
    /// The caller keeps `ring_fd` open until [`Batch::submit`] returns.
    pub fn msg_ring(&mut self, ring_fd: RawFd, user_data: u64) -> Result<(), Errno> {
        let sqe = opcode::MsgRingData::new(types::Fd(ring_fd), 0, user_data, None).build();
        self.push(sqe)
    }

    /// Queue `FUTEX_WAKE_BITSET(word, n, bitset)`.
    pub fn futex_wake(&mut self, word: &AtomicU32, n: u32, bitset: u32) -> Result<(), Errno> {
        let sqe = opcode::FutexWake::new(
            word.as_ptr().cast_const(),
            n as u64,
            bitset as u64,
            FUTEX2_SIZE_U32,
        )
        .build();
        self.push(sqe)
    }

    /// Whether SQEs are queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Submit everything queued with one `io_uring_enter`, then reap the
    /// completions of failed requests. Returns how many failed.
    pub fn submit(&mut self) -> Result<usize, Errno> {
        if self.queued == 0 {
            return Ok(0);
        }
        // On error the SQEs stay queued; the caller must then drop this
        // batch (their fd numbers are only valid during this wake).
        self.ring.submit().map_err(errno)?;
        self.queued = 0;
        let mut failed = 0;
        for cqe in self.ring.completion() {
            if cqe.result() < 0 || cqueue::more(cqe.flags()) {
                failed += 1;
            }
        }
        self.failures += failed as u64;
        Ok(failed)
    }
}
