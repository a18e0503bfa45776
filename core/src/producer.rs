//! The send protocol.
//!
//! 1. Prepare everything that does not need a position (length check,
//!    target check), so the claim-to-publish window stays short.
//! 2. **Claim**: read `tail`; if `tail + k - head > capacity` by the cached
//!    head, refresh the head (broadcast: also run one min-head scan) and
//!    report [`TrySendError::Full`] if it is still full; else CAS
//!    `tail -> tail + k`. The winner owns positions `tail .. tail + k`.
//! 3. **Write** the payload and the slot header fields.
//! 4. **Publish**: store `seq = p + 1` with Release.
//!
//! A producer that stalls between 2 and 4 holds up every receiver behind
//! its position (receivers read in position order) — see the crate docs'
//! guarantee table.

use core::cell::Cell;
use core::fmt;

#[cfg(not(loom))]
use crate::copy::prefetch_for_write;
use crate::error::TrySendError;
use crate::layout::{SlotHeader, SLOT_FLAG_SKIP, SLOT_HEADER_SIZE};
use crate::mode::Mode;
use crate::ring::{Ring, Role, SubscriberId};
use crate::storage::Regions;
use crate::subscribers::{Joined, Laggard};
use crate::sync::atomic::Ordering::*;
use crate::wake::WakeSet;

/// Under loom there is no cache to warm.
#[cfg(loom)]
fn prefetch_for_write(_: *const u8) {}

/// Bound on the claim loop (CAS attempts, refreshes included).
const MAX_CLAIM_ATTEMPTS: u32 = 1 << 16;

/// Optional per-message fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Deliver to this receiver only (broadcast and unicast modes).
    pub target: Option<SubscriberId>,
    /// A user tag carried with the message.
    pub tag: u64,
}

impl Envelope {
    /// An envelope addressed to `target`.
    pub fn to(target: SubscriberId) -> Self {
        Envelope {
            target: Some(target),
            tag: 0,
        }
    }

    /// An envelope with a tag.
    pub fn tagged(tag: u64) -> Self {
        Envelope { target: None, tag }
    }
}

/// The sending handle of a subscriber. `Send` but not `Sync`: it keeps a
/// private cache of the consumer head. Dropping it leaves the ring (gives up
/// the send role of its table entry).
pub struct Producer<R: Regions> {
    ring: Ring<R>,
    joined: Joined,
    cached_head: Cell<u64>,
    sent: Cell<u64>,
    /// Broadcast: the receiver the last full-ring scan found holding the
    /// head back (see `claim_inner`).
    laggard: Cell<Option<Laggard>>,
}

impl<R: Regions> fmt::Debug for Producer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("id", &self.joined.id)
            .finish_non_exhaustive()
    }
}

impl<R: Regions> Drop for Producer<R> {
    fn drop(&mut self) {
        self.ring.leave(self.joined.id, self.joined.gen, Role::Send);
    }
}

impl<R: Regions> Producer<R> {
    pub(crate) fn new(ring: Ring<R>, joined: Joined) -> Self {
        // ORDERING(head): Acquire; the slots below it were consumed.
        let head = ring.regions.header().head.load(Acquire);
        Producer {
            ring,
            joined,
            cached_head: Cell::new(head),
            sent: Cell::new(0),
            laggard: Cell::new(None),
        }
    }

    /// This sender's subscriber id (carried in every message it sends).
    pub fn id(&self) -> SubscriberId {
        self.joined.id
    }

    /// The generation of the entry this handle joined (it counts joins of
    /// the entry): what [`Ring::evict`](crate::Ring::evict) and liveness
    /// records name it by.
    pub fn generation(&self) -> u32 {
        self.joined.gen
    }

    /// The ring this producer sends into.
    pub fn ring(&self) -> &Ring<R> {
        &self.ring
    }

    /// Send a copy of `data` to every receiver the mode delivers to.
    /// Returns the message id (its position in the ring).
    pub fn try_send(&self, data: &[u8]) -> Result<u64, TrySendError> {
        self.try_send_with(Envelope::default(), data)
    }

