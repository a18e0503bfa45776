//! A hostile peer: legal operations on a ring, interleaved with arbitrary
//! stores into its shared memory — the header words, the waiter bitmap, the
//! subscriber table, slot headers and payloads — including between a claim
//! and its commit and while a zero-copy read is open.
//!
//! Our side may return nonsense but must stay sane (DESIGN.md "Trust and
//! failure model"): no panic, no access outside the regions (ASan, and the
//! index asserts of `RawRegions`), every call returns (libFuzzer's
//! `-timeout` catches a loop that does not end), lengths are clamped
//! (`info.len <= buf.len()`, `<= max_message`), wake sets only name
//! entries of the table, and the private geometry never changes. The
//! dead-peer recovery (step-over, eviction) runs over the same memory.

#![no_main]

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use common::*;
use libfuzzer_sys::fuzz_target;
use shmcast_core::layout::{ControlHeader, SlotHeader};
use shmcast_core::{
    Config, Envelope, Geometry, HeapRegions, HeapRing, MessageInfo, Producer, Receiver, Regions,
    SubscriberId, TryRecvError, TrySendError, WakeSet,
};

#[derive(Debug, Arbitrary)]
struct Input {
    mode: AnyMode,
    capacity: SmallCapacity,
    max_message: MaxMessage,
    table: HostileTable,
    ops: Vec<HostileOp>,
}

/// 1 to 70 entries: sometimes a second waiter-bitmap word.
#[derive(Debug)]
struct HostileTable(u32);

impl<'a> Arbitrary<'a> for HostileTable {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(HostileTable(if bool::arbitrary(u)? {
            u.int_in_range(1..=6)?
        } else {
            u.int_in_range(1..=70)?
        }))
    }
}

#[derive(Debug, Arbitrary)]
enum HostileOp {
    /// What a well-behaved process does.
    Legal(Op),
    /// What the hostile peer does.
    Scribble(Scribble),
    /// A claim with the peer scribbling after each step of the guard.
    ClaimUnder(ClaimOp, Few<Scribble, 4>),
    /// A zero-copy read with the peer scribbling while the guard is open.
    ReadUnder {
        r: Pick,
        scribbles: Few<Scribble, 4>,
        offset: Len,
        win: Len,
    },
    /// Read-only queries a blocking layer or a tool makes.
    Query(Pick),
    /// What the dead-peer recovery of a process does over whatever the
    /// peer wrote: a receiver steps over the position it waits at if the
    /// claiming senders are "dead" (as the liveness probe says), and an
    /// entry is evicted as dead.
    DeadPeer {
        r: Pick,
        dead: bool,
        evict: Pick,
    },
}

