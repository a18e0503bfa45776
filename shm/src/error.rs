//! Errors of the shared-memory layer, one enum per operation. Each variant
//! is displayed as a sentence a person can act on.

use std::fmt;

use rustix::io::Errno;
use shmcast_core::{ConfigError, JoinError, LayoutError, Role, TrySendError};
use shmcast_uring_notify::SleepError;

use crate::handshake::HandshakeError;
use crate::name::NameError;

/// Which of a channel's two regions an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The control region (header, waiter bitmap, subscriber table).
    Control,
    /// The data region (the slots).
    Data,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Control => "control",
            Region::Data => "data",
        })
    }
}

/// Why a channel could not be created.
#[derive(Debug)]
pub enum CreateError {
    /// The configuration cannot make a ring.
    Config(ConfigError),
    /// The name is not usable.
    InvalidName(NameError),
    /// Another live channel is already served under this name.
    NameInUse {
        /// The name.
        name: String,
    },
    /// The channel's memory is more than this process can have: more than
    /// the system's available memory or its memory cgroup's headroom,
    /// checked before allocating (where the kernel's answer to an
    /// allocation past a cgroup limit is to kill the process), or refused
    /// by the allocation itself.
    OutOfMemory {
        /// Bytes the two regions take.
        needed: u64,
        /// What was available, and by which measure (`None`: the allocation
        /// failed with `ENOMEM` / `ENOSPC`).
        available: Option<(u64, &'static str)>,
    },
    /// A system call failed.
    Io {
        /// What we were doing.
        op: &'static str,
        /// The error the kernel returned.
        errno: Errno,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::Config(e) => write!(f, "invalid channel configuration: {e}"),
            CreateError::InvalidName(e) => write!(f, "invalid channel name: {e}"),
            CreateError::NameInUse { name } => {
                write!(f, "a channel named {name:?} is already being served")
            }
            CreateError::OutOfMemory { needed, available } => {
                write!(f, "the channel needs {needed} B of memory")?;
                match available {
                    Some((bytes, what)) => write!(f, ", but {what} leaves {bytes} B")?,
                    None => f.write_str(", and allocating it failed")?,
                }
                f.write_str("; lower its capacity or max_message")
            }
            CreateError::Io { op, errno } => write!(f, "{op} failed: {errno}"),
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CreateError::Config(e) => Some(e),
            CreateError::InvalidName(e) => Some(e),
            CreateError::Io { errno, .. } => Some(errno),
            CreateError::NameInUse { .. } | CreateError::OutOfMemory { .. } => None,
        }
    }
}

impl From<ConfigError> for CreateError {
    fn from(e: ConfigError) -> Self {
        CreateError::Config(e)
    }
}

