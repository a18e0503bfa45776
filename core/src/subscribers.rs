//! The subscriber table: join, leave, and the broadcast min-head scan. The
//! only code that iterates over all entries.
//!
//! # The join race (broadcast)
//!
//! A new broadcast receiver starts at the current tail, and must be counted by
//! every min-head scan that could let a producer overwrite the position it
//! starts at. A scan reads `tail` (T0), then `fence(SeqCst)`, then the entries,
//! and raises `head` to `min(T0, local heads)`. A joiner publishes its entry
//! (state ACTIVE, Release), then `fence(SeqCst)`, then reads `tail` again (t1)
//! and starts there. Either the scan saw the entry, and its minimum is at most
//! the joiner's provisional head, which is at most t1; or it missed it, which
//! puts the scan's fence before the joiner's in the single SeqCst order, so the
//! joiner's tail load after its fence cannot read an older value than the
//! scan's load before its fence (C++20 [atomics.order] p4), i.e. T0 <= t1. In
//! both cases the scan's result is at most t1, and nothing at or after t1 can
//! be overwritten before the joiner reads it. A stale scan that finishes its
//! `fetch_max` long after is covered by the same argument: the argument is
//! about what it read, not when it writes.

use crate::error::JoinError;
use crate::layout::{ENTRY_ACTIVE, ENTRY_FREE, ROLE_RECV, ROLE_SEND};
use crate::mode::Mode;
use crate::ring::{Ring, Role, SubscriberId};
use crate::storage::Regions;
use crate::sync::atomic::{fence, Ordering::*};

/// Entry status while a broadcast receiver is joining: scans skip it.
pub(crate) const ENTRY_JOINING: u64 = 2;
use crate::layout::ENTRY_STATUS_MASK as STATUS_MASK;
const ROLE_MASK: u64 = ROLE_SEND | ROLE_RECV;

/// What `join` hands the new handle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Joined {
    pub(crate) id: SubscriberId,
    pub(crate) gen: u32,
    /// Broadcast / unicast receivers: the first position to read.
    pub(crate) start: u64,
}

pub(crate) use crate::layout::entry_generation as generation;

fn pack(gen: u32, roles: u64, status: u64) -> u64 {
    ((gen as u64) << 32) | roles | status
}

impl<R: Regions> Ring<R> {
    /// Take a free entry of the table with `role`.
    pub(crate) fn join(&self, role: Role) -> Result<Joined, JoinError> {
        if self.is_closed() {
            return Err(JoinError::Closed);
        }
        if role.can_send() && !self.regions.data_writable() {
            return Err(JoinError::ReadOnly);
        }
        let hdr = self.regions.header();
        let recv = role.can_recv();
        let broadcast_recv = recv && self.geo.mode() == Mode::Broadcast;
        let max = self.geo.max_subscribers();
        for i in 0..max {
            let entry = self.regions.entry(i);
            let s = entry.state.load(Relaxed);
            if s & STATUS_MASK != ENTRY_FREE {
                continue;
            }
            let gen = generation(s).wrapping_add(1);
            let status = if recv { ENTRY_JOINING } else { ENTRY_ACTIVE };
            // ORDERING(entry): Acquire on success, so what the previous
            // holder stored before releasing the entry (Release in `leave`)
            // is visible before we overwrite it. Relaxed on failure: we
            // just move on.
            if entry
                .state
                .compare_exchange(s, pack(gen, role.bits(), status), Acquire, Relaxed)
                .is_err()
            {
                continue;
            }
            let id = SubscriberId(i as u32);
            hdr.wake.table_high_water.fetch_max(i as u32 + 1, Relaxed);
            entry.notify_info.store(0, Relaxed);
            entry.liveness.store(0, Relaxed);
            entry.backend.store(0, Relaxed);
            entry.claim_count.store(0, Relaxed);
            entry.sent.store(0, Relaxed);
            entry.received.store(0, Relaxed);
            entry.lagged.store(0, Relaxed);
            let mut start = 0;
            if recv {
                match self.geo.mode() {
                    Mode::Unicast => {
                        // ORDERING(exclusive): Acquire pairs with the Release
                        // in `leave`, so we start where the last receiver's
                        // head store left off.
                        if hdr
                            .wake
                            .exclusive_receiver
                            .compare_exchange(0, i as u32 + 1, Acquire, Relaxed)
                            .is_err()
                        {
                            entry.state.store(pack(gen, 0, ENTRY_FREE), Release);
                            return Err(JoinError::ReceiverTaken);
                        }
                        // ORDERING(head): Acquire; pairs with the previous
                        // receiver's Release store of head.
                        start = hdr.head.load(Acquire);
                    }
                    Mode::Broadcast => {
                        let provisional = hdr.tail.load(Relaxed);
                        entry.local_head.store(provisional, Relaxed);
                    }
                    Mode::Multicast => {}
                }
                // ORDERING(entry): Release; pairs with the Acquire state load
                // in `raise_min_head`, so a scan that sees
                // ACTIVE also sees the provisional local_head.
                entry
                    .state
                    .store(pack(gen, role.bits(), ENTRY_ACTIVE), Release);
                if broadcast_recv {
                    // ORDERING(join): SeqCst fence; pairs with the fence in
                    // `raise_min_head`. See the module doc for the proof.
                    fence(SeqCst);
                    start = hdr.tail.load(Relaxed);
                    // ORDERING(local_head): Release, as every local_head store.
                    entry.local_head.store(start, Release);
                }
            }
            // Only once the join can no longer fail (a duplex join of a
            // unicast ring is refused above when the receiver is taken):
            // a refused join must not make `senders_gone` report true.
            if role.can_send() {
                hdr.wake.sender_joined.store(1, Relaxed);
            }
            return Ok(Joined { id, gen, start });
        }
        Err(JoinError::TableFull { max: max as u32 })
    }

