//! # shmcast-uring-notify
//!
//! Puts shmcast receivers to sleep and wakes them across processes. The
//! eventcount that decides *who* sleeps and *whom* to wake lives in
//! [`shmcast_core::wake`] (and is loom-checked there); this crate performs
//! only the waits and the wakes.
//!
//! | backend | the receiver waits in | the producer wakes with | needs |
//! |---|---|---|---|
//! | [`BackendKind::Futex`] (default) | `FUTEX_WAIT(_BITSET)` on its wake word in the control region | `FUTEX_WAKE(_BITSET)` | nothing |
//! | [`BackendKind::UringFutex`] | an `IORING_OP_FUTEX_WAIT` SQE in its own `SINGLE_ISSUER \| DEFER_TASKRUN` io_uring | `FUTEX_WAKE` | Linux 6.7+, io_uring allowed |
//! | [`BackendKind::MsgRing`] | its own io_uring (no `DEFER_TASKRUN`: the CQE is posted directly) | `IORING_OP_MSG_RING` into that ring (fd taken with `pidfd_getfd`) | Linux 5.18+, ptrace rights over the receiver |
//! | [`BackendKind::Eventfd`] | `poll` on its eventfd (pollable by epoll / tokio) | `write` to the eventfd | eventfds handed out at attach |
//!
//! Whatever the backend, a producer makes **no syscall** while no receiver
//! sleeps (the bitmap check in core), and **at most one** per publish
//! however many receivers sleep: broadcast futex sleepers share one word
//! woken by one `FUTEX_WAKE_BITSET`; eventfd and `MSG_RING` wakes are
//! batched as SQEs into one `io_uring_enter`.
//!
//! Past [`RELAY_ABOVE`] broadcast futex sleepers the producer wakes only
//! one and leaves the others to it (the wake relay, see [`Waker::wake`] and
//! [`relay`]): the kernel wakes sleepers one by one, each a cross-CPU IPI
//! paid by the waker. Only through sleepers asleep in [`Sleeper::sleep`]
//! (which relays on its way out) and only while futex bitsets are unique
//! (fewer than 33 subscribers ever joined); a relay left untaken for
//! [`RELAY_WATCH`] is performed by the producer ([`Waker::watch_relay`]).
//! Every sleep ends after at most [`WAKE_GUARD`] (or the receiver's own
//! guard), so a relay that never happens — its receiver killed first, a
//! hostile peer that took it — makes a message late by at most that. One
//! thread per process enforces the guard (no timer per sleep; see the
//! `guard` module's source for why and what it measured), except for
//! `MSG_RING` sleepers on kernels without io_uring futex ops, which nothing
//! but their ring reaches, on kernels without `MSG_RING` either: they
//! sleep with a timeout. A peer can move a futex wait off its word
//! (`FUTEX_CMP_REQUEUE`), out of reach of every wake: so the guard thread
//! nudges io_uring sleepers with `MSG_RING`, futex sleepers also wait on a
//! private word of their own (`futex_waitv`) that the nudge wakes, and
//! broadcast futex sleepers (bitsets) carry a timeout of two guards.
//!
//! Facts that shaped this (measured on kernel 6.18, a 2-vCPU VM):
//! a cross-CPU wake costs ~6–7 µs whatever the primitive, so the
//! eventcount matters more than the primitive; io_uring fds cannot be sent
//! with `SCM_RIGHTS` (6.7+), hence `pidfd_getfd` for `MSG_RING`.

#![deny(unsafe_code)]

mod error;
pub mod eventfd;
pub mod futex;
mod guard;
pub mod probe;
mod sleeper;
pub mod uring;
mod waker;

pub use error::{SleepError, Unsupported, WakeError};
pub use probe::{allow_ptrace_from_peers, probe, select, Probe, Selection};
pub use sleeper::{relay, Sleeper, MAX_WAKE_GUARD, WAKE_GUARD};
pub use waker::{WakeStats, Waker, RELAY_ABOVE, RELAY_WATCH};

use std::fmt;
use std::str::FromStr;

/// Environment variable that forces a backend (`futex`, `uring-futex`,
/// `msg-ring`, `eventfd`) for every receiver of the process.
pub const ENV_BACKEND: &str = "SHMCAST_NOTIFY";

/// How a receiver sleeps and is woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Futex on the wake word in shared memory (never `FUTEX_PRIVATE`).
    Futex,
    /// An `IORING_OP_FUTEX_WAIT` SQE on the same word, in the receiver's ring.
    UringFutex,
    /// `IORING_OP_MSG_RING` from the producer's ring into the receiver's.
    MsgRing,
    /// An eventfd per receiver.
    Eventfd,
}

impl BackendKind {
    /// Every backend, in the order the probe prefers them.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Futex,
        BackendKind::UringFutex,
        BackendKind::MsgRing,
        BackendKind::Eventfd,
    ];

    /// Code stored in the receiver's subscriber entry (`backend`).
    pub const fn code(self) -> u32 {
        match self {
            BackendKind::Futex => 1,
            BackendKind::UringFutex => 2,
            BackendKind::MsgRing => 3,
            BackendKind::Eventfd => 4,
        }
    }

    /// Inverse of [`BackendKind::code`].
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(BackendKind::Futex),
            2 => Some(BackendKind::UringFutex),
            3 => Some(BackendKind::MsgRing),
            4 => Some(BackendKind::Eventfd),
            _ => None,
        }
    }

    /// The name used by [`ENV_BACKEND`] and `Display`.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Futex => "futex",
            BackendKind::UringFutex => "uring-futex",
            BackendKind::MsgRing => "msg-ring",
            BackendKind::Eventfd => "eventfd",
        }
    }

    /// Whether the producer wakes this receiver through its futex word.
    pub const fn woken_by_futex(self) -> bool {
        matches!(self, BackendKind::Futex | BackendKind::UringFutex)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBackend(pub String);

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown notify backend {:?} (use futex, uring-futex, msg-ring or eventfd)",
            self.0
        )
    }
}

impl std::error::Error for UnknownBackend {}

impl FromStr for BackendKind {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_owned()))
    }
}
