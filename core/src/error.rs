//! One small error enum per operation (rtrb / tokio style). All are `Copy`,
//! implement `Display` with a message a person can act on, and
//! `core::error::Error`.

use core::fmt;

macro_rules! impl_error {
    ($t:ty) => {
        impl core::error::Error for $t {}
    };
}

/// A [`crate::Config`] that cannot make a ring. Mirrors the RFC's
/// invalid-parameter cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Capacity 0 (the RFC's "zero entries").
    ZeroCapacity,
    /// Capacity is not a power of two.
    CapacityNotPowerOfTwo {
        /// The requested capacity.
        capacity: u64,
    },
    /// Capacity above [`crate::layout::MAX_CAPACITY`].
    CapacityTooLarge {
        /// The requested capacity.
        capacity: u64,
        /// The largest allowed.
        max: u64,
    },
    /// Maximum message size 0 (the RFC's "zero size").
    ZeroMessageSize,
    /// Maximum message size above the configured cap (1 MiB by default).
    MessageSizeTooLarge {
        /// The requested maximum message size.
        size: u32,
        /// The cap in force.
        max: u32,
    },
    /// The message-size cap itself is above what the layout can describe.
    MessageCapTooLarge {
        /// The requested cap.
        cap: u32,
        /// [`crate::layout::HARD_MAX_MESSAGE`].
        max: u32,
    },
    /// Zero subscribers: nobody could ever send or receive.
    ZeroSubscribers,
    /// More subscribers than the layout allows.
    TooManySubscribers {
        /// The requested count.
        count: u32,
        /// [`crate::layout::MAX_SUBSCRIBERS`].
        max: u32,
    },
    /// Broadcast and multicast requested together.
    ConflictingModes,
    /// Flag bits this version does not know.
    UnknownFlags {
        /// The unknown bits.
        flags: u32,
    },
    /// The data region (capacity × slot size) would exceed
    /// [`crate::layout::MAX_DATA_REGION`].
    RingTooLarge {
        /// Bytes the data region would need.
        size: u64,
        /// The largest allowed.
        max: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::ZeroCapacity => f.write_str("ring capacity must not be zero"),
            ConfigError::CapacityNotPowerOfTwo { capacity } => {
                write!(f, "ring capacity must be a power of two, got {capacity}")
            }
            ConfigError::CapacityTooLarge { capacity, max } => {
                write!(
                    f,
                    "ring capacity {capacity} is above the maximum of {max} slots"
                )
            }
            ConfigError::ZeroMessageSize => f.write_str("maximum message size must not be zero"),
            ConfigError::MessageSizeTooLarge { size, max } => {
                write!(
                    f,
                    "maximum message size {size} B is above the cap of {max} B"
                )
            }
            ConfigError::MessageCapTooLarge { cap, max } => {
                write!(
                    f,
                    "message size cap {cap} B is above the layout limit of {max} B"
                )
            }
            ConfigError::ZeroSubscribers => {
                f.write_str("a ring needs room for at least one subscriber")
            }
            ConfigError::TooManySubscribers { count, max } => {
                write!(
                    f,
                    "{count} subscribers requested, at most {max} are supported"
                )
            }
            ConfigError::ConflictingModes => {
                f.write_str("broadcast and multicast delivery cannot be combined")
            }
            ConfigError::UnknownFlags { flags } => {
                write!(f, "unknown channel flags {flags:#x}")
            }
            ConfigError::RingTooLarge { size, max } => {
                write!(
                    f,
                    "the data region would be {size} B, above the limit of {max} B"
                )
            }
        }
    }
}
impl_error!(ConfigError);