/// One store by the peer.
#[derive(Debug, Arbitrary)]
enum Scribble {
    Header(HeaderWord, Value),
    Bitmap(Pick, Value),
    Entry(Pick, EntryWord, Value),
    Slot(Pick, SlotWord, Value),
    /// A 4-byte store anywhere in the control region (`offset` is taken
    /// modulo its size, 4-aligned).
    Control(u32, Value),
    /// A 4-byte store anywhere in the data region, payloads included.
    Data(u32, Value),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum HeaderWord {
    State,
    Tail,
    Head,
    WakeBroadcast,
    RoundRobin,
    ExclusiveReceiver,
    TableHighWater,
    SenderJoined,
    Capacity,
    MaxMessage,
    MaxSubscribers,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum EntryWord {
    State,
    LocalHead,
    Wake,
    ClaimStart,
    ClaimCount,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum SlotWord {
    Seq,
    Len,
    Sender,
    Target,
    Flags,
    Tag,
}

/// What gets stored: raw values, and values near the live positions (a
/// forged `seq` or head is far more interesting close to the real ones).
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Value {
    Raw(u64),
    NearTail(i8),
    NearHead(i8),
    Small(u8),
    Max,
    /// A subscriber state word: `generation << 32 | roles << 8 | status`.
    State {
        gen: u8,
        roles: u8,
        status: u8,
    },
}

struct World {
    ring: HeapRing,
    geo: Geometry,
    producers: Vec<Producer<HeapRegions>>,
    receivers: Vec<Receiver<HeapRegions>>,
}

/// Handles kept per kind, at most (joins beyond are dropped at once).
const MAX_HANDLES: usize = 80;

fuzz_target!(|input: Input| {
    let config = Config::new(input.mode.0)
        .capacity(input.capacity.0)
        .max_message(input.max_message.0)
        .max_subscribers(input.table.0);
    let ring = HeapRing::new(&config).expect("the newtypes only build valid configs");
    let geo = *ring.geometry();
    let mut world = World {
        ring,
        geo,
        producers: Vec::new(),
        receivers: Vec::new(),
    };
    for op in input.ops.iter().take(MAX_OPS) {
        world.apply(op);
        assert_eq!(
            *world.ring.geometry(),
            world.geo,
            "private geometry changed"
        );
    }
    // Dropping the handles leaves the ring, over whatever the peer left.
});

/// The peer's view: the ring's memory and the layout it knows.
struct Peer<'a> {
    ring: &'a HeapRing,
    geo: &'a Geometry,
}

impl Peer<'_> {
    fn value(&self, v: Value) -> u64 {
        let (tail, head) = (self.ring.tail(), self.ring.head());
        match v {
            Value::Raw(x) => x,
            Value::NearTail(d) => tail.wrapping_add(d as i64 as u64),
            Value::NearHead(d) => head.wrapping_add(d as i64 as u64),
            Value::Small(x) => x as u64,
            Value::Max => u64::MAX,
            Value::State { gen, roles, status } => {
                (gen as u64) << 32 | ((roles & 3) as u64) << 8 | (status & 3) as u64
            }
        }
    }

    fn scribble(&self, s: &Scribble) {
        let regions = self.ring.regions();
        let hdr = regions.header();
        let store64 = |w: &AtomicU64, v: Value| w.store(self.value(v), Relaxed);
        let store32 = |w: &AtomicU32, v: Value| w.store(self.value(v) as u32, Relaxed);
        match *s {
            Scribble::Header(word, v) => match word {
                HeaderWord::State => store32(&hdr.geometry.state, v),
                HeaderWord::Tail => store64(&hdr.tail, v),
                HeaderWord::Head => store64(&hdr.head, v),
                HeaderWord::WakeBroadcast => store32(&hdr.wake.broadcast, v),
                HeaderWord::RoundRobin => store32(&hdr.wake.round_robin, v),
                HeaderWord::ExclusiveReceiver => store32(&hdr.wake.exclusive_receiver, v),
                HeaderWord::TableHighWater => store32(&hdr.wake.table_high_water, v),
                HeaderWord::SenderJoined => store32(&hdr.wake.sender_joined, v),
                HeaderWord::Capacity => store64(&hdr.geometry.capacity, v),
                HeaderWord::MaxMessage => store32(&hdr.geometry.max_message, v),
                HeaderWord::MaxSubscribers => store32(&hdr.geometry.max_subscribers, v),
            },
            Scribble::Bitmap(i, v) => {
                let w = i.0 as usize % self.geo.bitmap_words();
                store64(regions.waiter_word(w), v);
            }
            Scribble::Entry(i, word, v) => {
                let e = regions.entry(i.0 as usize % self.geo.max_subscribers());
                match word {
                    EntryWord::State => store64(&e.state, v),
                    EntryWord::LocalHead => store64(&e.local_head, v),
                    EntryWord::Wake => store32(&e.wake, v),
                    EntryWord::ClaimStart => store64(&e.claim_start, v),
                    EntryWord::ClaimCount => store32(&e.claim_count, v),
                }
            }
            Scribble::Slot(i, word, v) => {
                let slot = regions.slot(i.0 as usize % self.geo.capacity() as usize);
                match word {
                    SlotWord::Seq => store64(&slot.seq, v),
                    SlotWord::Len => store32(&slot.len, v),
                    SlotWord::Sender => store32(&slot.sender, v),
                    SlotWord::Target => store32(&slot.target, v),
                    SlotWord::Flags => store32(&slot.flags, v),
                    SlotWord::Tag => store64(&slot.tag, v),
                }
            }
            Scribble::Control(offset, v) => {
                let base = (hdr as *const ControlHeader).cast::<u8>();
                let at = (offset as usize % (self.geo.control_size() / 4)) * 4;
                // `HeapRegions` lays the control region out as one block of
                // `control_size` bytes starting at the header; `at + 4 <=
                // control_size` and `at` is 4-aligned (the block is 128-aligned).
                // SAFETY: in bounds and aligned (above); every access to that
                // memory, ours and the ring's, is atomic, as a peer's would be.
                let word = unsafe { AtomicU32::from_ptr(base.add(at).cast::<u32>().cast_mut()) };
                store32(word, v);
            }
            Scribble::Data(offset, v) => {
                let base = (regions.slot(0) as *const SlotHeader).cast::<u8>();
                let at = (offset as usize % (self.geo.data_size() / 4)) * 4;
                // As above, for the data block of `data_size` bytes that
                // starts with slot 0.
                // SAFETY: in bounds and aligned; payload bytes are only
                // accessed atomically by the ring (core's copy module).
                let word = unsafe { AtomicU32::from_ptr(base.add(at).cast::<u32>().cast_mut()) };
                store32(word, v);
            }
        }
    }
}

impl World {
    fn peer(&self) -> Peer<'_> {
        Peer {
            ring: &self.ring,
            geo: &self.geo,
        }
    }

