//! The receiving handle: `try_recv` into a caller buffer, and the zero-copy
//! `ReadSlot` guard (unicast and broadcast). Mode-specific steps live in
//! `mode::*`.

use core::cell::Cell;
use core::fmt;

use crate::error::TryRecvError;
use crate::layout::{SlotHeader, SLOT_FLAG_SKIP};
use crate::mode::{broadcast, multicast, unicast, Mode};
use crate::ring::{Ring, Role, SubscriberId};
use crate::storage::Regions;
use crate::subscribers::Joined;
use crate::sync::atomic::{fence, Ordering::*};

/// What a receive delivered. `Default` (all zero) is only a placeholder
/// for [`Receiver::try_recv_batch`]'s output array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo {
    /// The message id: its position in the ring (unique, increasing).
    /// Positions are `u64` and wrap: 2^64 messages never happen, but a peer
    /// that writes the shared tail or head can move them to just below
    /// `u64::MAX`, and the next id is then 0. Compare ids with
    /// `wrapping_sub`.
    pub id: u64,
    /// Bytes delivered into the caller's buffer.
    pub len: usize,
    /// Length of the message as sent (clamped to the ring's maximum).
    pub message_len: usize,
    /// Who sent it.
    pub sender: SubscriberId,
    /// The receiver it was addressed to, if any.
    pub target: Option<SubscriberId>,
    /// The user tag.
    pub tag: u64,
}

impl MessageInfo {
    /// Whether the buffer was too small and only the first `len` bytes of
    /// the message were delivered (the RFC's truncation semantics).
    pub fn truncated(&self) -> bool {
        self.len < self.message_len
    }
}

/// Header fields of a published slot, read once into private memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotSnapshot {
    pub(crate) len: usize,
    pub(crate) sender: u32,
    pub(crate) target: u32,
    pub(crate) flags: u32,
    pub(crate) tag: u64,
}

impl SlotSnapshot {
    /// Read the header fields of `slot` (Relaxed: ordered by the caller's
    /// Acquire load of `seq`). The length is clamped to `max_len`: a peer
    /// may have written anything.
    #[inline]
    pub(crate) fn read(slot: &SlotHeader, max_len: usize) -> Self {
        SlotSnapshot {
            len: (slot.len.load(Relaxed) as usize).min(max_len),
            sender: slot.sender.load(Relaxed),
            target: slot.target.load(Relaxed),
            flags: slot.flags.load(Relaxed),
            tag: slot.tag.load(Relaxed),
        }
    }

    /// Whether receiver `me` should get this message.
    #[inline]
    pub(crate) fn is_for(&self, me: SubscriberId) -> bool {
        self.flags & SLOT_FLAG_SKIP == 0
            && (self.target == 0 || self.target == me.0.wrapping_add(1))
    }

    #[inline]
    pub(crate) fn info(&self, id: u64, delivered: usize) -> MessageInfo {
        MessageInfo {
            id,
            len: delivered,
            message_len: self.len,
            sender: SubscriberId(self.sender),
            target: self.target.checked_sub(1).map(SubscriberId),
            tag: self.tag,
        }
    }
}

/// The receiving handle of a subscriber. `Send` but not `Sync`. Dropping it
/// leaves the ring (gives up the receive role of its table entry).
pub struct Receiver<R: Regions> {
    pub(crate) ring: Ring<R>,
    pub(crate) joined: Joined,
    /// Unicast / broadcast: the next position to read (private, authoritative).
    pub(crate) head: Cell<u64>,
    /// Broadcast: messages read since the last min-head scan.
    pub(crate) since_scan: Cell<u32>,
    pub(crate) received: Cell<u64>,
    pub(crate) lagged: Cell<u64>,
    /// Set once this receiver found its entry taken from it (evicted as
    /// dead, or a peer's doing): every later receive is `Detached`, and it
    /// no longer moves the head it shares with the entry's new holder.
    pub(crate) detached: Cell<bool>,
}

impl<R: Regions> fmt::Debug for Receiver<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("id", &self.joined.id)
            .field("mode", &self.ring.geo.mode())
            .finish_non_exhaustive()
    }
}

impl<R: Regions> Drop for Receiver<R> {
    fn drop(&mut self) {
        self.ring.leave(self.joined.id, self.joined.gen, Role::Recv);
    }
}