/// Why attaching to a channel (by name, or from handed-over fds) failed.
#[derive(Debug)]
pub enum AttachError {
    /// The name is not usable.
    InvalidName(NameError),
    /// No channel is served under this name: it was never created, was
    /// destroyed, or its creator exited.
    NotFound {
        /// The name.
        name: String,
    },
    /// The channel's permission bits do not grant this role to our uid/gid
    /// (receive needs read, send needs write).
    PermissionDenied {
        /// The role asked for.
        role: Role,
        /// Our uid, as the server saw it.
        uid: u32,
        /// The channel's permission bits.
        mode: u32,
    },
    /// The channel was destroyed while we attached.
    Destroyed,
    /// The server did not answer in time.
    Timeout,
    /// The server turned us away: it had as many attaches in progress as
    /// it takes, and ours was the oldest of the uid with the most (so that
    /// no local user can crowd out the others). Try again later.
    ServerBusy,
    /// The server's answer was not a valid handshake message.
    Handshake(HandshakeError),
    /// The server refused for a reason this version does not know.
    Refused {
        /// The reason code.
        code: u8,
    },
    /// Expected exactly two file descriptors (control, data).
    WrongFdCount {
        /// How many arrived.
        got: usize,
    },
    /// A handed-over fd is not a sealable memfd on tmpfs (a regular file, a
    /// socket, a hugetlbfs memfd...).
    NotAMemfd {
        /// Which region.
        region: Region,
    },
    /// A region lacks seals we require (`F_SEAL_SHRINK | F_SEAL_GROW |
    /// F_SEAL_SEAL`): without them a peer could truncate it under us.
    MissingSeals {
        /// Which region.
        region: Region,
        /// The missing seal bits (`F_SEAL_*`).
        missing: u32,
    },
    /// A region carries a write seal, so it cannot be written by the
    /// processes that must write it.
    UnexpectedSeals {
        /// Which region.
        region: Region,
        /// The offending seal bits.
        seals: u32,
    },
    /// A region is smaller than a control header: not a shmcast region.
    RegionTooSmall {
        /// Which region.
        region: Region,
        /// Its size.
        size: u64,
    },
    /// The header does not describe a ring that fits the regions.
    Layout(LayoutError),
    /// The control and data fds are the same file.
    RegionsAlias,
    /// The descriptor given to [`import`](crate::import) is not one
    /// [`Channel::export`](crate::Channel::export) makes.
    BadDescriptor(HandshakeError),
    /// The descriptor and the control header disagree.
    DescriptorMismatch {
        /// What disagrees.
        what: &'static str,
    },
    /// We asked to send but the data region we were given is not writable.
    DataNotWritable,
    /// The eventfd table the server announced did not arrive as announced.
    BadEventfds {
        /// What was wrong.
        what: &'static str,
    },
    /// A system call failed.
    Io {
        /// What we were doing.
        op: &'static str,
        /// The error the kernel returned.
        errno: Errno,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::InvalidName(e) => write!(f, "invalid channel name: {e}"),
            AttachError::NotFound { name } => write!(
                f,
                "no channel named {name:?} is being served (never created, destroyed, or its creator exited)"
            ),
            AttachError::PermissionDenied { role, uid, mode } => write!(
                f,
                "permission denied: uid {uid} may not attach with role {role:?} to a channel with mode {mode:03o}"
            ),
            AttachError::Destroyed => f.write_str("the channel was destroyed"),
            AttachError::Timeout => f.write_str("the channel's server did not answer in time"),
            AttachError::ServerBusy => f.write_str(
                "the channel's server is full of attaches of this user in progress; try again later",
            ),
            AttachError::Handshake(e) => write!(f, "bad handshake from the channel's server: {e}"),
            AttachError::Refused { code } => write!(f, "the server refused the attach (code {code})"),
            AttachError::WrongFdCount { got } => {
                write!(f, "expected 2 file descriptors (control, data), got {got}")
            }
            AttachError::NotAMemfd { region } => {
                write!(f, "the {region} region is not a sealable memfd")
            }
            AttachError::MissingSeals { region, missing } => write!(
                f,
                "the {region} region lacks required seals {missing:#x}: a peer could resize it"
            ),
            AttachError::UnexpectedSeals { region, seals } => {
                write!(f, "the {region} region is write-sealed ({seals:#x}) and cannot be used")
            }
            AttachError::RegionTooSmall { region, size } => {
                write!(f, "the {region} region is only {size} B: not a shmcast region")
            }
            AttachError::Layout(e) => write!(f, "invalid channel layout: {e}"),
            AttachError::RegionsAlias => {
                f.write_str("the control and data regions were handed over as the same file")
            }
            AttachError::BadDescriptor(e) => {
                write!(f, "the descriptor is not one Channel::export made: {e}")
            }
            AttachError::DescriptorMismatch { what } => {
                write!(f, "descriptor and shared header disagree on the {what}")
            }
            AttachError::DataNotWritable => {
                f.write_str("the data region was handed over read-only, so this role cannot send")
            }
            AttachError::BadEventfds { what } => write!(f, "bad eventfd table from the server: {what}"),
            AttachError::Io { op, errno } => write!(f, "{op} failed: {errno}"),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::InvalidName(e) => Some(e),
            AttachError::Handshake(e) | AttachError::BadDescriptor(e) => Some(e),
            AttachError::Layout(e) => Some(e),
            AttachError::Io { errno, .. } => Some(errno),
            _ => None,
        }
    }
}

impl From<LayoutError> for AttachError {
    fn from(e: LayoutError) -> Self {
        AttachError::Layout(e)
    }
}

impl From<HandshakeError> for AttachError {
    fn from(e: HandshakeError) -> Self {
        AttachError::Handshake(e)
    }
}

