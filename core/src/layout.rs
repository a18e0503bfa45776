//! The shared-memory ABI: what lives where in the two regions of a ring.
//!
//! A ring is two regions (the README's "Layout" section has the picture
//! in words):
//!
//! ```text
//! control region (writable by every attached process)
//!   0      ControlHeader        4 cache-line pairs (512 bytes)
//!            .geometry          magic, version, mode, sizes: written once by the creator
//!            .tail              next position to claim (producers CAS it)
//!            .head              consumer head (see `ControlHeader::head`)
//!            .wake              broadcast wake word, multicast round-robin cursor
//!   512    waiter bitmap        one bit per subscriber, rounded up to 128 bytes
//!   ...    subscriber table     `max_subscribers` × SubscriberEntry (128 bytes each)
//!
//! data region (writable by senders only)
//!   0      slot 0               SlotHeader (32 bytes) + payload, `slot_stride` bytes
//!   ...    slot capacity-1
//! ```
//!
//! Every field a peer can reach is an atomic: a peer may write any of them at
//! any time, so our process never holds a plain reference to shared bytes that
//! could change underneath it. Values that shape the layout are read once, at
//! attach, by [`Geometry::decode`], and kept in process-local memory after
//! that; nothing on the hot path re-reads them.

use crossbeam_utils::CachePadded;

use crate::error::LayoutError;
use crate::mode::Mode;
use crate::sync::atomic::{AtomicU32, AtomicU64};

/// First word of every control region: `"SHMCAST\0"` read as a big-endian u64.
pub const MAGIC: u64 = u64::from_be_bytes(*b"SHMCAST\0");

/// Version of this layout. Bumped whenever a field moves or changes meaning;
/// attach refuses any other value with [`LayoutError::VersionMismatch`].
pub const LAYOUT_VERSION: u32 = 2;

/// Bytes of [`SlotHeader`] at the start of every slot; the payload follows.
pub const SLOT_HEADER_SIZE: usize = 32;

/// Slots start on a 64-byte boundary, so a small message shares one cache
/// line with its header.
pub const SLOT_ALIGN: usize = 64;

/// Bytes of [`ControlHeader`].
pub const CONTROL_HEADER_SIZE: usize = 512;

/// Bytes of one [`SubscriberEntry`].
pub const SUBSCRIBER_ENTRY_SIZE: usize = 128;

/// Largest number of subscribers (senders and receivers together) a ring can
/// have. The waiter bitmap of the largest table is 16 words.
pub const MAX_SUBSCRIBERS: u32 = 1024;

/// Largest capacity (slots) a ring can have.
pub const MAX_CAPACITY: u64 = 1 << 24;

/// Largest message the layout can describe at all (64 MiB). Rings are
/// normally capped lower, by [`DEFAULT_MAX_MESSAGE_CAP`] or by the cap the
/// user configures.
pub const HARD_MAX_MESSAGE: u32 = 64 << 20;

/// Default cap on the message size of a ring (1 MiB, as in the RFC).
pub const DEFAULT_MAX_MESSAGE_CAP: u32 = 1 << 20;

/// Largest data region (capacity × slot stride) the layout accepts: 64 GiB.
pub const MAX_DATA_REGION: u64 = 64 << 30;

/// `ControlHeader::geometry.state` value: the ring accepts messages.
pub const STATE_OPEN: u32 = 1;
/// `ControlHeader::geometry.state` value: the ring was closed (destroyed).
/// Senders get `Closed`; receivers drain what is left, then get `Closed`.
pub const STATE_CLOSED: u32 = 2;

/// Slot flag: the position was claimed and then abandoned (a send guard
/// dropped without commit). Receivers step over it; nobody receives it.
pub const SLOT_FLAG_SKIP: u32 = 1;