    /// Give up `role` on entry `id` (if it is still ours, generation `gen`).
    /// The entry is freed when no role is left.
    pub(crate) fn leave(&self, id: SubscriberId, gen: u32, role: Role) {
        let hdr = self.regions.header();
        let entry = self.regions.entry(id.index());
        let mut s = entry.state.load(Relaxed);
        // Bounded: a peer that keeps rewriting our entry could otherwise keep
        // us here; after that many tries the entry is theirs anyway.
        for _ in 0..1024 {
            if generation(s) != gen || s & STATUS_MASK == ENTRY_FREE {
                return; // Not ours any more: someone reclaimed it.
            }
            let left = s & ROLE_MASK & !role.bits();
            let new = if left == 0 {
                pack(gen, 0, ENTRY_FREE)
            } else {
                pack(gen, left, s & STATUS_MASK)
            };
            // ORDERING(entry): Release; pairs with the Acquire CAS in `join`
            // and the Acquire state loads of scans.
            match entry.state.compare_exchange_weak(s, new, Release, Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if role.can_recv() {
            let bit = 1u64 << (id.index() % 64);
            self.regions
                .waiter_word(id.index() / 64)
                .fetch_and(!bit, Relaxed);
            match self.geo.mode() {
                Mode::Unicast => {
                    // ORDERING(exclusive): Release; pairs with the Acquire CAS
                    // in `join`, publishing our last head store.
                    let _ =
                        hdr.wake
                            .exclusive_receiver
                            .compare_exchange(id.0 + 1, 0, Release, Relaxed);
                }
                Mode::Broadcast => {
                    // Let producers blocked on us move on right away.
                    self.raise_min_head();
                }
                Mode::Multicast => {}
            }
        }
    }

    /// Whether a sender ever joined and none is attached now (so a drained
    /// unicast ring will get no more messages, barring a new sender).
    /// Scans the table up to its high-water mark.
    pub fn senders_gone(&self) -> bool {
        let hdr = self.regions.header();
        if hdr.wake.sender_joined.load(Relaxed) == 0 {
            return false;
        }
        let high =
            (hdr.wake.table_high_water.load(Relaxed) as usize).min(self.geo.max_subscribers());
        !(0..high).any(|i| {
            // ORDERING(entry): Acquire; pairs with the Release CAS in
            // `leave`, so a receiver that sees the last sender gone also sees
            // the messages it published before leaving.
            let s = self.regions.entry(i).state.load(Acquire);
            s & STATUS_MASK == ENTRY_ACTIVE && s & ROLE_SEND != 0
        })
    }

    /// The receivers that keep the ring full: the unicast receiver; the
    /// broadcast receivers whose `local_head` is the lowest (at most
    /// `out.len()` of them are written; returns how many). Each comes with
    /// its entry's generation, for [`Ring::evict`]. Multicast: none (a
    /// receiver there holds nobody up). What a sender that finds the ring
    /// full asks about before it checks whether they are alive.
    pub fn holding_receivers(&self, out: &mut [(SubscriberId, u32)]) -> usize {
        let hdr = self.regions.header();
        let max = self.geo.max_subscribers();
        let active_recv = |i: usize| {
            let s = self.regions.entry(i).state.load(Relaxed);
            (s & STATUS_MASK == ENTRY_ACTIVE && s & ROLE_RECV != 0).then(|| generation(s))
        };
        match self.geo.mode() {
            Mode::Unicast => {
                // Relaxed: a hint, re-checked by `evict`'s CAS on the entry.
                let held = hdr.wake.exclusive_receiver.load(Relaxed) as usize;
                match (held.checked_sub(1).filter(|&i| i < max), out.first_mut()) {
                    (Some(i), Some(slot)) => match active_recv(i) {
                        Some(gen) => {
                            *slot = (SubscriberId(i as u32), gen);
                            1
                        }
                        None => 0,
                    },
                    _ => 0,
                }
            }
            Mode::Broadcast => {
                let high = (hdr.wake.table_high_water.load(Relaxed) as usize).min(max);
                let mut min = u64::MAX;
                for i in 0..high {
                    if active_recv(i).is_some() {
                        min = min.min(self.regions.entry(i).local_head.load(Relaxed));
                    }
                }
                let mut n = 0;
                for i in 0..high {
                    if n == out.len() {
                        break;
                    }
                    if let Some(gen) = active_recv(i) {
                        if self.regions.entry(i).local_head.load(Relaxed) == min {
                            out[n] = (SubscriberId(i as u32), gen);
                            n += 1;
                        }
                    }
                }
                n
            }
            Mode::Multicast => 0,
        }
    }

    /// Free entry `id`, held by generation `gen`, for a holder known to be
    /// gone (its process died): what its own drop would have done: the
    /// entry freed, its waiter bit cleared, a unicast ring's receiver slot
    /// released (the next receiver starts at the dead one's head: what it
    /// had read but not yet released, one message or a batch, is delivered
    /// again), a broadcast head
    /// raised past it. Returns false, doing nothing, if the entry is no
    /// longer generation `gen`'s. A holder that is alive after all finds its
    /// handles detached (`Detached`), as after any peer's reclaim.
    pub fn evict(&self, id: SubscriberId, gen: u32) -> bool {
        if id.index() >= self.geo.max_subscribers() {
            return false;
        }
        let s = self.regions.entry(id.index()).state.load(Relaxed);
        if generation(s) != gen || s & STATUS_MASK == ENTRY_FREE {
            return false;
        }
        self.leave(id, gen, Role::Both);
        true
    }

    /// Whether entry `id`'s claim record names a position that may still
    /// hold receivers up: claimed (below the tail), at or past the shared
    /// head, and not published. Only the record's last position is looked
    /// at: a sender publishes the positions of a claim in order, so if any
    /// of them is unpublished, the last is. A record at or past the tail
    /// (a sender that died between writing it and its claim CAS) holds
    /// nobody. A dead sender with a pending record is left in the table
    /// (not evicted): receivers need its record to step over the position
    /// (see `Receiver::step_over_dead_claim`), and a join would clear it.
    /// A few loads whatever a peer wrote into the record, plus, in
    /// broadcast, a scan of the table for a record found pending.
    pub fn claim_pending(&self, id: SubscriberId) -> bool {
        if id.index() >= self.geo.max_subscribers() {
            return false;
        }
        let entry = self.regions.entry(id.index());
        // Relaxed: a conservative hint (a stale view keeps the entry, or
        // evicts one whose record a receiver has just passed).
        let count = u64::from(entry.claim_count.load(Relaxed)).min(self.geo.capacity());
        if count == 0 {
            return false;
        }
        let last = entry.claim_start.load(Relaxed).wrapping_add(count - 1);
        let hdr = self.regions.header();
        let head = hdr.head.load(Relaxed);
        let tail = hdr.tail.load(Relaxed);
        if last.wrapping_sub(head) >= tail.wrapping_sub(head) {
            return false; // consumed, or never claimed
        }
        let seq = self.regions.slot(self.geo.slot_of(last)).seq.load(Relaxed);
        if seq == last.wrapping_add(1) {
            return false; // published
        }
        // Broadcast: the shared head is raised lazily, and may still be
        // below a position every receiver has passed (stepped over): raise
        // it (a table scan, only for a record found pending) and look
        // again. `last` is below the tail (above).
        self.geo.mode() != Mode::Broadcast || last.wrapping_sub(self.raise_min_head()) < (1 << 63)
    }

    /// Whether entry `id` still belongs to the handle of generation `gen`.
    #[inline]
    pub(crate) fn owns(&self, id: SubscriberId, gen: u32) -> bool {
        let s = self.regions.entry(id.index()).state.load(Relaxed);
        generation(s) == gen && s & STATUS_MASK != ENTRY_FREE
    }

    /// Broadcast: raise the shared head to the minimum `local_head` of active
    /// receivers (or to the tail if there are none), never lowering it.
    /// Returns the head after the raise.
    pub(crate) fn raise_min_head(&self) -> u64 {
        self.raise_min_head_laggard().0
    }

    /// [`Ring::raise_min_head`], also returning the receiver that holds the
    /// head back (the one whose `local_head` is the minimum, if any): while
    /// its entry and `local_head` stay as they were, the head cannot rise,
    /// so a producer that finds the ring full again may skip the scan.
    pub(crate) fn raise_min_head_laggard(&self) -> (u64, Option<Laggard>) {
        let hdr = self.regions.header();
        let t0 = hdr.tail.load(Relaxed);
        // ORDERING(join): SeqCst fence; pairs with the joiner's fence in
        // `join` (module doc).
        fence(SeqCst);
        let high =
            (hdr.wake.table_high_water.load(Relaxed) as usize).min(self.geo.max_subscribers());
        let mut min = t0;
        let mut laggard = None;
        for i in 0..high {
            let entry = self.regions.entry(i);
            // ORDERING(entry): Acquire; pairs with the Release state store in `join`.
            let s = entry.state.load(Acquire);
            if s & STATUS_MASK == ENTRY_ACTIVE && s & ROLE_RECV != 0 {
                // ORDERING(local_head): Acquire; pairs with the receiver's
                // Release store after it finished reading the position below,
                // so a producer that reuses that slot (after the Release
                // fetch_max below and its own Acquire load of head) writes
                // after the receiver's read.
                let lh = entry.local_head.load(Acquire);
                // A peer can store any value: one above t0 cannot hold the
                // head back (it reads nothing below t0), so it is ignored.
                if lh < min {
                    min = lh;
                    laggard = Some(Laggard {
                        index: i,
                        state: s,
                        local_head: lh,
                    });
                }
            }
        }
        // ORDERING(head): AcqRel; Release pairs with producers' Acquire
        // loads of head (carrying the receivers' reads, above); Acquire keeps
        // the chain when another scan raised it further.
        let prev = hdr.head.fetch_max(min, AcqRel);
        (prev.max(min), laggard)
    }

    /// Whether the receiver recorded by a scan still holds the head where
    /// the scan found it (same entry state, same `local_head`).
    pub(crate) fn laggard_unchanged(&self, l: &Laggard) -> bool {
        if l.index >= self.geo.max_subscribers() {
            return false;
        }
        let entry = self.regions.entry(l.index);
        // Relaxed: only decides whether to report Full without a scan; no
        // slot is reused on the strength of these loads.
        entry.state.load(Relaxed) == l.state && entry.local_head.load(Relaxed) == l.local_head
    }
}

/// The receiver found holding the head back by a min-head scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Laggard {
    index: usize,
    state: u64,
    local_head: u64,
}

impl Laggard {
    /// Where the scan found it.
    pub(crate) fn local_head(&self) -> u64 {
        self.local_head
    }
}