    fn apply(&mut self, op: &HostileOp) {
        match op {
            HostileOp::Legal(op) => self.legal(op),
            HostileOp::Scribble(s) => self.peer().scribble(s),
            HostileOp::ClaimUnder(claim, scribbles) => self.claim(claim, &scribbles.0),
            HostileOp::ReadUnder {
                r,
                scribbles,
                offset,
                win,
            } => self.read(*r, &scribbles.0, offset.0, win.0),
            HostileOp::Query(i) => self.query(SubscriberId(i.0 as u32 % 80)),
            HostileOp::DeadPeer { r, dead, evict } => self.dead_peer(*r, *dead, *evict),
        }
    }

    fn dead_peer(&mut self, r: Pick, dead: bool, evict: Pick) {
        if let Some(i) = pick(r, self.receivers.len()) {
            let rx = &self.receivers[i];
            let before = rx.next_position();
            if rx.step_over_dead_claim(|id, _| {
                assert!(id.index() < self.geo.max_subscribers(), "judged {id}");
                dead
            }) {
                // One position, forward (multicast: the shared head, which
                // the peer may have moved meanwhile; only ours is checked).
                if self.geo.mode() != shmcast_core::Mode::Multicast {
                    assert_eq!(rx.next_position(), before.wrapping_add(1));
                }
            }
        }
        let id = SubscriberId(evict.0 as u32 % 80);
        let ring = &self.ring;
        let _ = ring.claim_pending(id);
        if id.index() < self.geo.max_subscribers() {
            let state = ring.regions().entry(id.index()).state.load(Relaxed);
            let _ = ring.evict(id, shmcast_core::layout::entry_generation(state));
        } else {
            assert!(!ring.evict(id, 0), "evicted {id} outside the table");
        }
        let mut held = [(SubscriberId(0), 0); 8];
        let n = ring.holding_receivers(&mut held);
        assert!(n <= held.len());
        for (id, _) in &held[..n] {
            assert!(id.index() < self.geo.max_subscribers(), "holding: {id}");
        }
    }

    fn query(&self, id: SubscriberId) {
        let ring = &self.ring;
        let _ = (
            ring.head(),
            ring.tail(),
            ring.is_closed(),
            ring.senders_gone(),
        );
        assert!(ring.active_subscribers() <= self.geo.max_subscribers());
        let inside = id.index() < self.geo.max_subscribers();
        assert_eq!(ring.counters(id).is_some(), inside);
        assert_eq!(ring.wake_word(id).is_some(), inside);
        if !inside {
            assert!(!ring.is_receiver(id));
        }
        let _ = ring.header_words();
    }

