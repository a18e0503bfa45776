//! Inputs shared by the fuzz targets: bounded newtypes with hand-written
//! `Arbitrary` impls (so every byte the fuzzer mutates lands on a value that
//! matters), and the layered operation enums that drive a ring.
//!
//! The newtypes keep rings tiny on purpose: capacities of 1 to 4 slots wrap
//! many laps in a short input, a table of at most 5 entries fills up, and
//! payloads a few bytes longer than the largest message exercise `TooLarge`
//! and truncation without a dedicated operation.

#![allow(dead_code)]

use arbitrary::{Arbitrary, Result, Unstructured};
use shmcast_core::Mode;

pub mod oracle;

/// Longest payload generated: a little over the largest `MaxMessage`.
pub const MAX_PAYLOAD: usize = 28;

/// Longest operation list a run executes (longer inputs are cut, so one
/// execution stays fast).
pub const MAX_OPS: usize = 256;

/// A delivery mode.
#[derive(Clone, Copy, Debug)]
pub struct AnyMode(pub Mode);

impl<'a> Arbitrary<'a> for AnyMode {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(AnyMode(match u.int_in_range(0u8..=2)? {
            0 => Mode::Unicast,
            1 => Mode::Broadcast,
            _ => Mode::Multicast,
        }))
    }
}

/// A ring capacity of 1, 2 or 4 slots.
#[derive(Clone, Copy, Debug)]
pub struct TinyCapacity(pub u64);

impl<'a> Arbitrary<'a> for TinyCapacity {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(TinyCapacity(1 << u.int_in_range(0u32..=2)?))
    }
}

/// A ring capacity of 1 to 16 slots (a power of two).
#[derive(Clone, Copy, Debug)]
pub struct SmallCapacity(pub u64);

impl<'a> Arbitrary<'a> for SmallCapacity {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(SmallCapacity(1 << u.int_in_range(0u32..=4)?))
    }
}

/// A ring's largest message: 1 to 24 bytes.
#[derive(Clone, Copy, Debug)]
pub struct MaxMessage(pub u32);

impl<'a> Arbitrary<'a> for MaxMessage {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(MaxMessage(u.int_in_range(1..=24)?))
    }
}

/// A subscriber table of 1 to 5 entries.
#[derive(Clone, Copy, Debug)]
pub struct TableSize(pub u32);

impl<'a> Arbitrary<'a> for TableSize {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(TableSize(u.int_in_range(1..=5)?))
    }
}

/// Picks one of the handles that exist when the operation runs (modulo
/// their number), so an operation is never wasted on a missing handle.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub struct Pick(pub u8);

impl Pick {
    /// The picked index below `n`, `None` if `n == 0`.
    pub fn index(self, n: usize) -> Option<usize> {
        (n > 0).then(|| self.0 as usize % n)
    }

    /// The picked element of `items`, `None` if there are none.
    pub fn of<T: Copy>(self, items: &[T]) -> Option<T> {
        self.index(items.len()).map(|i| items[i])
    }

    /// The picked element of `items`, mutably.
    pub fn of_mut<T>(self, items: &mut [T]) -> Option<&mut T> {
        self.index(items.len()).map(|i| &mut items[i])
    }
}

/// A table index to address: inside a 5-entry table or a little past it.
#[derive(Clone, Copy, Debug)]
pub struct TargetIndex(pub u32);

impl<'a> Arbitrary<'a> for TargetIndex {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(TargetIndex(u.int_in_range(0..=7)?))
    }
}

/// Message bytes: 0 to [`MAX_PAYLOAD`] of them.
#[derive(Clone, Debug)]
pub struct Payload(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Payload {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let len = u.int_in_range(0..=MAX_PAYLOAD)?;
        let fill = u8::arbitrary(u)?;
        // Distinct bytes (a counter from `fill`): a payload copied from the
        // wrong slot or the wrong offset shows up as a mismatch.
        Ok(Payload(
            (0..len).map(|i| fill.wrapping_add(i as u8)).collect(),
        ))
    }
}

/// A byte offset or a buffer length: 0 to 30.
#[derive(Clone, Copy, Debug)]
pub struct Len(pub usize);

impl<'a> Arbitrary<'a> for Len {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Len(u.int_in_range(0..=MAX_PAYLOAD + 2)?))
    }
}

/// A short list: at most `N` elements.
#[derive(Clone, Debug)]
pub struct Few<T, const N: usize>(pub Vec<T>);

impl<'a, T: Arbitrary<'a>, const N: usize> Arbitrary<'a> for Few<T, N> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u.int_in_range(0..=N)?;
        (0..n)
            .map(|_| T::arbitrary(u))
            .collect::<Result<_>>()
            .map(Few)
    }
}

/// A small count (how many messages a wake is for): 0 to 3.
#[derive(Clone, Copy, Debug)]
pub struct SmallCount(pub u64);

impl<'a> Arbitrary<'a> for SmallCount {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(SmallCount(u.int_in_range(0..=3)?))
    }
}