/// Outcome of looking at the slot at a receiver's head.
pub(crate) enum Peek {
    /// Published and for us: position and header snapshot.
    Ready(u64, SlotSnapshot),
    /// Nothing published at the head yet.
    Empty,
}

impl<R: Regions> Receiver<R> {
    pub(crate) fn new(ring: Ring<R>, joined: Joined) -> Self {
        Receiver {
            ring,
            head: Cell::new(joined.start),
            joined,
            since_scan: Cell::new(0),
            received: Cell::new(0),
            lagged: Cell::new(0),
            detached: Cell::new(false),
        }
    }

    /// This receiver's subscriber id (what senders address it by).
    pub fn id(&self) -> SubscriberId {
        self.joined.id
    }

    /// The generation of the entry this handle joined (it counts joins of
    /// the entry): what [`Ring::evict`](crate::Ring::evict) and liveness
    /// records name it by.
    pub fn generation(&self) -> u32 {
        self.joined.gen
    }

    /// The ring this receiver reads from.
    pub fn ring(&self) -> &Ring<R> {
        &self.ring
    }

    /// Messages received through this handle.
    pub fn received(&self) -> u64 {
        self.received.get()
    }

    /// Messages this receiver lost by lagging (0 in a lossless ring with
    /// well-behaved peers).
    pub fn lagged(&self) -> u64 {
        self.lagged.get()
    }

    /// Receive the next message into `buf`. If `buf` is shorter than the
    /// message, its first `buf.len()` bytes are delivered and
    /// [`MessageInfo::truncated`] is true; the message is consumed either
    /// way. On error the contents of `buf` are unspecified.
    #[inline]
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<MessageInfo, TryRecvError> {
        let geo = &self.ring.geo;
        if geo.mode() == Mode::Multicast {
            return multicast::try_recv(self, buf);
        }
        if self.detached.get() {
            return Err(TryRecvError::Detached);
        }
        // Fast path (unicast / broadcast): the slot at our head is published
        // and for us, or nothing is published there yet. Everything else
        // (skip records, messages for others, a lap) takes `recv_slow`.
        let h = self.head.get();
        let slot = self.ring.regions.slot(geo.slot_of(h));
        // ORDERING(publish): as in `next_ready`.
        let seq = slot.seq.load(Relaxed);
        fence(Acquire);
        let ahead = seq.wrapping_sub(h.wrapping_add(1));
        if ahead == 0 {
            let snap = SlotSnapshot::read(slot, geo.max_message());
            if snap.is_for(self.joined.id) {
                return Ok(self.deliver(h, snap, buf));
            }
        } else if ahead >= (1 << 63) {
            // The slot still holds an older position: empty.
            return Err(self.empty_or_closed());
        }
        self.recv_slow(buf)
    }

    /// Unicast / broadcast `try_recv` past the fast path's cases.
    #[cold]
    #[inline(never)]
    fn recv_slow(&self, buf: &mut [u8]) -> Result<MessageInfo, TryRecvError> {
        let Peek::Ready(pos, snap) = self.next_ready()? else {
            return Err(self.empty_or_closed());
        };
        Ok(self.deliver(pos, snap, buf))
    }

    /// Copy the message at `pos` (published, for us) into `buf` and consume it.
    #[inline]
    fn deliver(&self, pos: u64, snap: SlotSnapshot, buf: &mut [u8]) -> MessageInfo {
        let n = snap.len.min(buf.len());
        // SAFETY: n <= len <= max_message <= payload_room.
        unsafe {
            self.ring
                .regions
                .read_payload(self.ring.geo.slot_of(pos), 0, &mut buf[..n], true)
        };
        self.advance(pos.wrapping_add(1), true);
        snap.info(pos, n)
    }