/// The geometry words, written once by the creator. Shared and writable by
/// peers, so they are only ever read into a [`HeaderWords`] snapshot and
/// validated.
#[repr(C)]
#[derive(Debug)]
pub struct GeometryWords {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU32,
    /// [`Mode`] as its `u32` code.
    pub mode: AtomicU32,
    /// Number of slots, a power of two.
    pub capacity: AtomicU64,
    /// Bytes per slot (header + payload + padding), a multiple of [`SLOT_ALIGN`].
    pub slot_stride: AtomicU32,
    /// Largest payload a slot holds.
    pub max_message: AtomicU32,
    /// Entries in the subscriber table.
    pub max_subscribers: AtomicU32,
    /// Option bits; none are defined in layout versions 1 and 2, so it must be 0.
    pub flags: AtomicU32,
    /// Size the control region must have.
    pub control_size: AtomicU64,
    /// Size the data region must have.
    pub data_size: AtomicU64,
    /// Uid of the creating process (informational; the rendezvous server
    /// checks permissions with its own private copy).
    pub creator_uid: AtomicU32,
    /// Gid of the creating process.
    pub creator_gid: AtomicU32,
    /// Permission bits (owner/group/other, like chmod) the channel was created with.
    pub perm_mode: AtomicU32,
    /// [`STATE_OPEN`] or [`STATE_CLOSED`]. Read by every send; written once
    /// more at close, so the line stays shared in every cache.
    pub state: AtomicU32,
}

/// Words that producers and sleepers write while the ring runs.
#[repr(C)]
#[derive(Debug)]
pub struct WakeWords {
    /// Futex word all sleeping broadcast receivers wait on: producers bump it
    /// once per wake, however many receivers sleep.
    pub broadcast: AtomicU32,
    /// Multicast round-robin cursor: the subscriber index after the last one woken.
    pub round_robin: AtomicU32,
    /// Unicast: index + 1 of the one receiver, or 0 when there is none.
    pub exclusive_receiver: AtomicU32,
    /// One past the highest subscriber index ever joined (raised with
    /// `fetch_max`), so scans of the table stop early. Untrusted: clamped to
    /// the table size.
    pub table_high_water: AtomicU32,
    /// Set to 1 the first time a sender joins. With no sender attached any
    /// more, a drained unicast channel then reads as closed (like a channel
    /// whose senders were all dropped).
    pub sender_joined: AtomicU32,
    /// Broadcast wake relay (layout version 2): a producer that wakes only
    /// one of several futex sleepers on `broadcast` ORs their futex bitsets
    /// in here first; whichever broadcast sleeper returns next swaps it to 0
    /// and wakes those bitsets on `broadcast` itself, so the producer pays
    /// one wake instead of one per sleeper. Untrusted: a wrong value costs
    /// spurious wakes, and a relay that never happens is bounded by the
    /// sleepers' guard timeout (see the notify crate).
    pub relay: AtomicU32,
}

/// The first [`CONTROL_HEADER_SIZE`] bytes of the control region.
#[repr(C)]
#[derive(Debug)]
pub struct ControlHeader {
    /// Geometry and state, one cache-line pair.
    pub geometry: CachePadded<GeometryWords>,
    /// Next position to claim. Producers claim `tail .. tail + k` with one CAS
    /// `tail -> tail + k`; the slot of position `p` is `p & (capacity - 1)`.
    /// Positions are u64 and never wrap in practice (2^64 messages).
    pub tail: CachePadded<AtomicU64>,
    /// Consumer head: every position below it has been consumed by every
    /// receiver that must see it, so its slot may be reused. Unicast: the
    /// receiver's head. Multicast: the shared head competing receivers CAS.
    /// Broadcast: a lower bound of the minimum `local_head` of live receivers,
    /// only ever raised (`fetch_max`), capped by `tail`. Producers may claim
    /// position `p` only while `p - head < capacity`.
    pub head: CachePadded<AtomicU64>,
    /// Wake words.
    pub wake: CachePadded<WakeWords>,
}

/// The status bits of `SubscriberEntry::state` ([`ENTRY_FREE`],
/// [`ENTRY_ACTIVE`], ...).
pub const ENTRY_STATUS_MASK: u64 = 0xff;

/// The generation in a `SubscriberEntry::state` word (joins of the entry).
pub const fn entry_generation(state: u64) -> u32 {
    (state >> 32) as u32
}