/// Header words or region sizes that do not describe a usable ring.
/// Returned by [`crate::Geometry::decode`] for whatever a peer (or a foreign
/// file) put in front of us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The first word is not [`crate::layout::MAGIC`]: not a shmcast region.
    BadMagic {
        /// What was there instead.
        found: u64,
    },
    /// Made by a different layout version.
    VersionMismatch {
        /// [`crate::layout::LAYOUT_VERSION`].
        ours: u32,
        /// The version in the header.
        theirs: u32,
    },
    /// Unknown delivery mode code.
    UnknownMode {
        /// The code found.
        code: u32,
    },
    /// Option bits this version does not know.
    UnknownFlags {
        /// The flags found.
        flags: u32,
    },
    /// Capacity 0.
    ZeroCapacity,
    /// Capacity not a power of two.
    CapacityNotPowerOfTwo {
        /// The capacity found.
        capacity: u64,
    },
    /// Capacity above [`crate::layout::MAX_CAPACITY`].
    CapacityTooLarge {
        /// The capacity found.
        capacity: u64,
        /// The largest accepted.
        max: u64,
    },
    /// Maximum message size 0.
    ZeroMessageSize,
    /// Maximum message size above the cap the attacher accepts.
    MessageSizeTooLarge {
        /// The size found.
        size: u32,
        /// The cap in force.
        max: u32,
    },
    /// Slot stride 0.
    ZeroSlotSize,
    /// Slot stride not a multiple of [`crate::layout::SLOT_ALIGN`].
    SlotSizeMisaligned {
        /// The stride found.
        slot_stride: u32,
    },
    /// Slot stride too small for the slot header plus the maximum message.
    SlotSizeTooSmall {
        /// The stride found.
        slot_stride: u32,
        /// The smallest stride that fits.
        needed: u32,
    },
    /// Slot stride larger than the maximum message needs.
    SlotSizeTooLarge {
        /// The stride found.
        slot_stride: u32,
        /// The stride the maximum message needs.
        max: u32,
    },
    /// Zero subscriber entries.
    ZeroSubscribers,
    /// More subscriber entries than [`crate::layout::MAX_SUBSCRIBERS`].
    TooManySubscribers {
        /// The count found.
        count: u32,
        /// The largest accepted.
        max: u32,
    },
    /// The data region would exceed [`crate::layout::MAX_DATA_REGION`].
    DataRegionTooLarge {
        /// Bytes it would need.
        size: u64,
        /// The largest accepted.
        max: u64,
    },
    /// The control region does not have the size the geometry needs.
    ControlSizeMismatch {
        /// Size the geometry needs.
        expected: u64,
        /// Size the header claims.
        header: u64,
        /// Size of the region we were handed.
        actual: u64,
    },
    /// The data region does not have the size the geometry needs.
    DataSizeMismatch {
        /// Size the geometry needs.
        expected: u64,
        /// Size the header claims.
        header: u64,
        /// Size of the region we were handed.
        actual: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::BadMagic { found } => {
                write!(f, "not a shmcast region (magic {found:#018x})")
            }
            LayoutError::VersionMismatch { ours, theirs } => {
                write!(f, "region has layout version {theirs}, this library speaks version {ours}")
            }
            LayoutError::UnknownMode { code } => write!(f, "unknown delivery mode code {code}"),
            LayoutError::UnknownFlags { flags } => write!(f, "unknown ring flags {flags:#x}"),
            LayoutError::ZeroCapacity => f.write_str("ring capacity is zero"),
            LayoutError::CapacityNotPowerOfTwo { capacity } => {
                write!(f, "ring capacity {capacity} is not a power of two")
            }
            LayoutError::CapacityTooLarge { capacity, max } => {
                write!(f, "ring capacity {capacity} is above the maximum of {max}")
            }
            LayoutError::ZeroMessageSize => f.write_str("maximum message size is zero"),
            LayoutError::MessageSizeTooLarge { size, max } => {
                write!(f, "maximum message size {size} B is above the accepted cap of {max} B")
            }
            LayoutError::ZeroSlotSize => f.write_str("slot size is zero"),
            LayoutError::SlotSizeMisaligned { slot_stride } => {
                write!(f, "slot size {slot_stride} B is not a multiple of 64")
            }
            LayoutError::SlotSizeTooSmall { slot_stride, needed } => {
                write!(f, "slot size {slot_stride} B is too small, the messages need {needed} B")
            }
            LayoutError::SlotSizeTooLarge { slot_stride, max } => {
                write!(f, "slot size {slot_stride} B is larger than the {max} B the messages need")
            }
            LayoutError::ZeroSubscribers => f.write_str("subscriber table has no entries"),
            LayoutError::TooManySubscribers { count, max } => {
                write!(f, "subscriber table has {count} entries, at most {max} are supported")
            }
            LayoutError::DataRegionTooLarge { size, max } => {
                write!(f, "data region of {size} B is above the limit of {max} B")
            }
            LayoutError::ControlSizeMismatch { expected, header, actual } => write!(
                f,
                "control region is {actual} B (header says {header} B) but the geometry needs {expected} B"
            ),
            LayoutError::DataSizeMismatch { expected, header, actual } => write!(
                f,
                "data region is {actual} B (header says {header} B) but the geometry needs {expected} B"
            ),
        }
    }
}
impl_error!(LayoutError);

