//! Errors of sleeping, waking and probing (iceoryx2-style names).

use std::fmt;

use rustix::io::Errno;

use crate::BackendKind;

/// Why a sleep ended without a wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepError {
    /// The timeout passed.
    Timeout,
    /// A system call failed.
    Io {
        /// What we were doing.
        op: &'static str,
        /// The kernel's error.
        errno: Errno,
    },
}

impl fmt::Display for SleepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SleepError::Timeout => f.write_str("timed out waiting for a wake-up"),
            SleepError::Io { op, errno } => write!(f, "{op} failed while sleeping: {errno}"),
        }
    }
}

impl std::error::Error for SleepError {}

/// A wake that could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeError {
    /// A system call failed.
    Io {
        /// What we were doing.
        op: &'static str,
        /// The kernel's error.
        errno: Errno,
    },
}

impl fmt::Display for WakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WakeError::Io { op, errno } => {
                write!(f, "{op} failed while waking a receiver: {errno}")
            }
        }
    }
}

impl std::error::Error for WakeError {}

/// A backend that cannot work here, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The backend asked for; `None` when the request named none (a
    /// `SHMCAST_NOTIFY` value that is not a backend's name).
    pub kind: Option<BackendKind>,
    /// Why, in words (e.g. "io_uring is disabled by sysctl kernel.io_uring_disabled=2").
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(kind) => write!(
                f,
                "notify backend {kind} is not usable here: {}",
                self.reason
            ),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Unsupported {}