    /// Receive up to `infos.len()` messages at once, packed back to back
    /// into `buf`: message `i` is `buf[off_i .. off_i + infos[i].len]`,
    /// where `off_i` is the sum of the earlier `len`s. Returns how many
    /// were received (at least 1 unless `infos` is empty, which returns
    /// `Ok(0)` at once), or the error `try_recv` would return.
    ///
    /// Unicast and broadcast receivers read the run of published messages
    /// at their head and publish the head (and the `received` counter) once
    /// for the whole batch, which is what makes small messages cheap to
    /// stream. Multicast receivers still claim one message per CAS (each
    /// may go to a competitor), so a batch only saves the calls.
    ///
    /// Only the first message can be truncated (when `buf` is shorter than
    /// it, exactly as with `try_recv`); a later message that does not fit
    /// in what is left of `buf` ends the batch and stays for the next call.
    /// In multicast a later message is only taken while `max_message` bytes
    /// are left, since its length is not known before it is claimed.
    ///
    /// ```
    /// # use shmcast_core::{Config, HeapRing, Mode, MessageInfo};
    /// let ring = HeapRing::new(&Config::new(Mode::Unicast).capacity(8).max_message(16))?;
    /// let (tx, rx) = (ring.producer()?, ring.receiver()?);
    /// tx.try_send_batch(&[b"one", b"two", b"three"])?;
    /// let mut buf = [0u8; 64];
    /// let mut infos = [MessageInfo::default(); 8];
    /// let n = rx.try_recv_batch(&mut buf, &mut infos)?;
    /// let mut off = 0;
    /// let mut got = Vec::new();
    /// for info in &infos[..n] {
    ///     got.push(&buf[off..off + info.len]);
    ///     off += info.len;
    /// }
    /// assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_batch(
        &self,
        buf: &mut [u8],
        infos: &mut [MessageInfo],
    ) -> Result<usize, TryRecvError> {
        if infos.is_empty() {
            return Ok(0);
        }
        if self.ring.geo.mode() == Mode::Multicast {
            return self.recv_batch_multicast(buf, infos);
        }
        if self.detached.get() {
            return Err(TryRecvError::Detached);
        }
        let geo = &self.ring.geo;
        let max = geo.max_message();
        let mut h = self.head.get();
        let (mut n, mut at, mut steps) = (0usize, 0usize, 0u32);
        // Bounded by one lap: never more positions than the ring holds.
        let mut ahead = 0;
        while n < infos.len() && u64::from(steps) < geo.capacity() {
            let slot = self.ring.regions.slot(geo.slot_of(h));
            // ORDERING(publish): as in `next_ready`.
            let seq = slot.seq.load(Relaxed);
            fence(Acquire);
            ahead = seq.wrapping_sub(h.wrapping_add(1));
            if ahead != 0 {
                break;
            }
            let snap = SlotSnapshot::read(slot, max);
            if snap.is_for(self.joined.id) {
                let room = buf.len() - at;
                if snap.len > room && n > 0 {
                    break;
                }
                let k = snap.len.min(room);
                // SAFETY: k <= len <= max_message <= payload_room.
                unsafe {
                    self.ring
                        .regions
                        .read_payload(geo.slot_of(h), 0, &mut buf[at..at + k], true)
                };
                infos[n] = snap.info(h, k);
                n += 1;
                at += k;
            }
            h = h.wrapping_add(1);
            steps += 1;
        }
        if steps > 0 {
            self.advance_by(h, n as u64, steps);
        }
        if n > 0 {
            return Ok(n);
        }
        if ahead != 0 && ahead < (1 << 63) {
            return Err(self.lapped(h));
        }
        Err(self.empty_or_closed())
    }

    fn recv_batch_multicast(
        &self,
        buf: &mut [u8],
        infos: &mut [MessageInfo],
    ) -> Result<usize, TryRecvError> {
        let max = self.ring.geo.max_message();
        let first = multicast::try_recv(self, buf)?;
        infos[0] = first;
        let (mut n, mut at) = (1, first.len);
        while n < infos.len() && buf.len() - at >= max {
            match multicast::try_recv(self, &mut buf[at..]) {
                Ok(info) => {
                    infos[n] = info;
                    n += 1;
                    at += info.len;
                }
                // Whatever stopped the run (empty, a lag, a close) is
                // reported by the next call.
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Zero-copy receive (unicast and broadcast): a guard over the next
    /// message in place. The message is consumed when the guard is dropped;
    /// until then no producer can reuse its slot. Multicast rings return
    /// [`TryRecvError::ZeroCopyUnsupported`]: competing receivers must copy
    /// before they know a message is theirs.
    pub fn try_read(&mut self) -> Result<ReadSlot<'_, R>, TryRecvError> {
        if self.ring.geo.mode() == Mode::Multicast {
            return Err(TryRecvError::ZeroCopyUnsupported);
        }
        match self.next_ready()? {
            Peek::Ready(pos, snap) => Ok(ReadSlot {
                rx: self,
                pos,
                snap,
            }),
            Peek::Empty => Err(self.empty_or_closed()),
        }
    }

    /// Whether a call to `try_recv` would find something (a message, a
    /// close, a lag): the re-check of the sleep protocol. Does not consume.
    pub(crate) fn is_ready(&self) -> bool {
        if self.ring.is_closed() {
            return true;
        }
        // Unicast: the last sender leaving ends the wait too (a drained
        // unicast ring with no sender reads as closed in the blocking API).
        // Part of the re-check after the fence, so a leave that the sender's
        // wake missed is seen here.
        if self.ring.geo.mode() == Mode::Unicast && self.ring.senders_gone() {
            return true;
        }
        let (h, exact) = match self.ring.geo.mode() {
            Mode::Multicast => (self.ring.regions.header().head.load(Relaxed), true),
            _ => (self.head.get(), false),
        };
        let seq = self
            .ring
            .regions
            .slot(self.ring.geo.slot_of(h))
            .seq
            .load(Relaxed);
        if exact {
            seq == h.wrapping_add(1)
        } else {
            // Published for h, or a later lap (lagged): both end the wait.
            seq.wrapping_sub(h.wrapping_add(1)) < (1 << 63)
        }
    }

    /// Unicast / broadcast: step over skip records and messages addressed to
    /// others until a message for us is at the head. Bounded: at most one lap.
    fn next_ready(&self) -> Result<Peek, TryRecvError> {
        if self.detached.get() {
            return Err(TryRecvError::Detached);
        }
        let geo = &self.ring.geo;
        for _ in 0..=geo.capacity() {
            let h = self.head.get();
            let slot = self.ring.regions.slot(geo.slot_of(h));
            // ORDERING(publish): Relaxed load + Acquire fence; pairs with the
            // Release store of seq in Producer::publish. (Not an Acquire
            // load: the data region may be mapped read-only, where Rust only
            // promises Relaxed atomic loads.)
            let seq = slot.seq.load(Relaxed);
            fence(Acquire);
            if seq != h.wrapping_add(1) {
                let ahead = seq.wrapping_sub(h.wrapping_add(1));
                if ahead != 0 && ahead < (1 << 63) {
                    return Err(self.lapped(h));
                }
                return Ok(Peek::Empty);
            }
            let snap = SlotSnapshot::read(slot, geo.max_message());
            if snap.is_for(self.joined.id) {
                return Ok(Peek::Ready(h, snap));
            }
            self.advance(h.wrapping_add(1), false);
        }
        Ok(Peek::Empty)
    }

    /// The slot at our head holds a later position than our head: we were
    /// overtaken. Jump to the oldest position that can still be in the ring.
    fn lapped(&self, h: u64) -> TryRecvError {
        // Overtaken because our entry was taken from us (evicted as dead,
        // or a peer's doing): no longer counted by min-head scans, we would
        // be lapped again and again. Say so instead.
        if !self.ring.owns(self.joined.id, self.joined.gen) {
            self.detached.set(true);
            return TryRecvError::Detached;
        }
        let hdr = self.ring.regions.header();
        let tail = hdr.tail.load(Relaxed);
        let oldest = tail.wrapping_sub(self.ring.geo.capacity());
        let to = if oldest.wrapping_sub(h) < (1 << 63) && oldest != h {
            oldest
        } else {
            h.wrapping_add(1)
        };
        let lost = to.wrapping_sub(h);
        self.lagged.set(self.lagged.get().wrapping_add(lost));
        self.ring
            .regions
            .entry(self.joined.id.index())
            .lagged
            .store(self.lagged.get(), Relaxed);
        self.advance(to, false);
        TryRecvError::Lagged(lost)
    }

    /// Move our head to `to` (unicast: the shared head; broadcast: our
    /// local_head) after reading everything below it.
    #[inline]
    pub(crate) fn advance(&self, to: u64, delivered: bool) {
        self.advance_by(to, u64::from(delivered), 1);
    }

    /// [`Receiver::advance`] past `steps` positions of which `delivered`
    /// were messages for us: one counter store and one head publication
    /// for the lot.
    #[inline]
    pub(crate) fn advance_by(&self, to: u64, delivered: u64, steps: u32) {
        self.head.set(to);
        if self.ring.geo.mode() != Mode::Multicast
            && !self.ring.owns(self.joined.id, self.joined.gen)
        {
            // Our entry was taken (we were evicted as dead, or a peer freed
            // it): its new holder, or the next unicast receiver, reads from
            // the head as we left it, so do not move it (what we just read
            // is read again there), and stop here.
            self.detached.set(true);
            return;
        }
        if delivered != 0 {
            let n = self.received.get().wrapping_add(delivered);
            self.received.set(n);
            self.ring
                .regions
                .entry(self.joined.id.index())
                .received
                .store(n, Relaxed);
        }
        match self.ring.geo.mode() {
            Mode::Unicast => unicast::publish_head(self, to),
            Mode::Broadcast => broadcast::publish_head(self, to, steps),
            Mode::Multicast => {}
        }
    }

    /// The position this receiver reads next (multicast: the shared head).
    pub fn next_position(&self) -> u64 {
        if self.ring.geo.mode() == Mode::Multicast {
            self.ring.regions.header().head.load(Relaxed)
        } else {
            self.head.get()
        }
    }

    /// Step over the position at our head if a sender that died claimed it
    /// and never published it (it would hold us, and every message behind
    /// it, for good). Returns true if it did; the caller then receives on.
    ///
    /// The position must be claimed (below the tail) and unpublished, and
    /// every sender whose claim record covers it (senders record what they
    /// claim before their claim CAS) must be gone: its entry free, or
    /// `is_dead(id, entry_state)` true for it (the caller's liveness check;
    /// core has no way to tell). A position no record covers is left alone
    /// (nothing says whose it is), as is one a live sender still holds: a
    /// slow sender is waited for. Unicast and broadcast receivers move
    /// their own head; multicast ones move the shared head (one of the
    /// competitors does). Cheap to call when there is nothing to do (one
    /// look at the tail), but it scans the table otherwise: call it when a
    /// receiver has waited at the same position for a while.
    ///
    /// A sender judged dead that was not (it closed its liveness fd, say)
    /// may publish into the stepped-over slot later: that makes results
    /// wrong, and can hold receivers at that slot's next lap, as any
    /// misbehaving peer can; never unsafe.
    pub fn step_over_dead_claim(&self, mut is_dead: impl FnMut(SubscriberId, u64) -> bool) -> bool {
        let ring = &self.ring;
        let geo = &ring.geo;
        let hdr = ring.regions.header();
        let multicast = geo.mode() == Mode::Multicast;
        if self.detached.get() {
            return false;
        }
        let h = if multicast {
            hdr.head.load(Relaxed)
        } else {
            self.head.get()
        };
        // ORDERING(claim): Acquire; pairs with the Release claim CAS, so
        // the records of every claim below the tail we read are visible.
        let tail = hdr.tail.load(Acquire);
        let claimed = tail.wrapping_sub(h);
        if claimed == 0 || claimed > geo.capacity() {
            return false;
        }
        let unpublished = || {
            // ORDERING(publish): as in `next_ready`.
            let seq = ring.regions.slot(geo.slot_of(h)).seq.load(Relaxed);
            fence(Acquire);
            // Not published at h, and not a later lap either (a lap is
            // the receive path's business).
            seq.wrapping_sub(h.wrapping_add(1)) >= (1 << 63)
        };
        if !unpublished() {
            return false;
        }
        let high = (hdr.wake.table_high_water.load(Relaxed) as usize).min(geo.max_subscribers());
        let mut covering = 0;
        for i in 0..high {
            let entry = ring.regions.entry(i);
            // ORDERING(record): Acquire; pairs with the Release store of
            // the count (start is stored before it): a record seen here
            // comes with its writer's earlier publishes.
            let count = u64::from(entry.claim_count.load(Acquire));
            let start = entry.claim_start.load(Relaxed);
            if count == 0 || h.wrapping_sub(start) >= count {
                continue;
            }
            covering += 1;
            // ORDERING(entry): Acquire; pairs with the Release CAS that
            // freed the entry (its holder's leave, or an eviction after its
            // death), so its publishes before that are seen below.
            let state = entry.state.load(Acquire);
            let gone = state & crate::layout::ENTRY_STATUS_MASK == crate::layout::ENTRY_FREE;
            if !gone && !is_dead(SubscriberId(i as u32), state) {
                return false; // a live sender holds it: wait
            }
        }
        // Again, now that the holders are known to be gone: one that
        // published before it died was seen to die after its publish.
        if covering == 0 || !unpublished() {
            return false;
        }
        if multicast {
            // ORDERING(head): AcqRel, like the receive CAS: the Release
            // keeps every head update a release that producers' Acquire
            // head loads synchronize with (nothing of the slot was read
            // here); a failure means a competitor moved the head anyway.
            let _ = hdr
                .head
                .compare_exchange(h, h.wrapping_add(1), AcqRel, Relaxed);
        } else {
            self.advance(h.wrapping_add(1), false);
        }
        true
    }

    /// `Empty`, `Closed` (drained and closed) or `Detached`.
    #[inline]
    pub(crate) fn empty_or_closed(&self) -> TryRecvError {
        if !self.ring.owns(self.joined.id, self.joined.gen) {
            return TryRecvError::Detached;
        }
        if self.ring.is_closed() {
            // A message published before the close is still delivered: look
            // again now that the close is visible.
            if self.is_ready_after_close() {
                return TryRecvError::Empty;
            }
            return TryRecvError::Closed;
        }
        TryRecvError::Empty
    }

    fn is_ready_after_close(&self) -> bool {
        let h = match self.ring.geo.mode() {
            Mode::Multicast => self.ring.regions.header().head.load(Relaxed),
            _ => self.head.get(),
        };
        let seq = self
            .ring
            .regions
            .slot(self.ring.geo.slot_of(h))
            .seq
            .load(Relaxed);
        // ORDERING(publish): as in next_ready.
        fence(Acquire);
        seq == h.wrapping_add(1)
    }
}

/// A message read in place (zero-copy receive). Consumed on drop.
pub struct ReadSlot<'a, R: Regions> {
    rx: &'a Receiver<R>,
    pos: u64,
    snap: SlotSnapshot,
}