/// Why a handle (sender / receiver) could not be opened on an attached channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The ring refused the join (table full, unicast receiver taken, closed).
    Join(JoinError),
    /// The attachment was granted another role (e.g. a receive-only
    /// attachment asked for a sender).
    RoleNotGranted {
        /// The role this attachment has.
        granted: Role,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Join(e) => e.fmt(f),
            OpenError::RoleNotGranted { granted } => {
                write!(f, "this attachment was granted role {granted:?} only")
            }
        }
    }
}

impl std::error::Error for OpenError {}

impl From<JoinError> for OpenError {
    fn from(e: JoinError) -> Self {
        OpenError::Join(e)
    }
}

/// Why a blocking send failed. (A full ring is waited out, never an error,
/// except as [`SendError::Timeout`] with a timeout.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The ring stayed full until the timeout passed. Nothing was sent.
    Timeout,
    /// The channel was destroyed.
    Closed,
    /// The message is larger than the channel's maximum.
    TooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The addressed subscriber is not an attached receiver.
    UnknownTarget {
        /// The index addressed.
        target: u32,
    },
    /// Addressed sends are not possible in multicast mode.
    AddressingUnsupported,
    /// This sender's subscriber entry is gone.
    Detached,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SendError::Timeout => f.write_str("timed out waiting for room in the ring"),
            SendError::Closed => f.write_str("the channel is closed"),
            SendError::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} B is larger than the channel's maximum of {max} B"
                )
            }
            SendError::UnknownTarget { target } => {
                write!(f, "subscriber {target} is not an attached receiver")
            }
            SendError::AddressingUnsupported => {
                f.write_str("addressed sends are not supported in multicast mode")
            }
            SendError::Detached => f.write_str("this sender's subscriber entry is gone"),
        }
    }
}

impl std::error::Error for SendError {}

impl SendError {
    /// The blocking counterpart of a `try_send` error (`Full` has none: it is waited out).
    pub(crate) fn from_try(e: TrySendError) -> Option<SendError> {
        Some(match e {
            TrySendError::Full => return None,
            TrySendError::TooLarge { len, max } => SendError::TooLarge { len, max },
            TrySendError::UnknownTarget { target } => SendError::UnknownTarget { target },
            TrySendError::AddressingUnsupported => SendError::AddressingUnsupported,
            TrySendError::Closed => SendError::Closed,
            TrySendError::Detached => SendError::Detached,
        })
    }
}

/// Why a blocking receive returned without a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived before the timeout.
    Timeout,
    /// The channel was destroyed and everything sent has been received.
    /// Final: no message will come.
    Closed,
    /// Unicast: every sender that joined has left or died, and everything
    /// sent has been received. Not final: the channel is still open, and a
    /// sender that attaches later can send again (while none is attached,
    /// a blocking receive returns this at once). The pipe-like "end of
    /// stream" for a receiver that serves one sender's session. A waiting
    /// receive looks for dead senders, and evicts them, before it sleeps,
    /// at most every 100 ms; a sleeper wakes at least once a wake guard
    /// (100 ms by default, see `Receiver::set_wake_guard`), so a death
    /// shows within about that. A sender is dead once the kernel dropped
    /// its liveness lock (see the README's "dead peer"): one whose lock a
    /// forked child still holds, or that has none, never counts as dead.
    NoSenders,
    /// This receiver was overtaken and lost this many messages (see
    /// [`shmcast_core::TryRecvError::Lagged`]); the next call continues from the oldest
    /// message still in the ring.
    Lagged(u64),
    /// This receiver's subscriber entry is gone.
    Detached,
    /// The notify backend failed to sleep.
    Sleep(SleepError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Timeout => f.write_str("timed out waiting for a message"),
            RecvError::Closed => f.write_str("the channel is closed and drained"),
            RecvError::NoSenders => {
                f.write_str("every sender has left and everything they sent was received")
            }
            RecvError::Lagged(n) => write!(f, "receiver lagged behind and lost {n} messages"),
            RecvError::Detached => f.write_str("this receiver's subscriber entry is gone"),
            RecvError::Sleep(e) => write!(f, "could not sleep: {e}"),
        }
    }
}

impl std::error::Error for RecvError {}