    fn legal(&mut self, op: &Op) {
        let max = self.geo.max_message();
        match op {
            Op::Join(role) => {
                let ring = self.ring.clone();
                match role {
                    JoinAs::Producer => {
                        if let Ok(p) = ring.producer() {
                            self.keep_producer(p);
                        }
                    }
                    JoinAs::Receiver => {
                        if let Ok(r) = ring.receiver() {
                            self.keep_receiver(r);
                        }
                    }
                    JoinAs::Duplex => {
                        if let Ok((p, r)) = ring.duplex() {
                            assert_eq!(p.id(), r.id());
                            self.keep_producer(p);
                            self.keep_receiver(r);
                        }
                    }
                }
            }
            Op::Leave(LeaveOp::Producer(p)) => {
                if !self.producers.is_empty() {
                    let i = p.0 as usize % self.producers.len();
                    drop(self.producers.swap_remove(i));
                }
            }
            Op::Leave(LeaveOp::Receiver(r)) => {
                if !self.receivers.is_empty() {
                    let i = r.0 as usize % self.receivers.len();
                    drop(self.receivers.swap_remove(i));
                }
            }
            Op::Send(send) => {
                let Some(i) = pick(send_pick(send), self.producers.len()) else {
                    return;
                };
                let tx = &self.producers[i];
                match send {
                    SendOp::One { data, tag, .. } => check_send(
                        tx.try_send_with(Envelope::tagged(tag.0), &data.0),
                        &data.0,
                        max,
                    ),
                    SendOp::To { target, data, .. } => check_send(
                        tx.try_send_to(SubscriberId(target.0), &data.0),
                        &data.0,
                        max,
                    ),
                    SendOp::With {
                        target, tag, data, ..
                    } => {
                        let env = Envelope {
                            target: target.map(|t| SubscriberId(t.0)),
                            tag: tag.0,
                        };
                        check_send(tx.try_send_with(env, &data.0), &data.0, max)
                    }
                    SendOp::Batch { msgs, .. } => {
                        let refs: Vec<&[u8]> = msgs.0.iter().map(|m| m.0.as_slice()).collect();
                        let too_large = refs.iter().any(|m| m.len() > max);
                        match tx.try_send_batch(&refs) {
                            Ok(k) => {
                                assert!(!too_large);
                                assert!(k <= refs.len());
                                assert_eq!(k == 0, refs.is_empty());
                            }
                            Err(TrySendError::TooLarge { len, max: m }) => {
                                assert!(too_large && len > max && m == max)
                            }
                            Err(_) => assert!(!too_large && !refs.is_empty()),
                        }
                    }
                }
            }
            Op::Claim(claim) => self.claim(claim, &[]),
            Op::Recv(RecvOp::Recv { r, buf }) => {
                if let Some(i) = pick(*r, self.receivers.len()) {
                    let _ = self.recv_one(i, buf.0);
                }
            }
            Op::Recv(RecvOp::Drain { r, buf }) => {
                if let Some(i) = pick(*r, self.receivers.len()) {
                    // Bounded by us: a peer can make a receiver look
                    // non-empty forever, so a drain stops after a few laps.
                    for _ in 0..3 * self.geo.capacity() + 3 {
                        if self.recv_one(i, buf.0).is_err() {
                            break;
                        }
                    }
                }
            }
            Op::Recv(RecvOp::Batch { r, buf, max }) => {
                if let Some(i) = pick(*r, self.receivers.len()) {
                    self.recv_batch(i, buf.0, usize::from(max % 9));
                }
            }
            Op::Recv(RecvOp::Read { r, offset, win }) => self.read(*r, &[], offset.0, win.0),
            Op::Wait(w) => self.wait(w),
            Op::Close(Rare(false)) => {}
            Op::Close(Rare(true)) => {
                let set = self.ring.close();
                self.check_wake_set(&set);
                assert!(self.ring.is_closed());
            }
        }
    }

    fn keep_producer(&mut self, p: Producer<HeapRegions>) {
        assert!(p.id().index() < self.geo.max_subscribers());
        if self.producers.len() < MAX_HANDLES {
            self.producers.push(p);
        }
    }