/// `SubscriberEntry::state` status: the entry is free.
pub const ENTRY_FREE: u64 = 0;
/// `SubscriberEntry::state` status: the entry belongs to a live subscriber.
pub const ENTRY_ACTIVE: u64 = 1;
/// Role bit in `SubscriberEntry::state`: the subscriber may send.
pub const ROLE_SEND: u64 = 1 << 8;
/// Role bit in `SubscriberEntry::state`: the subscriber may receive.
pub const ROLE_RECV: u64 = 1 << 9;

/// `SubscriberEntry::sleeping` while the receiver sleeps in a sleeper that
/// performs broadcast wake relays.
pub const SLEEPING_RELAYS: u32 = 1;

/// One subscriber (sender, receiver, or both) in the control region.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct SubscriberEntry {
    /// `generation << 32 | roles | status`: status is [`ENTRY_FREE`] or
    /// [`ENTRY_ACTIVE`] in bits 0..8, roles are [`ROLE_SEND`] / [`ROLE_RECV`];
    /// the generation counts joins of this entry, so a handle can tell that
    /// its entry was taken from it.
    pub state: AtomicU64,
    /// Broadcast: the next position this receiver will read. Written (Release)
    /// by the receiver after each read; read (Acquire) by min-head scans.
    pub local_head: AtomicU64,
    /// Futex word this receiver sleeps on in unicast and multicast mode;
    /// bumped by the producer that wakes it.
    pub wake: AtomicU32,
    /// Which notify backend the receiver sleeps in (set by the notify layer).
    pub backend: AtomicU32,
    /// Liveness token of the owning process: written by the shm layer,
    /// for the entry's generation, once it holds the entry's liveness lock
    /// (`shm/src/liveness.rs`); cleared at join. Untrusted.
    pub liveness: AtomicU64,
    /// Producer claim record: first position of the claim in flight (or
    /// the last one), stored before each claim CAS, so that receivers stuck
    /// at a position whose sender died can tell whose it was
    /// (`Receiver::step_over_dead_claim`). Untrusted.
    pub claim_start: AtomicU64,
    /// Producer claim record: positions in that claim (0 = none).
    pub claim_count: AtomicU32,
    /// [`SLEEPING_RELAYS`] while the receiver sleeps in a sleeper that
    /// performs broadcast wake relays on its way out (the notify crate's);
    /// 0 otherwise, e.g. while it sleeps in its own event loop (layout
    /// version 2). A producer relays a broadcast wake only when every
    /// sleeper it wakes shows it. Untrusted.
    pub sleeping: AtomicU32,
    /// Messages sent through this entry.
    pub sent: AtomicU64,
    /// Messages received through this entry.
    pub received: AtomicU64,
    /// Messages this receiver lost because it was lapped (never in a
    /// lossless ring unless a peer misbehaves).
    pub lagged: AtomicU64,
    /// How to reach this receiver when it sleeps, beyond its wake word:
    /// written by the notify layer (e.g. pid and ring fd for `MSG_RING`).
    /// Untrusted, like everything here.
    pub notify_info: AtomicU64,
}

/// The header at the start of every slot in the data region.
#[repr(C)]
#[derive(Debug)]
pub struct SlotHeader {
    /// Published mark. `seq == p + 1` means the message at position `p` is
    /// complete and visible (stored with Release by its producer, after the
    /// payload and the other header fields). A receiver at head `h` waits for
    /// `seq == h + 1` (Acquire). A slot is *reused* only when
    /// `tail - head < capacity` allows the claim, never because of `seq`.
    pub seq: AtomicU64,
    /// Payload length in bytes. Untrusted: clamped to the ring's max message.
    pub len: AtomicU32,
    /// Index of the sending subscriber.
    pub sender: AtomicU32,
    /// Target subscriber index + 1, or 0 for everyone.
    pub target: AtomicU32,
    /// [`SLOT_FLAG_SKIP`] or 0.
    pub flags: AtomicU32,
    /// A user tag carried with the message.
    pub tag: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ControlHeader>() == CONTROL_HEADER_SIZE);
    assert!(offset_of!(ControlHeader, tail) == 128);
    assert!(offset_of!(ControlHeader, head) == 256);
    assert!(offset_of!(ControlHeader, wake) == 384);
    assert!(size_of::<SubscriberEntry>() == SUBSCRIBER_ENTRY_SIZE);
    assert!(align_of::<SubscriberEntry>() == 128);
    assert!(size_of::<SlotHeader>() == SLOT_HEADER_SIZE);
    assert!(offset_of!(SlotHeader, tag) == 24);
};