impl<R: Regions> fmt::Debug for ReadSlot<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSlot")
            .field("id", &self.pos)
            .field("len", &self.snap.len)
            .finish()
    }
}

impl<R: Regions> ReadSlot<'_, R> {
    /// Message metadata (`len` is the whole message).
    pub fn info(&self) -> MessageInfo {
        self.snap.info(self.pos, self.snap.len)
    }

    /// Message length.
    pub fn len(&self) -> usize {
        self.snap.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.snap.len == 0
    }

    /// Copy message bytes from `offset` into `dst`; returns how many were
    /// copied (fewer than `dst.len()` at the end of the message).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> usize {
        let n = self.snap.len.saturating_sub(offset).min(dst.len());
        if n > 0 {
            // SAFETY: offset + n <= len <= max_message <= payload_room.
            unsafe {
                self.rx.ring.regions.read_payload(
                    self.rx.ring.geo.slot_of(self.pos),
                    offset,
                    &mut dst[..n],
                    true,
                )
            };
        }
        n
    }

    /// The message bytes in place.
    ///
    /// # Safety
    ///
    /// Nothing may write this slot while the returned slice lives, and only
    /// trust in *every* peer of the ring can promise that: a misbehaving
    /// peer may write the slot itself (if it may send), or move the shared
    /// head past it (any peer can), after which one of our own producers may
    /// legitimately reuse the slot. A shared reference to bytes that change
    /// is undefined behaviour. Use [`ReadSlot::read_at`] unless all peers
    /// are trusted.
    #[cfg(not(loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        let p = self
            .rx
            .ring
            .regions
            .payload_ptr(self.rx.ring.geo.slot_of(self.pos));
        // p points at the payload of our slot, valid for len <= payload_room
        // bytes while the ring lives (Regions contract).
        // SAFETY: in bounds and alive (above); the caller vouches that nobody
        // writes these bytes meanwhile.
        unsafe { core::slice::from_raw_parts(p, self.snap.len) }
    }
}

impl<R: Regions> Drop for ReadSlot<'_, R> {
    fn drop(&mut self) {
        self.rx.advance(self.pos.wrapping_add(1), true);
    }
}