    fn keep_receiver(&mut self, r: Receiver<HeapRegions>) {
        assert!(r.id().index() < self.geo.max_subscribers());
        if self.receivers.len() < MAX_HANDLES {
            self.receivers.push(r);
        }
    }

    fn claim(&mut self, op: &ClaimOp, scribbles: &[Scribble]) {
        let Some(i) = pick(op.p, self.producers.len()) else {
            return;
        };
        let max = self.geo.max_message();
        let env = Envelope {
            target: op.target.map(|t| SubscriberId(t.0)),
            tag: op.tag.0,
        };
        let peer = Peer {
            ring: &self.ring,
            geo: &self.geo,
        };
        let tx = &mut self.producers[i];
        {
            let Ok(mut slot) = tx.try_claim_with(env) else {
                return;
            };
            assert_eq!(slot.capacity(), max);
            let id = slot.id();
            let mut scribbles = scribbles.iter();
            let mut len = 0;
            for step in &op.steps.0 {
                // The guard's own bookkeeping is private: whatever the peer
                // does, writes within max_message succeed, others fail.
                match step {
                    ClaimStep::WriteAt(off, data) => {
                        let ok = off.0 + data.0.len() <= max;
                        assert_eq!(slot.write_at(off.0, &data.0).is_ok(), ok);
                        if ok {
                            len = len.max(off.0 + data.0.len());
                        }
                    }
                    ClaimStep::Append(data) => {
                        let ok = len + data.0.len() <= max;
                        assert_eq!(slot.append(&data.0).is_ok(), ok);
                        if ok {
                            len += data.0.len();
                        }
                    }
                    ClaimStep::SetLen(l) => {
                        assert_eq!(slot.set_len(l.0).is_ok(), l.0 <= max);
                        if l.0 <= max {
                            len = l.0;
                        }
                    }
                    ClaimStep::SetTag(t) => slot.set_tag(*t),
                }
                assert_eq!(slot.len(), len);
                if let Some(s) = scribbles.next() {
                    peer.scribble(s);
                }
            }
            for s in scribbles {
                peer.scribble(s);
            }
            if op.commit {
                assert_eq!(slot.commit(), id);
            }
        }
    }

    fn recv_one(&self, i: usize, buf_len: usize) -> Result<MessageInfo, TryRecvError> {
        let mut buf = vec![0u8; buf_len];
        let got = self.receivers[i].try_recv(&mut buf);
        match &got {
            Ok(info) => self.check_info(info, buf_len),
            Err(TryRecvError::Lagged(n)) => assert!(*n >= 1, "Lagged(0)"),
            Err(TryRecvError::ZeroCopyUnsupported) => panic!("try_recv never says that"),
            Err(_) => {}
        }
        got
    }

    /// `try_recv_batch` under a hostile writer: whatever the peer wrote, the
    /// batch stays inside `buf` and `infos`, every info is sane, only the
    /// first message may be truncated, and ids increase (wrapping).
    fn recv_batch(&self, i: usize, buf_len: usize, max: usize) {
        let mut buf = vec![0u8; buf_len];
        let mut infos = vec![MessageInfo::default(); max];
        match self.receivers[i].try_recv_batch(&mut buf, &mut infos) {
            Ok(n) => {
                assert!(n <= max, "{n} messages for {max} infos");
                assert!(n >= 1 || max == 0, "Ok(0) with room for {max}");
                let mut used = 0;
                for (k, info) in infos[..n].iter().enumerate() {
                    self.check_info(info, buf_len - used);
                    if k > 0 {
                        assert!(
                            !info.truncated(),
                            "message {k} of a batch truncated: {info:?}"
                        );
                        // Positions are u64 and wrap: a peer that moved the
                        // tail or a head near u64::MAX makes ids run
                        // through 0. Each still follows the one before
                        // within one lap.
                        let step = info.id.wrapping_sub(infos[k - 1].id);
                        assert!(
                            (1..=self.geo.capacity()).contains(&step),
                            "ids increase (wrapping, within a lap): {:?}",
                            &infos[..n]
                        );
                    }
                    used += info.len;
                }
                assert!(used <= buf_len, "{used} bytes delivered into {buf_len}");
            }
            Err(TryRecvError::Lagged(n)) => assert!(n >= 1, "Lagged(0)"),
            Err(TryRecvError::ZeroCopyUnsupported) => panic!("try_recv_batch never says that"),
            Err(_) => {}
        }
    }