/// A user tag: mostly 0 (the plain `try_send` path), sometimes any value.
#[derive(Clone, Copy, Debug)]
pub struct Tag(pub u64);

impl<'a> Arbitrary<'a> for Tag {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Tag(if bool::arbitrary(u)? {
            0
        } else {
            u64::arbitrary(u)?
        }))
    }
}

/// Which role a join asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum JoinAs {
    /// `Ring::producer`.
    Producer,
    /// `Ring::receiver`.
    Receiver,
    /// `Ring::duplex`: one entry, both handles.
    Duplex,
}

/// One step of a ring's life. The layers follow the API: membership, sends,
/// zero-copy claims, receives, the sleep/wake protocol, close.
#[derive(Clone, Debug, Arbitrary)]
pub enum Op {
    /// Join with a role.
    Join(JoinAs),
    /// Drop a handle.
    Leave(LeaveOp),
    /// A copying send.
    Send(SendOp),
    /// A zero-copy send.
    Claim(ClaimOp),
    /// A receive.
    Recv(RecvOp),
    /// The eventcount.
    Wait(WaitOp),
    /// `Ring::close`, if the coin says so (a close ends most of what a run
    /// can do, so it is rare).
    Close(Rare),
}

/// A coin that comes up `true` once in 16 throws.
#[derive(Clone, Copy, Debug)]
pub struct Rare(pub bool);

impl<'a> Arbitrary<'a> for Rare {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Rare(u.int_in_range(0u8..=15)? == 0))
    }
}

/// Drop a producer or a receiver handle.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum LeaveOp {
    /// Drop a producer.
    Producer(Pick),
    /// Drop a receiver.
    Receiver(Pick),
}

/// Copying sends.
#[derive(Clone, Debug, Arbitrary)]
pub enum SendOp {
    /// `try_send`, or `try_send_with(Envelope::tagged(tag))` for a tag != 0.
    One {
        /// Which producer.
        p: Pick,
        /// Bytes.
        data: Payload,
        /// Tag.
        tag: Tag,
    },
    /// `try_send_to`.
    To {
        /// Which producer.
        p: Pick,
        /// The addressed table index (attached receiver or not).
        target: TargetIndex,
        /// Bytes.
        data: Payload,
    },
    /// `try_send_with` an envelope that may carry both a target and a tag.
    With {
        /// Which producer.
        p: Pick,
        /// Target.
        target: Option<TargetIndex>,
        /// Tag.
        tag: Tag,
        /// Bytes.
        data: Payload,
    },
    /// `try_send_batch`.
    Batch {
        /// Which producer.
        p: Pick,
        /// The messages.
        msgs: Few<Payload, 6>,
    },
}

/// `try_claim_with`, then `steps` on the guard, then commit or drop.
#[derive(Clone, Debug, Arbitrary)]
pub struct ClaimOp {
    /// Which producer.
    pub p: Pick,
    /// Target of the envelope.
    pub target: Option<TargetIndex>,
    /// Tag of the envelope.
    pub tag: Tag,
    /// What is done with the guard.
    pub steps: Few<ClaimStep, 5>,
    /// Commit, or drop without commit (a skip record).
    pub commit: bool,
}

/// One call on a `SendSlot`.
#[derive(Clone, Debug, Arbitrary)]
pub enum ClaimStep {
    /// `write_at(offset, bytes)`.
    WriteAt(Len, Payload),
    /// `append(bytes)`.
    Append(Payload),
    /// `set_len(len)`.
    SetLen(Len),
    /// `set_tag(tag)`.
    SetTag(u64),
}

/// Receives.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum RecvOp {
    /// `try_recv` into a buffer of `buf` bytes (possibly shorter than the message).
    Recv {
        /// Which receiver.
        r: Pick,
        /// Buffer length.
        buf: Len,
    },
    /// `try_recv` until it fails.
    Drain {
        /// Which receiver.
        r: Pick,
        /// Buffer length.
        buf: Len,
    },
    /// `try_recv_batch` into a buffer of `buf` bytes with room for
    /// `max % 9` infos.
    Batch {
        /// Which receiver.
        r: Pick,
        /// Buffer length.
        buf: Len,
        /// Infos (mod 9).
        max: u8,
    },
    /// `try_read`, `read_at(offset)` into `win` bytes, drop the guard.
    Read {
        /// Which receiver.
        r: Pick,
        /// Offset of the partial read.
        offset: Len,
        /// Window of the partial read.
        win: Len,
    },
}

/// The sleep / wake protocol (no syscalls in core: only bits and words).
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum WaitOp {
    /// `Receiver::prepare_wait` (the token is dropped; the bit stays).
    Prepare(Pick),
    /// `Receiver::finish_wait`.
    Finish(Pick),
    /// `Producer::wake_set(n)`.
    WakeSet(Pick, SmallCount),
    /// `Producer::wake_set_for(target)`.
    WakeFor(Pick, TargetIndex),
    /// `Ring::wake_all`.
    WakeAll,
}