/// The geometry words as read from a header, before validation.
///
/// Filled by the attach path (Relaxed loads of [`GeometryWords`]) or by a
/// fuzzer; [`Geometry::decode`] decides whether they describe a usable ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct HeaderWords {
    pub magic: u64,
    pub version: u32,
    pub mode: u32,
    pub capacity: u64,
    pub slot_stride: u32,
    pub max_message: u32,
    pub max_subscribers: u32,
    pub flags: u32,
    pub control_size: u64,
    pub data_size: u64,
}

impl HeaderWords {
    /// Snapshot the geometry words of a header (Relaxed loads: these words
    /// are validated, not synchronised with anything).
    pub fn read(g: &GeometryWords) -> Self {
        use crate::sync::atomic::Ordering::Relaxed;
        HeaderWords {
            magic: g.magic.load(Relaxed),
            version: g.version.load(Relaxed),
            mode: g.mode.load(Relaxed),
            capacity: g.capacity.load(Relaxed),
            slot_stride: g.slot_stride.load(Relaxed),
            max_message: g.max_message.load(Relaxed),
            max_subscribers: g.max_subscribers.load(Relaxed),
            flags: g.flags.load(Relaxed),
            control_size: g.control_size.load(Relaxed),
            data_size: g.data_size.load(Relaxed),
        }
    }

    /// Serialise to the byte image of [`GeometryWords`] (native endian), for
    /// tools and fuzzers that build regions by hand.
    pub fn to_bytes(&self) -> [u8; 56] {
        let mut b = [0u8; 56];
        b[0..8].copy_from_slice(&self.magic.to_ne_bytes());
        b[8..12].copy_from_slice(&self.version.to_ne_bytes());
        b[12..16].copy_from_slice(&self.mode.to_ne_bytes());
        b[16..24].copy_from_slice(&self.capacity.to_ne_bytes());
        b[24..28].copy_from_slice(&self.slot_stride.to_ne_bytes());
        b[28..32].copy_from_slice(&self.max_message.to_ne_bytes());
        b[32..36].copy_from_slice(&self.max_subscribers.to_ne_bytes());
        b[36..40].copy_from_slice(&self.flags.to_ne_bytes());
        b[40..48].copy_from_slice(&self.control_size.to_ne_bytes());
        b[48..56].copy_from_slice(&self.data_size.to_ne_bytes());
        b
    }

    /// Parse the byte image of [`GeometryWords`]; `None` if `bytes` is too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..56)?;
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_ne_bytes(w)
        };
        let u32_at = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[i..i + 4]);
            u32::from_ne_bytes(w)
        };
        Some(HeaderWords {
            magic: u64_at(0),
            version: u32_at(8),
            mode: u32_at(12),
            capacity: u64_at(16),
            slot_stride: u32_at(24),
            max_message: u32_at(28),
            max_subscribers: u32_at(32),
            flags: u32_at(36),
            control_size: u64_at(40),
            data_size: u64_at(48),
        })
    }
}

/// The validated, process-local shape of a ring. Built by [`Geometry::new`]
/// (creator) or [`Geometry::decode`] (attacher) and never re-read from shared
/// memory afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    mode: Mode,
    capacity: u64,
    slot_stride: usize,
    max_message: usize,
    max_subscribers: usize,
    bitmap_words: usize,
    subscribers_offset: usize,
    control_size: usize,
    data_size: usize,
}

const fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

