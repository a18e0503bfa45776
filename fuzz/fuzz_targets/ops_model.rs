//! Arbitrary operation sequences on a real `HeapRing`, in every mode, with
//! 1 to 4 slots, checked against the `VecDeque` oracle after every operation.
//!
//! Each operation's result is predicted exactly by the oracle (ids, `Full`,
//! batch counts, which receiver gets what, truncation, who is woken), and
//! `World::check_invariants` compares the ring's shared words with the
//! oracle after every step (im-rs's `assert_invariants()` shape).

#![no_main]

mod common;

use arbitrary::Arbitrary;
use common::oracle::{Msg, Oracle};
use common::*;
use libfuzzer_sys::fuzz_target;
use shmcast_core::{
    Config, Envelope, HeapRegions, HeapRing, MessageInfo, Mode, Producer, Receiver, Regions,
    SubscriberId, TryRecvError, TrySendError, WakeSet,
};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Debug, Arbitrary)]
struct Input {
    mode: AnyMode,
    capacity: TinyCapacity,
    max_message: MaxMessage,
    table: TableSize,
    ops: Vec<Op>,
}

/// The real ring, its handles, and the oracle.
struct World {
    ring: HeapRing,
    producers: Vec<Option<Producer<HeapRegions>>>,
    receivers: Vec<Option<Receiver<HeapRegions>>>,
    /// Per receiver handle: the id of the last message it got.
    last_id: Vec<Option<u64>>,
    oracle: Oracle,
}

fuzz_target!(|input: Input| {
    let config = Config::new(input.mode.0)
        .capacity(input.capacity.0)
        .max_message(input.max_message.0)
        .max_subscribers(input.table.0);
    let ring = HeapRing::new(&config).expect("the newtypes only build valid configs");
    let table = input.table.0 as usize;
    let mut world = World {
        ring,
        producers: (0..table).map(|_| None).collect(),
        receivers: (0..table).map(|_| None).collect(),
        last_id: vec![None; table],
        oracle: Oracle::new(
            input.mode.0,
            input.capacity.0,
            input.max_message.0 as usize,
            table,
        ),
    };
    world.check_invariants();
    for op in input.ops.iter().take(MAX_OPS) {
        world.apply(op);
        world.check_invariants();
    }
});

fn payload_matches(got: &[u8], want: &[Option<u8>]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| w.is_none_or(|w| w == *g))
}

impl World {
    fn max(&self) -> usize {
        self.oracle.max_message
    }

    fn producer(&self, p: Pick) -> Option<u32> {
        p.of(&self.oracle.producers())
    }