    fn check_info(&self, info: &MessageInfo, buf_len: usize) {
        let max = self.geo.max_message();
        assert!(info.len <= buf_len, "{info:?} into {buf_len} B");
        assert!(info.len <= max, "{info:?}: len over max_message {max}");
        assert!(info.message_len <= max, "{info:?}: message_len over {max}");
        assert_eq!(info.len, info.message_len.min(buf_len), "{info:?}");
    }

    fn read(&mut self, r: Pick, scribbles: &[Scribble], offset: usize, win: usize) {
        let Some(i) = pick(r, self.receivers.len()) else {
            return;
        };
        let max = self.geo.max_message();
        let peer = Peer {
            ring: &self.ring,
            geo: &self.geo,
        };
        match self.receivers[i].try_read() {
            Ok(slot) => {
                let len = slot.len();
                assert!(len <= max, "zero-copy len {len} over {max}");
                assert_eq!(slot.info().len, len);
                for s in scribbles {
                    peer.scribble(s);
                }
                let mut w = vec![0u8; win];
                let n = slot.read_at(offset, &mut w);
                assert_eq!(n, len.saturating_sub(offset).min(win));
                assert_eq!(slot.len(), len, "the guard's length is private");
            }
            Err(TryRecvError::Lagged(n)) => assert!(n >= 1),
            Err(TryRecvError::ZeroCopyUnsupported) => {
                assert_eq!(self.geo.mode(), shmcast_core::Mode::Multicast)
            }
            Err(_) => {}
        }
    }

    fn wait(&mut self, w: &WaitOp) {
        match *w {
            WaitOp::Prepare(r) => {
                if let Some(i) = pick(r, self.receivers.len()) {
                    if let Some(token) = self.receivers[i].prepare_wait() {
                        // A backend that polls checks this; it must not hang.
                        let _ = token.is_woken();
                    }
                }
            }
            WaitOp::Finish(r) => {
                if let Some(i) = pick(r, self.receivers.len()) {
                    self.receivers[i].finish_wait();
                }
            }
            WaitOp::WakeSet(p, n) => {
                if let Some(i) = pick(p, self.producers.len()) {
                    let set = self.producers[i].wake_set(n.0);
                    self.check_wake_set(&set);
                    let _ = self.producers[i].has_sleepers();
                }
            }
            WaitOp::WakeFor(p, t) => {
                if let Some(i) = pick(p, self.producers.len()) {
                    let set = self.producers[i].wake_set_for(SubscriberId(t.0));
                    self.check_wake_set(&set);
                    assert!(set.len() <= 1);
                    assert!(set.receivers().all(|id| id.0 == t.0));
                }
            }
            WaitOp::WakeAll => {
                let set = self.ring.wake_all();
                self.check_wake_set(&set);
            }
        }
    }

    /// A wake set only names entries of the table: the notify layer indexes
    /// its per-entry wake words and eventfds with them.
    fn check_wake_set(&self, set: &WakeSet) {
        let table = self.geo.max_subscribers();
        assert!(set.len() <= table);
        for id in set.receivers() {
            assert!(id.index() < table, "wake set names {id}, table has {table}");
        }
    }
}

fn pick(p: Pick, n: usize) -> Option<usize> {
    p.index(n)
}

fn send_pick(op: &SendOp) -> Pick {
    match op {
        SendOp::One { p, .. }
        | SendOp::To { p, .. }
        | SendOp::With { p, .. }
        | SendOp::Batch { p, .. } => *p,
    }
}

fn check_send(got: Result<u64, TrySendError>, data: &[u8], max: usize) {
    match got {
        Ok(_) => assert!(data.len() <= max),
        Err(TrySendError::TooLarge { len, max: m }) => {
            assert_eq!((len, m), (data.len(), max));
            assert!(len > max);
        }
        Err(_) => assert!(data.len() <= max, "an oversize send must say TooLarge"),
    }
}