impl Geometry {
    /// Compute the geometry of a new ring. Inputs are assumed to have passed
    /// [`crate::Config`] validation; anything out of range is still rejected
    /// here, with the same errors an attacher would get.
    pub fn new(
        mode: Mode,
        capacity: u64,
        max_message: u32,
        max_subscribers: u32,
    ) -> Result<Self, LayoutError> {
        let stride = round_up(
            SLOT_HEADER_SIZE as u64 + max_message as u64,
            SLOT_ALIGN as u64,
        );
        let stride = u32::try_from(stride).map_err(|_| LayoutError::MessageSizeTooLarge {
            size: max_message,
            max: HARD_MAX_MESSAGE,
        })?;
        let words = HeaderWords {
            magic: MAGIC,
            version: LAYOUT_VERSION,
            mode: mode.code(),
            capacity,
            slot_stride: stride,
            max_message,
            max_subscribers,
            flags: 0,
            control_size: 0,
            data_size: 0,
        };
        let (control, data) = Self::sizes_for(&words, HARD_MAX_MESSAGE)?;
        Self::decode(
            &HeaderWords {
                control_size: control,
                data_size: data,
                ..words
            },
            control,
            data,
            HARD_MAX_MESSAGE,
        )
    }

    /// The header words a creator writes for this geometry.
    pub fn header_words(&self) -> HeaderWords {
        HeaderWords {
            magic: MAGIC,
            version: LAYOUT_VERSION,
            mode: self.mode.code(),
            capacity: self.capacity,
            slot_stride: self.slot_stride as u32,
            max_message: self.max_message as u32,
            max_subscribers: self.max_subscribers as u32,
            flags: 0,
            control_size: self.control_size as u64,
            data_size: self.data_size as u64,
        }
    }

    /// Region sizes implied by the words (checking everything but the sizes).
    fn sizes_for(w: &HeaderWords, message_cap: u32) -> Result<(u64, u64), LayoutError> {
        if w.magic != MAGIC {
            return Err(LayoutError::BadMagic { found: w.magic });
        }
        if w.version != LAYOUT_VERSION {
            return Err(LayoutError::VersionMismatch {
                ours: LAYOUT_VERSION,
                theirs: w.version,
            });
        }
        Mode::from_code(w.mode).ok_or(LayoutError::UnknownMode { code: w.mode })?;
        if w.flags != 0 {
            return Err(LayoutError::UnknownFlags { flags: w.flags });
        }
        if w.capacity == 0 {
            return Err(LayoutError::ZeroCapacity);
        }
        if !w.capacity.is_power_of_two() {
            return Err(LayoutError::CapacityNotPowerOfTwo {
                capacity: w.capacity,
            });
        }
        if w.capacity > MAX_CAPACITY {
            return Err(LayoutError::CapacityTooLarge {
                capacity: w.capacity,
                max: MAX_CAPACITY,
            });
        }
        if w.max_message == 0 {
            return Err(LayoutError::ZeroMessageSize);
        }
        let cap = message_cap.min(HARD_MAX_MESSAGE);
        if w.max_message > cap {
            return Err(LayoutError::MessageSizeTooLarge {
                size: w.max_message,
                max: cap,
            });
        }
        if w.slot_stride == 0 {
            return Err(LayoutError::ZeroSlotSize);
        }
        if w.slot_stride as usize % SLOT_ALIGN != 0 {
            return Err(LayoutError::SlotSizeMisaligned {
                slot_stride: w.slot_stride,
            });
        }
        let needed = SLOT_HEADER_SIZE as u64 + w.max_message as u64;
        if (w.slot_stride as u64) < needed {
            return Err(LayoutError::SlotSizeTooSmall {
                slot_stride: w.slot_stride,
                needed: needed as u32,
            });
        }
        if (w.slot_stride as u64) > round_up(needed, SLOT_ALIGN as u64) {
            return Err(LayoutError::SlotSizeTooLarge {
                slot_stride: w.slot_stride,
                max: round_up(needed, SLOT_ALIGN as u64) as u32,
            });
        }
        if w.max_subscribers == 0 {
            return Err(LayoutError::ZeroSubscribers);
        }
        if w.max_subscribers > MAX_SUBSCRIBERS {
            return Err(LayoutError::TooManySubscribers {
                count: w.max_subscribers,
                max: MAX_SUBSCRIBERS,
            });
        }
        // Bounded by the checks above: capacity <= 2^24 and stride <= 2^27,
        // so the product fits a u64 with room to spare.
        let data = w.capacity * w.slot_stride as u64;
        if data > MAX_DATA_REGION {
            return Err(LayoutError::DataRegionTooLarge {
                size: data,
                max: MAX_DATA_REGION,
            });
        }
        let bitmap_bytes = round_up(round_up(w.max_subscribers as u64, 64) / 8, 128);
        let control = CONTROL_HEADER_SIZE as u64
            + bitmap_bytes
            + w.max_subscribers as u64 * SUBSCRIBER_ENTRY_SIZE as u64;
        Ok((control, data))
    }