    /// Send `data` to receiver `target` only (the RFC's targeted unicast).
    pub fn try_send_to(&self, target: SubscriberId, data: &[u8]) -> Result<u64, TrySendError> {
        self.try_send_with(Envelope::to(target), data)
    }

    /// Send `data` with an [`Envelope`] (target and tag).
    pub fn try_send_with(&self, env: Envelope, data: &[u8]) -> Result<u64, TrySendError> {
        self.check_len(data.len())?;
        let target = self.check_target(env.target)?;
        let pos = self.claim(1)?;
        let index = self.ring.geo.slot_of(pos);
        // SAFETY: we own `pos` (claimed, unpublished) and len <= max_message
        // <= payload_room (checked above).
        unsafe { self.ring.regions.write_payload(index, 0, data) };
        let slot = self.ring.regions.slot(index);
        self.write_header(slot, data.len() as u32, target, env.tag, 0);
        publish_seq(slot, pos);
        self.warm_next_slot(pos, data.len());
        self.end_claim(1);
        Ok(pos)
    }

    /// Send as many of `msgs` as fit, in order, with one claim (one CAS on
    /// the tail). Returns how many were sent, at least 1; `Full` if none fit.
    /// All messages are checked against the size limit first: if one is too
    /// large, nothing is sent.
    pub fn try_send_batch(&self, msgs: &[&[u8]]) -> Result<usize, TrySendError> {
        for m in msgs {
            self.check_len(m.len())?;
        }
        if msgs.is_empty() {
            return Ok(0);
        }
        let (first, k) = self.claim_up_to(msgs.len() as u64)?;
        // Slots of one cache line: write and publish each in turn. Longer
        // slots: write every slot of the batch, then publish them in order,
        // so a receiver waiting at `first` spins on one line while the rest
        // are written instead of pulling each slot's lines back and forth
        // between its payload stores and its `seq` store (measured with
        // `shmcast-bench --only throughput`: 64-byte messages, two lines per
        // slot, 45–64 -> 67–71 M msg/s; 8-byte ones, one line, 116–124 ->
        // 95–101 M msg/s, hence one line is left as it was).
        let two_pass = self.ring.geo.slot_stride() > 64;
        for (i, m) in msgs[..k as usize].iter().enumerate() {
            let pos = first.wrapping_add(i as u64);
            let index = self.ring.geo.slot_of(pos);
            // SAFETY: as in try_send_with: `pos` is one of ours, length checked.
            unsafe { self.ring.regions.write_payload(index, 0, m) };
            let slot = self.ring.regions.slot(index);
            self.write_header(slot, m.len() as u32, 0, 0, 0);
            if !two_pass {
                publish_seq(slot, pos);
            }
        }
        if two_pass {
            for i in 0..k {
                let pos = first.wrapping_add(i);
                publish_seq(self.ring.regions.slot(self.ring.geo.slot_of(pos)), pos);
            }
        }
        self.end_claim(k);
        Ok(k as usize)
    }