    fn receiver(&self, r: Pick) -> Option<u32> {
        r.of(&self.oracle.receivers())
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Join(role) => self.join(*role),
            Op::Leave(LeaveOp::Producer(p)) => {
                if let Some(p) = self.producer(*p) {
                    self.oracle.leave_producer(p);
                    drop(self.producers[p as usize].take());
                }
            }
            Op::Leave(LeaveOp::Receiver(r)) => {
                if let Some(r) = self.receiver(*r) {
                    self.oracle.leave_receiver(r);
                    drop(self.receivers[r as usize].take());
                    self.last_id[r as usize] = None;
                }
            }
            Op::Send(op) => self.send(op),
            Op::Claim(op) => self.claim(op),
            Op::Recv(op) => self.recv(op),
            Op::Wait(op) => self.wait(op),
            Op::Close(Rare(false)) => {}
            Op::Close(Rare(true)) => {
                let before = self.oracle.sleepers.clone();
                let woken = self.ring.close();
                self.oracle.closed = true;
                let want = self.oracle.wake_all();
                self.check_woken(&woken, &want, &before);
                assert!(self.ring.is_closed());
            }
        }
    }

    fn join(&mut self, role: JoinAs) {
        let want = self.oracle.join(role);
        let got = match role {
            JoinAs::Producer => self.ring.producer().map(|p| {
                let id = p.id().0;
                self.install(id, Some(p), None);
                id
            }),
            JoinAs::Receiver => self.ring.receiver().map(|r| {
                let id = r.id().0;
                self.install(id, None, Some(r));
                id
            }),
            JoinAs::Duplex => self.ring.duplex().map(|(p, r)| {
                let id = p.id().0;
                assert_eq!(r.id().0, id, "duplex halves share one entry");
                self.install(id, Some(p), Some(r));
                id
            }),
        };
        assert_eq!(got, want, "join as {role:?}");
    }

    fn install(
        &mut self,
        id: u32,
        p: Option<Producer<HeapRegions>>,
        r: Option<Receiver<HeapRegions>>,
    ) {
        let i = id as usize;
        assert!(
            self.producers[i].is_none() && self.receivers[i].is_none(),
            "join handed out entry {id}, which is still held"
        );
        self.producers[i] = p;
        self.receivers[i] = r;
        self.last_id[i] = None;
    }

    fn tx(&self, p: u32) -> &Producer<HeapRegions> {
        self.producers[p as usize]
            .as_ref()
            .expect("oracle says producer")
    }

    fn send(&mut self, op: &SendOp) {
        match op {
            SendOp::One { p, data, tag } => {
                let Some(p) = self.producer(*p) else { return };
                let want = self
                    .oracle
                    .check_send(data.0.len(), None)
                    .map(|()| self.oracle.push(Some(Msg::plain(p, None, tag.0, &data.0))));
                let tx = self.tx(p);
                let got = if tag.0 == 0 {
                    tx.try_send(&data.0)
                } else {
                    tx.try_send_with(Envelope::tagged(tag.0), &data.0)
                };
                assert_eq!(got, want, "try_send of {} B", data.0.len());
            }
            SendOp::To { p, target, data } => {
                let Some(p) = self.producer(*p) else { return };
                let t = target.0;
                let want = self
                    .oracle
                    .check_send(data.0.len(), Some(t))
                    .map(|()| self.oracle.push(Some(Msg::plain(p, Some(t), 0, &data.0))));
                let got = self.tx(p).try_send_to(SubscriberId(t), &data.0);
                assert_eq!(got, want, "try_send_to #{t}");
            }
            SendOp::With {
                p,
                target,
                tag,
                data,
            } => {
                let Some(p) = self.producer(*p) else { return };
                let t = target.map(|t| t.0);
                let want = self
                    .oracle
                    .check_send(data.0.len(), t)
                    .map(|()| self.oracle.push(Some(Msg::plain(p, t, tag.0, &data.0))));
                let env = Envelope {
                    target: t.map(SubscriberId),
                    tag: tag.0,
                };
                let got = self.tx(p).try_send_with(env, &data.0);
                assert_eq!(got, want, "try_send_with {env:?}");
            }
            SendOp::Batch { p, msgs } => {
                let Some(p) = self.producer(*p) else { return };
                let msgs: Vec<Vec<u8>> = msgs.0.iter().map(|m| m.0.clone()).collect();
                let first = self.oracle.tail;
                let want = self.oracle.batch(p, &msgs);
                let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                let got = self.tx(p).try_send_batch(&refs);
                assert_eq!(got, want, "try_send_batch of {} at {first}", msgs.len());
            }
        }
    }

    fn claim(&mut self, op: &ClaimOp) {
        let Some(p) = self.producer(op.p) else { return };
        let target = op.target.map(|t| t.0);
        let max = self.max();
        let want = self.oracle.check_claim(target);
        let tx = self.producers[p as usize]
            .as_mut()
            .expect("oracle says producer");
        let env = Envelope {
            target: target.map(SubscriberId),
            tag: op.tag.0,
        };
        let mut slot = match (tx.try_claim_with(env), want) {
            (Ok(slot), Ok(())) => slot,
            (got, want) => {
                assert_eq!(got.map(|s| s.id()).err(), want.err(), "try_claim_with");
                return;
            }
        };
        let id = slot.id();
        assert_eq!(slot.capacity(), max);
        assert!(slot.is_empty());
        // What the slot holds: bytes written by this claim, or unknown.
        let mut bytes: Vec<Option<u8>> = vec![None; max];
        let mut len = 0usize;
        let mut tag = op.tag.0;
        for step in &op.steps.0 {
            let (offset, data) = match step {
                ClaimStep::WriteAt(off, data) => (off.0, &data.0),
                ClaimStep::Append(data) => (len, &data.0),
                ClaimStep::SetLen(l) => {
                    let got = slot.set_len(l.0);
                    if l.0 <= max {
                        assert_eq!(got, Ok(()));
                        len = l.0;
                    } else {
                        assert_eq!(got, Err(TrySendError::TooLarge { len: l.0, max }));
                    }
                    assert_eq!(slot.len(), len);
                    continue;
                }
                ClaimStep::SetTag(t) => {
                    slot.set_tag(*t);
                    tag = *t;
                    continue;
                }
            };
            let got = if matches!(step, ClaimStep::Append(_)) {
                slot.append(data)
            } else {
                slot.write_at(offset, data)
            };
            let end = offset + data.len();
            if end <= max {
                assert_eq!(got, Ok(()), "write of {} B at {offset}", data.len());
                for (k, b) in data.iter().enumerate() {
                    bytes[offset + k] = Some(*b);
                }
                len = len.max(end);
            } else {
                assert_eq!(got, Err(TrySendError::TooLarge { len: end, max }));
            }
            assert_eq!(slot.len(), len, "a refused write changes nothing");
        }
        if op.commit {
            assert_eq!(slot.commit(), id);
            let msg = Msg {
                sender: p,
                target,
                tag,
                data: bytes[..len].to_vec(),
            };
            assert_eq!(self.oracle.push(Some(msg)), id, "claimed id");
        } else {
            drop(slot);
            assert_eq!(self.oracle.push(None), id, "claimed id");
        }
    }

    fn recv(&mut self, op: &RecvOp) {
        match *op {
            RecvOp::Recv { r, buf } => {
                if let Some(r) = self.receiver(r) {
                    let want = self.oracle.recv(r);
                    self.recv_one(r, buf.0, want);
                }
            }
            RecvOp::Drain { r, buf } => {
                let Some(r) = self.receiver(r) else { return };
                // At most a ring's worth of messages, then the error.
                for _ in 0..=self.oracle.capacity {
                    let want = self.oracle.recv(r);
                    let done = want.is_err();
                    self.recv_one(r, buf.0, want);
                    if done {
                        return;
                    }
                }
                panic!("drain did not end within a ring's worth of messages");
            }
            RecvOp::Batch { r, buf, max } => {
                if let Some(r) = self.receiver(r) {
                    self.recv_batch(r, buf.0, usize::from(max % 9));
                }
            }
            RecvOp::Read { r, offset, win } => {
                if let Some(r) = self.receiver(r) {
                    self.read(r, offset.0, win.0);
                }
            }
        }
    }

    fn recv_batch(&mut self, r: u32, buf_len: usize, max: usize) {
        let want = self.oracle.recv_batch(r, buf_len, max);
        let mut buf = vec![0xA5u8; buf_len];
        let mut infos = vec![MessageInfo::default(); max];
        let rx = self.receivers[r as usize]
            .as_ref()
            .expect("oracle says receiver");
        match (rx.try_recv_batch(&mut buf, &mut infos), want) {
            (Ok(n), Ok(want)) => {
                assert_eq!(n, want.len(), "batch count");
                let mut off = 0;
                let mut ids = Vec::new();
                for (info, (pos, msg, k)) in infos[..n].iter().zip(&want) {
                    assert_eq!(info.id, *pos, "message id is its position");
                    assert_eq!(info.len, *k, "delivered length");
                    assert_eq!(info.message_len, msg.data.len(), "message length");
                    let got = &buf[off..off + k];
                    assert!(payload_matches(got, &msg.data[..*k]), "payload bytes");
                    assert_eq!(info.sender, SubscriberId(msg.sender), "sender");
                    assert_eq!(info.target, msg.target.map(SubscriberId), "target");
                    assert_eq!(info.tag, msg.tag, "tag");
                    off += k;
                    ids.push(info.id);
                }
                assert!(
                    buf[off..].iter().all(|&b| b == 0xA5),
                    "wrote past the batch"
                );
                for id in ids {
                    self.delivered(r, id);
                }
            }
            (got, want) => assert_eq!(got, want.map(|v| v.len()), "try_recv_batch by {r}"),
        }
    }

    fn delivered(&mut self, r: u32, id: u64) {
        let last = &mut self.last_id[r as usize];
        if let Some(prev) = *last {
            assert!(id > prev, "receiver {r}: id {id} after {prev}");
        }
        *last = Some(id);
    }

    fn recv_one(&mut self, r: u32, buf_len: usize, want: Result<(u64, Msg), TryRecvError>) {
        let mut buf = vec![0xA5u8; buf_len];
        let rx = self.receivers[r as usize]
            .as_ref()
            .expect("oracle says receiver");
        match (rx.try_recv(&mut buf), want) {
            (Ok(info), Ok((pos, msg))) => {
                let n = buf_len.min(msg.data.len());
                assert_eq!(info.id, pos, "message id is its position");
                assert_eq!(info.len, n, "delivered length");
                assert_eq!(info.message_len, msg.data.len(), "message length");
                assert_eq!(info.truncated(), n < msg.data.len());
                assert!(payload_matches(&buf[..n], &msg.data[..n]), "payload bytes");
                assert!(buf[n..].iter().all(|&b| b == 0xA5), "wrote past len");
                assert_eq!(info.sender, SubscriberId(msg.sender), "sender");
                assert_eq!(info.target, msg.target.map(SubscriberId), "target");
                assert_eq!(info.tag, msg.tag, "tag");
                self.delivered(r, info.id);
            }
            (got, want) => assert_eq!(
                got.map(|i| (i.id, i.len)),
                want.map(|(pos, m)| (pos, m.data.len().min(buf_len))),
                "try_recv by {r}"
            ),
        }
    }

    fn read(&mut self, r: u32, offset: usize, win: usize) {
        let want = self.oracle.read(r);
        let rx = self.receivers[r as usize]
            .as_mut()
            .expect("oracle says receiver");
        let id = match (rx.try_read(), want) {
            (Ok(slot), Ok((pos, msg))) => {
                let info = slot.info();
                let len = msg.data.len();
                assert_eq!(info.id, pos, "message id is its position");
                assert_eq!(info.len, len, "zero-copy len is the whole message");
                assert_eq!(info.message_len, len);
                assert_eq!(slot.len(), len);
                assert_eq!(slot.is_empty(), len == 0);
                assert_eq!(info.sender, SubscriberId(msg.sender), "sender");
                assert_eq!(info.target, msg.target.map(SubscriberId), "target");
                assert_eq!(info.tag, msg.tag, "tag");
                let mut w = vec![0u8; win];
                let n = slot.read_at(offset, &mut w);
                assert_eq!(n, len.saturating_sub(offset).min(win), "read_at({offset})");
                let start = offset.min(len);
                assert!(payload_matches(&w[..n], &msg.data[start..start + n]));
                info.id
            }
            (got, want) => {
                assert_eq!(got.map(|s| s.info().id).err(), want.map(|w| w.0).err());
                return;
            }
        };
        self.delivered(r, id);
    }

    fn wait(&mut self, op: &WaitOp) {
        match *op {
            WaitOp::Prepare(r) => {
                let Some(r) = self.receiver(r) else { return };
                let rx = self.receivers[r as usize]
                    .as_ref()
                    .expect("oracle says receiver");
                let broadcast = self.oracle.mode == Mode::Broadcast;
                let word = if broadcast {
                    self.ring.broadcast_wake_word()
                } else {
                    self.ring.wake_word(SubscriberId(r)).expect("in the table")
                };
                let now = word.load(Relaxed);
                let token = rx.prepare_wait();
                let sleeps = self.oracle.prepare_wait(r, now);
                assert_eq!(token.is_some(), sleeps, "prepare_wait by {r}");
                if let Some(t) = token {
                    assert_eq!(t.expected(), now);
                    assert_eq!(t.is_shared(), broadcast);
                    assert!(!t.is_woken());
                    assert!(std::ptr::eq(t.word(), word));
                }
            }
            WaitOp::Finish(r) => {
                let Some(r) = self.receiver(r) else { return };
                self.receivers[r as usize]
                    .as_ref()
                    .expect("oracle says receiver")
                    .finish_wait();
                self.oracle.sleepers.remove(&r);
            }
            WaitOp::WakeSet(p, n) => {
                let Some(p) = self.producer(p) else { return };
                let before = self.oracle.sleepers.clone();
                let got = self.tx(p).wake_set(n.0);
                let want = self.oracle.wake(n.0, None);
                self.check_woken(&got, &want, &before);
            }
            WaitOp::WakeFor(p, t) => {
                let Some(p) = self.producer(p) else { return };
                let before = self.oracle.sleepers.clone();
                let got = self.tx(p).wake_set_for(SubscriberId(t.0));
                let want = self.oracle.wake(1, Some(t.0));
                self.check_woken(&got, &want, &before);
            }
            WaitOp::WakeAll => {
                let before = self.oracle.sleepers.clone();
                let got = self.ring.wake_all();
                let want = self.oracle.wake_all();
                self.check_woken(&got, &want, &before);
            }
        }
    }

    /// A wake set names exactly the oracle's receivers, and each one's
    /// wake word moved away from the value its token expects.
    fn check_woken(&self, got: &WakeSet, want: &[u32], tokens: &BTreeMap<u32, u32>) {
        let ids: Vec<u32> = got.receivers().map(|id| id.0).collect();
        assert_eq!(ids, want, "woken receivers");
        assert_eq!(got.len(), want.len());
        assert_eq!(got.is_empty(), want.is_empty());
        assert_eq!(got.is_broadcast(), self.oracle.mode == Mode::Broadcast);
        let mask = want.iter().fold(0u32, |m, i| m | 1 << (i % 32));
        assert_eq!(got.futex_mask(), mask);
        for i in want {
            let word = self.wake_word_of(*i);
            assert_ne!(
                word, tokens[i],
                "wake word of woken receiver {i} did not move"
            );
        }
    }

    /// The value of the word receiver `i` sleeps on.
    fn wake_word_of(&self, i: u32) -> u32 {
        let word = if self.oracle.mode == Mode::Broadcast {
            self.ring.broadcast_wake_word()
        } else {
            self.ring.wake_word(SubscriberId(i)).expect("in the table")
        };
        word.load(Relaxed)
    }

    /// Everything the ring shows must agree with the oracle.
    fn check_invariants(&self) {
        let ring = &self.ring;
        let o = &self.oracle;
        let (head, tail) = (ring.head(), ring.tail());
        assert_eq!(tail, o.tail, "tail counts every claimed position");
        assert!(head <= tail, "head {head} passed tail {tail}");
        assert!(tail - head <= o.capacity, "more in flight than capacity");
        match o.mode {
            Mode::Unicast | Mode::Multicast => assert_eq!(
                head,
                o.tail - o.queue.len() as u64,
                "shared head is the first unconsumed position"
            ),
            Mode::Broadcast => {
                for (i, e) in o.entries.iter().enumerate().filter(|(_, e)| e.recv) {
                    let local = o.tail - e.unread.len() as u64;
                    assert!(head <= local, "shared head passed receiver {i}");
                    let published = ring.regions().entry(i).local_head.load(Relaxed);
                    assert_eq!(published, local, "local_head of receiver {i}");
                }
            }
        }
        assert_eq!(ring.is_closed(), o.closed);
        assert_eq!(ring.senders_gone(), o.senders_gone(), "senders_gone");
        let regions = ring.regions();
        let hdr = regions.header();
        if o.mode == Mode::Unicast {
            let exclusive = o.receivers().first().map_or(0, |r| r + 1);
            assert_eq!(hdr.wake.exclusive_receiver.load(Relaxed), exclusive);
        }
        assert_eq!(hdr.wake.round_robin.load(Relaxed), o.round_robin);
        for w in 0..o.bitmap_words {
            let bits = o
                .sleepers
                .keys()
                .filter(|&&i| i as usize / 64 == w)
                .fold(0u64, |b, &i| b | 1 << (i % 64));
            assert_eq!(
                regions.waiter_word(w).load(Relaxed),
                bits,
                "waiter word {w}"
            );
        }
        for (i, e) in o.entries.iter().enumerate() {
            let id = SubscriberId(i as u32);
            assert_eq!(ring.is_receiver(id), e.recv, "is_receiver({id})");
            assert_eq!(self.producers[i].is_some(), e.send, "producer handle {id}");
            assert_eq!(self.receivers[i].is_some(), e.recv, "receiver handle {id}");
            if let Some(tx) = &self.producers[i] {
                assert_eq!(tx.id(), id);
                assert_eq!(tx.sent(), e.sent, "Producer::sent of {id}");
                assert_eq!(tx.has_sleepers(), !o.sleepers.is_empty());
            }
            if let Some(rx) = &self.receivers[i] {
                assert_eq!(rx.id(), id);
                assert_eq!(rx.received(), e.received, "Receiver::received of {id}");
                assert_eq!(rx.lagged(), 0, "a lossless ring never lags");
            }
            if e.is_free() {
                continue;
            }
            let c = ring.counters(id).expect("inside the table");
            assert_eq!(
                (c.sent, c.received, c.lagged),
                (e.sent, e.received, 0),
                "{id}"
            );
        }
        let attached = o.entries.iter().filter(|e| !e.is_free()).count();
        assert_eq!(ring.active_subscribers(), attached, "active_subscribers");
        let past = SubscriberId(o.entries.len() as u32);
        assert!(ring.counters(past).is_none());
        assert!(!ring.is_receiver(past));
        assert!(ring.wake_word(past).is_none());
    }
}