    /// Validate untrusted header words against the real sizes of the two
    /// regions (from `fstat`, never from the header) and a cap on the message
    /// size. Pure: no syscalls, no shared memory; safe to fuzz.
    ///
    /// Everything that does not fit is rejected with its own
    /// [`LayoutError`] variant. A geometry this returns describes regions of
    /// exactly `control_len` and `data_len` bytes.
    pub fn decode(
        words: &HeaderWords,
        control_len: u64,
        data_len: u64,
        message_cap: u32,
    ) -> Result<Self, LayoutError> {
        let (control, data) = Self::sizes_for(words, message_cap)?;
        if words.control_size != control || control_len != control {
            return Err(LayoutError::ControlSizeMismatch {
                expected: control,
                header: words.control_size,
                actual: control_len,
            });
        }
        if words.data_size != data || data_len != data {
            return Err(LayoutError::DataSizeMismatch {
                expected: data,
                header: words.data_size,
                actual: data_len,
            });
        }
        let control_size =
            usize::try_from(control).map_err(|_| LayoutError::DataRegionTooLarge {
                size: control,
                max: MAX_DATA_REGION,
            })?;
        let data_size = usize::try_from(data).map_err(|_| LayoutError::DataRegionTooLarge {
            size: data,
            max: MAX_DATA_REGION,
        })?;
        let bitmap_words = (words.max_subscribers as usize).div_ceil(64);
        let bitmap_bytes = round_up(bitmap_words as u64 * 8, 128) as usize;
        Ok(Geometry {
            // Checked in sizes_for.
            mode: Mode::from_code(words.mode).unwrap_or(Mode::Unicast),
            capacity: words.capacity,
            slot_stride: words.slot_stride as usize,
            max_message: words.max_message as usize,
            max_subscribers: words.max_subscribers as usize,
            bitmap_words,
            subscribers_offset: CONTROL_HEADER_SIZE + bitmap_bytes,
            control_size,
            data_size,
        })
    }

    /// Delivery mode.
    #[inline]
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Number of slots (a power of two).
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
    /// `capacity - 1`: the slot of position `p` is `p & mask`.
    #[inline]
    pub fn mask(&self) -> u64 {
        self.capacity - 1
    }
    /// Bytes per slot, header included.
    #[inline]
    pub fn slot_stride(&self) -> usize {
        self.slot_stride
    }
    /// Largest payload of one message.
    #[inline]
    pub fn max_message(&self) -> usize {
        self.max_message
    }
    /// Bytes available for the payload in each slot (`>= max_message`, a multiple of 8).
    #[inline]
    pub fn payload_room(&self) -> usize {
        self.slot_stride - SLOT_HEADER_SIZE
    }
    /// Entries in the subscriber table.
    #[inline]
    pub fn max_subscribers(&self) -> usize {
        self.max_subscribers
    }
    /// u64 words in the waiter bitmap.
    #[inline]
    pub fn bitmap_words(&self) -> usize {
        self.bitmap_words
    }
    /// Byte offset of the waiter bitmap in the control region.
    pub fn bitmap_offset(&self) -> usize {
        CONTROL_HEADER_SIZE
    }
    /// Byte offset of the subscriber table in the control region.
    pub fn subscribers_offset(&self) -> usize {
        self.subscribers_offset
    }
    /// Exact size of the control region.
    pub fn control_size(&self) -> usize {
        self.control_size
    }
    /// Exact size of the data region.
    pub fn data_size(&self) -> usize {
        self.data_size
    }
    /// Slot index of position `pos`.
    #[inline]
    pub fn slot_of(&self, pos: u64) -> usize {
        (pos & (self.capacity - 1)) as usize
    }
}