    /// Claim one slot for a zero-copy send: write into the returned guard,
    /// then [`SendSlot::commit`]. Dropping the guard without commit publishes
    /// a *skip record*: receivers step over the position and nobody receives
    /// anything, so an abandoned claim never wedges the ring.
    pub fn try_claim(&mut self) -> Result<SendSlot<'_, R>, TrySendError> {
        self.try_claim_with(Envelope::default())
    }

    /// [`Producer::try_claim`] with an [`Envelope`].
    pub fn try_claim_with(&mut self, env: Envelope) -> Result<SendSlot<'_, R>, TrySendError> {
        let target = self.check_target(env.target)?;
        let pos = self.claim(1)?;
        Ok(SendSlot {
            producer: self,
            pos,
            len: 0,
            target,
            tag: env.tag,
            done: false,
        })
    }

    /// After publishing, compute (and mark) the sleeping receivers to wake
    /// for `published` new messages. Cheap when nobody sleeps: one fence and
    /// one load per 64 table entries, no write. The blocking layer calls this
    /// after every send and performs the wake syscall only when the set is
    /// not empty.
    pub fn wake_set(&self, published: u64) -> WakeSet {
        crate::wake::wake_after_publish(&self.ring, published, None)
    }

    /// [`Producer::wake_set`] for a message addressed to `target`: only the
    /// target is woken.
    pub fn wake_set_for(&self, target: SubscriberId) -> WakeSet {
        crate::wake::wake_after_publish(&self.ring, 1, Some(target))
    }

    /// Messages sent through this handle.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    fn check_len(&self, len: usize) -> Result<(), TrySendError> {
        let max = self.ring.geo.max_message();
        if len > max {
            return Err(TrySendError::TooLarge { len, max });
        }
        Ok(())
    }

    /// The slot's `target` word for `target` (0 = everyone).
    fn check_target(&self, target: Option<SubscriberId>) -> Result<u32, TrySendError> {
        let Some(t) = target else { return Ok(0) };
        if self.ring.geo.mode() == Mode::Multicast {
            return Err(TrySendError::AddressingUnsupported);
        }
        if !self.ring.is_receiver(t) {
            return Err(TrySendError::UnknownTarget { target: t.0 });
        }
        Ok(t.0 + 1)
    }

    /// Claim exactly `k` positions or none.
    #[inline]
    fn claim(&self, k: u64) -> Result<u64, TrySendError> {
        debug_assert!(k >= 1 && k <= self.ring.geo.capacity());
        // Fast path: open, room by the cached head, and the CAS wins at the
        // first try. Anything else (a stale cache, contention, a full or
        // closed ring, a peer's garbage) is `claim_inner`'s business.
        let ring = &self.ring;
        let hdr = ring.regions.header();
        if !ring.is_closed() {
            let tail = hdr.tail.load(Relaxed);
            let used = tail.wrapping_sub(self.cached_head.get());
            if used <= ring.geo.capacity().saturating_sub(k) {
                // The claim record, as in claim_inner (which rewrites it,
                // or clears it, if this CAS fails).
                let record = ring.regions.entry(self.joined.id.index());
                record.claim_start.store(tail, Relaxed);
                // ORDERING(record): Release, as in claim_inner.
                record.claim_count.store(k as u32, Release);
                // ORDERING(claim): as in claim_inner (Release: the record);
                // the cached head was read with Acquire before it was cached.
                if hdr
                    .tail
                    .compare_exchange(tail, tail.wrapping_add(k), Release, Relaxed)
                    .is_ok()
                {
                    return Ok(tail);
                }
            }
        }
        let (first, got) = self.claim_inner(k, false)?;
        debug_assert_eq!(got, k);
        Ok(first)
    }

    /// Claim between 1 and `k` positions.
    fn claim_up_to(&self, k: u64) -> Result<(u64, u64), TrySendError> {
        self.claim_inner(k, true)
    }

    #[inline(never)]
    fn claim_inner(&self, k: u64, partial: bool) -> Result<(u64, u64), TrySendError> {
        let ring = &self.ring;
        let hdr = ring.regions.header();
        let cap = ring.geo.capacity();
        // Our claim record: what we are about to claim, stored before each
        // CAS, so that a receiver stuck at a position we claimed and never
        // published (we died) can tell whose it was (see
        // `Receiver::step_over_dead_claim`). Cleared if we end up claiming
        // nothing (`claim`'s fast path may have left one).
        let record = ring.regions.entry(self.joined.id.index());
        if ring.is_closed() {
            record.claim_count.store(0, Relaxed);
            return Err(TrySendError::Closed);
        }
        let mut refreshed = false;
        let mut tail = hdr.tail.load(Relaxed);
        // Bounded: every failed CAS means another producer claimed, so
        // legitimate contention ends long before this; a peer that keeps
        // rewriting the tail gets `Full` instead of keeping us here.
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            // Positions in use by the cached head; a peer may have written
            // anything into tail or head, so everything wraps and a head
            // "ahead" of the tail just reads as full.
            let free = cap.saturating_sub(tail.wrapping_sub(self.cached_head.get()));
            if free < k && !refreshed {
                // The cache says there is not room for all k: look at the
                // real head once (and in broadcast, rescan the receivers)
                // before settling for less, or for Full.
                refreshed = true;
                // ORDERING(head): Acquire; pairs with the Release store (or
                // fetch_max / CAS) of head by receivers after they finished
                // reading, so our payload writes into reused slots come after
                // their reads.
                let mut head = hdr.head.load(Acquire);
                if ring.geo.mode() == Mode::Broadcast
                    && cap.saturating_sub(tail.wrapping_sub(head)) < k
                {
                    // The scan reads every receiver's entry (a cache miss
                    // each, the lines their reads keep writing). If the
                    // receiver that held the head at `head` last time has
                    // not moved, the head cannot have risen: still full,
                    // no scan. Otherwise scan and remember the new one.
                    match self.laggard.get() {
                        Some(l) if head == l.local_head() && ring.laggard_unchanged(&l) => {}
                        _ => {
                            let (h, l) = ring.raise_min_head_laggard();
                            head = h;
                            self.laggard.set(l);
                        }
                    }
                }
                self.cached_head.set(head);
                tail = hdr.tail.load(Relaxed);
                continue;
            }
            let want = if partial { k.min(free) } else { k };
            if want == 0 || free < want {
                record.claim_count.store(0, Relaxed);
                if !ring.owns(self.joined.id, self.joined.gen) {
                    return Err(TrySendError::Detached);
                }
                return Err(TrySendError::Full);
            }
            // ORDERING(record): the CAS's Release below makes the record
            // visible to whoever reads the tail past it. The count is also
            // a Release store (free on x86), for readers that see this new
            // record without that edge: our earlier publishes (program
            // order) come with it, so a receiver that finds our new record
            // no longer covering a position we published also sees the
            // publish (`step_over_dead_claim` loads the count Acquire).
            record.claim_start.store(tail, Relaxed);
            record.claim_count.store(want as u32, Release);
            // ORDERING(claim): Release on success, so that whoever reads a
            // tail past these positions (Acquire, in
            // `step_over_dead_claim`) also sees the record above; later
            // claims' CASes continue the release sequence. (A locked
            // instruction on x86 either way.) Ownership itself needs no
            // ordering; the edge that makes slot reuse safe is the Acquire
            // load of head above (done by this thread, before this CAS).
            match hdr
                .tail
                .compare_exchange_weak(tail, tail.wrapping_add(want), Release, Relaxed)
            {
                Ok(_) => return Ok((tail, want)),
                Err(now) => tail = now,
            }
        }
        record.claim_count.store(0, Relaxed);
        Err(TrySendError::Full)
    }

    /// After publishing a `len`-byte message at `pos` that spans two cache
    /// lines (header and payload up to 128 bytes): fetch for writing the
    /// second line of the next position's slot, so that the next send
    /// finds it in this core's cache instead of waiting, between its
    /// payload stores and its `seq` store, for the receiver's core to give
    /// it up (the receiver read it a lap ago). The first line is left
    /// alone: a receiver that has caught up spins on its `seq` word.
    ///
    /// Measured (`shmcast-bench --quick --only latency --sizes 64`, builds
    /// alternating, three sets of 8–18 runs): busy-poll one-way latency at
    /// 64 B went from 1.12–1.57x the raw floor (set medians 1.30–1.36) to
    /// 0.95–1.36x (set medians 1.17–1.23). Fetching every line of
    /// longer messages also helped their ping-pong (1 KiB: ~1.0 -> ~0.87x)
    /// but made back-to-back sends of 256 B messages 6–15 % slower a
    /// message (a prefetch that the next send's stores follow at once buys
    /// nothing and costs a miss buffer), so only two-line messages do it.
    #[inline]
    fn warm_next_slot(&self, pos: u64, len: usize) {
        if (SLOT_HEADER_SIZE + len).div_ceil(64) != 2 {
            return;
        }
        let next = self
            .ring
            .regions
            .slot(self.ring.geo.slot_of(pos.wrapping_add(1)));
        prefetch_for_write((next as *const SlotHeader).cast::<u8>().wrapping_add(64));
    }

    fn end_claim(&self, k: u64) {
        let entry = self.ring.regions.entry(self.joined.id.index());
        let sent = self.sent.get().wrapping_add(k);
        self.sent.set(sent);
        entry.sent.store(sent, Relaxed);
    }

    fn publish(&self, pos: u64, len: u32, target: u32, tag: u64, flags: u32) {
        let slot = self.ring.regions.slot(self.ring.geo.slot_of(pos));
        self.write_header(slot, len, target, tag, flags);
        publish_seq(slot, pos);
    }

    /// Write the header fields of `slot`, which we claimed and have not
    /// published (Relaxed: the `seq` store that follows publishes them).
    #[inline]
    fn write_header(&self, slot: &SlotHeader, len: u32, target: u32, tag: u64, flags: u32) {
        slot.len.store(len, Relaxed);
        slot.sender.store(self.joined.id.0, Relaxed);
        slot.target.store(target, Relaxed);
        slot.flags.store(flags, Relaxed);
        slot.tag.store(tag, Relaxed);
    }
}