/// Why a subscriber could not join a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// Every entry of the subscriber table is taken.
    TableFull {
        /// Size of the table.
        max: u32,
    },
    /// Unicast rings have one receiver, and it is already attached.
    ReceiverTaken,
    /// The ring was closed.
    Closed,
    /// The data region is mapped read-only in this process: it may only
    /// receive.
    ReadOnly,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            JoinError::TableFull { max } => {
                write!(f, "all {max} subscriber entries of the ring are in use")
            }
            JoinError::ReceiverTaken => {
                f.write_str("this unicast ring already has its one receiver")
            }
            JoinError::Closed => f.write_str("the ring is closed"),
            JoinError::ReadOnly => {
                f.write_str("the data region is mapped read-only here, so this process cannot send")
            }
        }
    }
}
impl_error!(JoinError);

/// Why a message could not be sent right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// No free slot: the slowest receiver that must see the oldest message has
    /// not read it yet (the RFC's `ENOBUFS`). Nothing was sent.
    Full,
    /// The message is longer than the ring's maximum message size (`EMSGSIZE`).
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The ring's maximum message size.
        max: usize,
    },
    /// The addressed subscriber is not an attached receiver (`ENOENT`).
    UnknownTarget {
        /// The index that was addressed.
        target: u32,
    },
    /// Addressed sends need a mode where the target can be told apart:
    /// unicast or broadcast. Multicast receivers compete for every message.
    AddressingUnsupported,
    /// The ring was closed; nothing more can be sent.
    Closed,
    /// This sender's subscriber entry was released or taken over by someone
    /// else (a misbehaving peer or a recovery pass); the handle is dead.
    Detached,
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TrySendError::Full => f.write_str("the ring is full"),
            TrySendError::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} B is larger than the ring's maximum of {max} B"
                )
            }
            TrySendError::UnknownTarget { target } => {
                write!(f, "subscriber {target} is not an attached receiver")
            }
            TrySendError::AddressingUnsupported => {
                f.write_str("addressed sends are not supported in multicast mode")
            }
            TrySendError::Closed => f.write_str("the ring is closed"),
            TrySendError::Detached => f.write_str("this sender's subscriber entry is gone"),
        }
    }
}
impl_error!(TrySendError);

/// Why no message could be received right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing to read yet (`EAGAIN`).
    Empty,
    /// The ring was closed and everything sent before has been read.
    Closed,
    /// This receiver was overtaken: the given number of messages were
    /// overwritten before it could read them. The receiver has moved on to the
    /// oldest message still in the ring; the next call reads from there. A
    /// lossless ring only reports this when a peer wrote nonsense into the
    /// shared positions.
    Lagged(u64),
    /// This receiver's subscriber entry was released or taken over by someone
    /// else (the RFC's "receive after detach", `ENOENT`).
    Detached,
    /// Zero-copy reads (`try_read`) are not available in multicast mode:
    /// competing receivers must copy a message before they know it is
    /// theirs. Use `try_recv`.
    ZeroCopyUnsupported,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TryRecvError::Empty => f.write_str("no message is ready"),
            TryRecvError::Closed => f.write_str("the ring is closed and drained"),
            TryRecvError::Lagged(n) => write!(f, "receiver lagged behind and lost {n} messages"),
            TryRecvError::Detached => f.write_str("this receiver's subscriber entry is gone"),
            TryRecvError::ZeroCopyUnsupported => {
                f.write_str("zero-copy reads are not available in multicast mode; use try_recv")
            }
        }
    }
}
impl_error!(TryRecvError);