/// Publish position `pos`, whose slot `slot` has its payload and header
/// written.
#[inline]
fn publish_seq(slot: &SlotHeader, pos: u64) {
    // ORDERING(publish): Release; pairs with the Acquire load of
    // slot.seq in receivers (mode::*), making the payload and the header
    // fields written before it visible to whoever sees seq == pos + 1.
    slot.seq.store(pos.wrapping_add(1), Release);
}

/// A claimed slot, written in place and then committed (zero-copy send).
///
/// The payload is written with [`SendSlot::write_at`] / [`SendSlot::append`]
/// straight into the shared slot (no staging buffer). Dropping the guard
/// without [`SendSlot::commit`] publishes a skip record (see
/// [`Producer::try_claim`]).
pub struct SendSlot<'a, R: Regions> {
    producer: &'a Producer<R>,
    pos: u64,
    len: usize,
    target: u32,
    tag: u64,
    done: bool,
}

impl<R: Regions> fmt::Debug for SendSlot<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendSlot")
            .field("id", &self.pos)
            .field("len", &self.len)
            .finish()
    }
}

impl<R: Regions> SendSlot<'_, R> {
    /// The id the message will have.
    pub fn id(&self) -> u64 {
        self.pos
    }

    /// Bytes written so far (the message length at commit).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room in the slot: the ring's maximum message size.
    pub fn capacity(&self) -> usize {
        self.producer.ring.geo.max_message()
    }

    /// Write `bytes` at `offset` in the payload. The message length becomes
    /// at least `offset + bytes.len()`; bytes in a gap below `offset` that
    /// were never written are unspecified (they hold an older message).
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), TrySendError> {
        let max = self.capacity();
        let end = offset.checked_add(bytes.len()).filter(|&e| e <= max);
        let Some(end) = end else {
            return Err(TrySendError::TooLarge {
                len: offset.saturating_add(bytes.len()),
                max,
            });
        };
        let slot = self.producer.ring.geo.slot_of(self.pos);
        // SAFETY: we own the position (claimed, unpublished); end <= max_message.
        unsafe {
            self.producer
                .ring
                .regions
                .write_payload(slot, offset, bytes)
        };
        self.len = self.len.max(end);
        Ok(())
    }

    /// Write `bytes` after what was written so far.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), TrySendError> {
        self.write_at(self.len, bytes)
    }

    /// Set the message length (at most [`SendSlot::capacity`]).
    pub fn set_len(&mut self, len: usize) -> Result<(), TrySendError> {
        let max = self.capacity();
        if len > max {
            return Err(TrySendError::TooLarge { len, max });
        }
        self.len = len;
        Ok(())
    }

    /// Set the user tag.
    pub fn set_tag(&mut self, tag: u64) {
        self.tag = tag;
    }

    /// Publish the message. Returns its id.
    pub fn commit(mut self) -> u64 {
        self.done = true;
        self.producer
            .publish(self.pos, self.len as u32, self.target, self.tag, 0);
        self.producer.warm_next_slot(self.pos, self.len);
        self.producer.end_claim(1);
        self.pos
    }
}

impl<R: Regions> Drop for SendSlot<'_, R> {
    fn drop(&mut self) {
        if !self.done {
            self.producer.publish(self.pos, 0, 0, 0, SLOT_FLAG_SKIP);
        }
    }
}
