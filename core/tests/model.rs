//! State-machine model tests of the core ring (STYLE.md item 19).
//!
//! A reference model — one `VecDeque` of positions per broadcast receiver,
//! one shared `VecDeque` for unicast and multicast — is driven by
//! `proptest-state-machine` alongside a real [`HeapRing`], for every
//! delivery mode, with capacities 1–4 so that runs wrap the ring many laps.
//! Every transition predicts its exact result (including `Full`, the count
//! of a batch, and which receiver gets what),
//! and the invariants are checked after every step.
//!
//! What the model keeps, and why it is enough to predict `Full` exactly:
//! - every position the ring has claimed (`tail`), and for each one still
//!   held in the ring whether it is a message (sender, target, tag, bytes)
//!   or a skip record (a zero-copy claim dropped without commit);
//! - unicast / multicast: the positions between the shared head and the
//!   tail. Receivers step over skip records (and, in unicast, messages
//!   addressed to another subscriber) only when they try to receive, so such
//!   records keep occupying their slots until then;
//! - broadcast: per receiver, the positions between its own head and the
//!   tail. A receiver that joins starts at the tail; a receiver that leaves
//!   frees its unread positions; with no receiver at all a send always
//!   succeeds and reaches nobody. The shared head is only raised lazily, so
//!   the model does not predict it, only bounds it; `Full` is still exact
//!   because a producer that finds the ring full rescans the receivers first.

use std::collections::VecDeque;
use std::marker::PhantomData;

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::Config as ProptestConfig;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use shmcast_core::{
    Config, Envelope, HeapRegions, HeapRing, JoinError, MessageInfo, Mode, Producer, Receiver,
    SubscriberId, TryRecvError, TrySendError,
};

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// A message as the model remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    sender: u32,
    target: Option<u32>,
    tag: u64,
    data: Vec<u8>,
}

/// One claimed position: a message, or a skip record (`msg == None`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    pos: u64,
    msg: Option<Msg>,
}

/// One entry of the subscriber table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    send: bool,
    recv: bool,
    /// Messages sent through this entry since it was joined.
    sent: u64,
    /// Messages received through this entry since it was joined.
    received: u64,
    /// Broadcast: positions from this receiver's head to the tail.
    unread: VecDeque<Rec>,
}

impl Entry {
    fn is_free(&self) -> bool {
        !self.send && !self.recv
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    mode: Mode,
    capacity: u64,
    max_message: usize,
    entries: Vec<Entry>,
    /// Unicast / multicast: positions from the shared head to the tail.
    queue: VecDeque<Rec>,
    /// Positions claimed so far.
    tail: u64,
    closed: bool,
}

/// Which role a join asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinAs {
    Producer,
    Receiver,
    Duplex,
}

#[derive(Clone, Debug)]
enum Op {
    Join(JoinAs),
    DropProducer(u32),
    DropReceiver(u32),
    /// `try_send` (tag 0) or `try_send_with(Envelope::tagged(tag))`.
    Send {
        p: u32,
        data: Vec<u8>,
        tag: u64,
    },
    /// A message `max_message + excess` bytes long.
    SendTooLarge {
        p: u32,
        excess: usize,
    },
    /// `try_send_batch`; `oversize` inserts a too-large message at that index.
    SendBatch {
        p: u32,
        msgs: Vec<Vec<u8>>,
        oversize: Option<usize>,
    },
    /// `try_send_to` an arbitrary table index (attached receiver or not).
    SendTo {
        p: u32,
        target: u32,
        data: Vec<u8>,
    },
    /// `try_claim_with` + `append` per chunk (+ one append that overflows,
    /// if `overflow`) + `commit`.
    ClaimCommit {
        p: u32,
        target: Option<u32>,
        tag: u64,
        chunks: Vec<Vec<u8>>,
        overflow: bool,
    },
    /// `try_claim`, write some bytes, drop without commit: a skip record.
    ClaimAbandon {
        p: u32,
        partial: Vec<u8>,
    },
    /// `try_recv` into a buffer of `buf` bytes.
    Recv {
        r: u32,
        buf: usize,
    },
    /// `try_recv` into a buffer of `buf` bytes until it fails (drain).
    Drain {
        r: u32,
        buf: usize,
    },
    /// `try_recv_batch` into a buffer of `buf` bytes and `max` infos.
    RecvBatch {
        r: u32,
        buf: usize,
        max: usize,
    },
    /// `try_read`, then `read_at(offset, ..)`, then drop the guard.
    Read {
        r: u32,
        offset: usize,
    },
    Close,
}

/// What the model says a transition returns.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    /// Joins: the table index of the new entry.
    Join(Result<u32, JoinError>),
    /// Drops and close.
    Nothing,
    /// Single sends and claims: the message id (position).
    Send(Result<u64, TrySendError>),
    /// Batches: how many were sent, starting at `first`.
    Batch(Result<usize, TrySendError>, u64),
    /// Receives: the whole message (with its position) or the error.
    Recv(Result<(u64, Msg), TryRecvError>),
    /// A drain: every receive up to and including the first error.
    Drain(Vec<Result<(u64, Msg), TryRecvError>>),
    /// A batch receive: the messages delivered (with the bytes each got),
    /// or the error.
    Batch2(Result<Vec<(u64, Msg, usize)>, TryRecvError>),
}

impl Model {
    fn new(mode: Mode, capacity: u64, max_message: usize, max_subscribers: usize) -> Self {
        Model {
            mode,
            capacity,
            max_message,
            entries: vec![Entry::default(); max_subscribers],
            queue: VecDeque::new(),
            tail: 0,
            closed: false,
        }
    }

    fn producers(&self) -> Vec<u32> {
        (0..self.entries.len() as u32)
            .filter(|&i| self.entries[i as usize].send)
            .collect()
    }

    fn receivers(&self) -> Vec<u32> {
        (0..self.entries.len() as u32)
            .filter(|&i| self.entries[i as usize].recv)
            .collect()
    }

    fn is_producer(&self, id: u32) -> bool {
        self.entries.get(id as usize).is_some_and(|e| e.send)
    }

    fn is_receiver(&self, id: u32) -> bool {
        self.entries.get(id as usize).is_some_and(|e| e.recv)
    }

    /// Positions that are claimed and not yet released by every receiver
    /// that must still step over them.
    fn used(&self) -> u64 {
        match self.mode {
            Mode::Broadcast => self
                .entries
                .iter()
                .filter(|e| e.recv)
                .map(|e| e.unread.len() as u64)
                .max()
                .unwrap_or(0),
            Mode::Unicast | Mode::Multicast => self.queue.len() as u64,
        }
    }

    fn free(&self) -> u64 {
        let used = self.used();
        assert!(used <= self.capacity, "model overfilled: {self:?}");
        self.capacity - used
    }

    /// Claim the next position for `msg` (`None`: a skip record).
    fn push(&mut self, msg: Option<Msg>) -> u64 {
        let pos = self.tail;
        self.tail += 1;
        let rec = Rec { pos, msg };
        match self.mode {
            Mode::Broadcast => {
                for e in self.entries.iter_mut().filter(|e| e.recv) {
                    e.unread.push_back(rec.clone());
                }
            }
            Mode::Unicast | Mode::Multicast => self.queue.push_back(rec),
        }
        pos
    }

    /// The checks a send makes before it claims, in the core's order: the
    /// target (addressing support, then attachment), then closed, then full.
    fn check_send(&self, target: Option<u32>, want: u64) -> Result<(), TrySendError> {
        if let Some(t) = target {
            if self.mode == Mode::Multicast {
                return Err(TrySendError::AddressingUnsupported);
            }
            if !self.is_receiver(t) {
                return Err(TrySendError::UnknownTarget { target: t });
            }
        }
        if self.closed {
            return Err(TrySendError::Closed);
        }
        if self.free() < want {
            return Err(TrySendError::Full);
        }
        Ok(())
    }

    fn too_large(&self, len: usize) -> TrySendError {
        TrySendError::TooLarge {
            len,
            max: self.max_message,
        }
    }

    /// Receive for `r`: step over what is not for it, deliver the first
    /// message that is.
    fn recv(&mut self, r: u32) -> Result<(u64, Msg), TryRecvError> {
        let mode = self.mode;
        let closed = self.closed;
        let queue = match mode {
            Mode::Broadcast => &mut self.entries[r as usize].unread,
            Mode::Unicast | Mode::Multicast => &mut self.queue,
        };
        while let Some(rec) = queue.pop_front() {
            let Some(msg) = rec.msg else { continue };
            if msg.target.is_some_and(|t| t != r) {
                // Addressed to someone else: stepped over (and, in unicast,
                // lost for good — it is nobody else's to read).
                continue;
            }
            self.entries[r as usize].received += 1;
            return Ok((rec.pos, msg));
        }
        Err(if closed {
            TryRecvError::Closed
        } else {
            TryRecvError::Empty
        })
    }

    /// `try_recv_batch` for `r` with `buf` bytes and room for `max` infos.
    fn recv_batch(
        &mut self,
        r: u32,
        buf: usize,
        max: usize,
    ) -> Result<Vec<(u64, Msg, usize)>, TryRecvError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut used = 0;
        if self.mode == Mode::Multicast {
            // One claim per message; later ones only while a whole
            // max_message fits.
            let (pos, msg) = self.recv(r)?;
            used += buf.min(msg.data.len());
            out.push((pos, msg, used));
            while out.len() < max && buf - used >= self.max_message {
                match self.recv(r) {
                    Ok((pos, msg)) => {
                        let k = msg.data.len();
                        used += k;
                        out.push((pos, msg, k));
                    }
                    Err(_) => break,
                }
            }
            return Ok(out);
        }
        let queue = match self.mode {
            Mode::Broadcast => &mut self.entries[r as usize].unread,
            _ => &mut self.queue,
        };
        while out.len() < max {
            let Some(rec) = queue.front() else { break };
            let for_us = rec
                .msg
                .as_ref()
                .is_some_and(|m| m.target.is_none_or(|t| t == r));
            if !for_us {
                // A skip record or a message for someone else: stepped over.
                queue.pop_front();
                continue;
            }
            let len = rec.msg.as_ref().map_or(0, |m| m.data.len());
            let room = buf - used;
            if len > room && !out.is_empty() {
                break;
            }
            let rec = queue.pop_front().expect("peeked");
            let k = len.min(room);
            used += k;
            out.push((rec.pos, rec.msg.expect("for us"), k));
        }
        self.entries[r as usize].received += out.len() as u64;
        if out.is_empty() {
            return Err(if self.closed {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        }
        Ok(out)
    }

    fn join(&mut self, role: JoinAs) -> Result<u32, JoinError> {
        if self.closed {
            return Err(JoinError::Closed);
        }
        let Some(i) = self.entries.iter().position(Entry::is_free) else {
            return Err(JoinError::TableFull {
                max: self.entries.len() as u32,
            });
        };
        let recv = matches!(role, JoinAs::Receiver | JoinAs::Duplex);
        if recv && self.mode == Mode::Unicast && self.entries.iter().any(|e| e.recv) {
            return Err(JoinError::ReceiverTaken);
        }
        self.entries[i] = Entry {
            send: matches!(role, JoinAs::Producer | JoinAs::Duplex),
            recv,
            ..Entry::default()
        };
        Ok(i as u32)
    }

    /// Apply `op` and say what the ring must answer.
    fn step(&mut self, op: &Op) -> Expect {
        match op {
            Op::Join(role) => Expect::Join(self.join(*role)),
            Op::DropProducer(p) => {
                self.entries[*p as usize].send = false;
                Expect::Nothing
            }
            Op::DropReceiver(r) => {
                let e = &mut self.entries[*r as usize];
                e.recv = false;
                e.unread.clear();
                Expect::Nothing
            }
            Op::Send { p, data, tag } => {
                let res = self.check_send(None, 1).map(|()| {
                    self.entries[*p as usize].sent += 1;
                    self.push(Some(Msg {
                        sender: *p,
                        target: None,
                        tag: *tag,
                        data: data.clone(),
                    }))
                });
                Expect::Send(res)
            }
            Op::SendTooLarge { excess, .. } => {
                Expect::Send(Err(self.too_large(self.max_message + excess)))
            }
            Op::SendBatch { p, msgs, oversize } => {
                let first = self.tail;
                if oversize.is_some() {
                    return Expect::Batch(Err(self.too_large(self.max_message + 1)), first);
                }
                if msgs.is_empty() {
                    return Expect::Batch(Ok(0), first);
                }
                let res = self.check_send(None, 1).map(|()| {
                    let k = (msgs.len() as u64).min(self.free()) as usize;
                    for m in &msgs[..k] {
                        self.push(Some(Msg {
                            sender: *p,
                            target: None,
                            tag: 0,
                            data: m.clone(),
                        }));
                    }
                    self.entries[*p as usize].sent += k as u64;
                    k
                });
                Expect::Batch(res, first)
            }
            Op::SendTo { p, target, data } => {
                let res = self.check_send(Some(*target), 1).map(|()| {
                    self.entries[*p as usize].sent += 1;
                    self.push(Some(Msg {
                        sender: *p,
                        target: Some(*target),
                        tag: 0,
                        data: data.clone(),
                    }))
                });
                Expect::Send(res)
            }
            Op::ClaimCommit {
                p,
                target,
                tag,
                chunks,
                ..
            } => {
                let res = self.check_send(*target, 1).map(|()| {
                    self.entries[*p as usize].sent += 1;
                    self.push(Some(Msg {
                        sender: *p,
                        target: *target,
                        tag: *tag,
                        data: chunks.concat(),
                    }))
                });
                Expect::Send(res)
            }
            Op::ClaimAbandon { .. } => {
                Expect::Send(self.check_send(None, 1).map(|()| self.push(None)))
            }
            Op::Recv { r, .. } => Expect::Recv(self.recv(*r)),
            Op::Drain { r, .. } => {
                let mut all = vec![self.recv(*r)];
                while all.last().is_some_and(Result::is_ok) {
                    all.push(self.recv(*r));
                }
                Expect::Drain(all)
            }
            Op::RecvBatch { r, buf, max } => Expect::Batch2(self.recv_batch(*r, *buf, *max)),
            Op::Read { r, .. } => {
                if self.mode == Mode::Multicast {
                    Expect::Recv(Err(TryRecvError::ZeroCopyUnsupported))
                } else {
                    Expect::Recv(self.recv(*r))
                }
            }
            Op::Close => {
                self.closed = true;
                Expect::Nothing
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Transition generation
// ---------------------------------------------------------------------------

/// The delivery mode a test runs, as a type (the state-machine traits have
/// no parameters).
trait ModeTag: 'static {
    const MODE: Mode;
}

#[derive(Debug)]
struct Unicast;
#[derive(Debug)]
struct Broadcast;
#[derive(Debug)]
struct Multicast;

impl ModeTag for Unicast {
    const MODE: Mode = Mode::Unicast;
}
impl ModeTag for Broadcast {
    const MODE: Mode = Mode::Broadcast;
}
impl ModeTag for Multicast {
    const MODE: Mode = Mode::Multicast;
}

/// The reference state machine of mode `M`.
#[derive(Debug)]
struct RingModel<M>(PhantomData<M>);

fn payload(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max).boxed()
}

/// An existing id (from `ids`, which must not be empty).
fn one_of(ids: Vec<u32>) -> BoxedStrategy<u32> {
    prop::sample::select(ids).boxed()
}

impl<M: ModeTag> ReferenceStateMachine for RingModel<M> {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        // Capacities 1, 2, 4 (powers of two up to 4); tiny messages; a table
        // small enough that TableFull happens.
        (0u32..3, 1usize..=24, 2usize..=5)
            .prop_map(|(cap_log, max_message, subs)| {
                Model::new(M::MODE, 1 << cap_log, max_message, subs)
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let max = state.max_message;
        let table = state.entries.len() as u32;
        // After a close every join fails the same way: try it now and then.
        let join = if state.closed { 1 } else { 3 };
        let mut arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (join, Just(Op::Join(JoinAs::Producer)).boxed()),
            (join, Just(Op::Join(JoinAs::Receiver)).boxed()),
            (1, Just(Op::Join(JoinAs::Duplex)).boxed()),
        ];
        let producers = state.producers();
        let attached = !producers.is_empty() || !state.receivers().is_empty();
        if !producers.is_empty() {
            let receivers = state.receivers();
            // A target: an attached receiver, or any index (attached or not,
            // inside the table or past it).
            let target: BoxedStrategy<u32> = if receivers.is_empty() {
                (0..table + 2).boxed()
            } else {
                prop_oneof![3 => one_of(receivers), 1 => 0..table + 2].boxed()
            };
            let p = one_of(producers);
            arms.extend([
                (
                    16,
                    (
                        p.clone(),
                        payload(max),
                        prop_oneof![3 => Just(0u64), 1 => any::<u64>()],
                    )
                        .prop_map(|(p, data, tag)| Op::Send { p, data, tag })
                        .boxed(),
                ),
                (
                    1,
                    (p.clone(), 1usize..=8)
                        .prop_map(|(p, excess)| Op::SendTooLarge { p, excess })
                        .boxed(),
                ),
                (
                    4,
                    (
                        p.clone(),
                        prop::collection::vec(payload(max), 0..=5),
                        prop::option::weighted(0.15, 0usize..=5),
                    )
                        .prop_map(|(p, msgs, oversize)| Op::SendBatch {
                            p,
                            oversize: oversize.map(|i| i.min(msgs.len())),
                            msgs,
                        })
                        .boxed(),
                ),
                (
                    4,
                    (p.clone(), target.clone(), payload(max))
                        .prop_map(|(p, target, data)| Op::SendTo { p, target, data })
                        .boxed(),
                ),
                (
                    4,
                    (
                        p.clone(),
                        prop::option::weighted(0.3, target),
                        any::<u64>(),
                        prop::collection::vec(payload(max.div_ceil(3)), 0..=3),
                        prop::bool::weighted(0.2),
                    )
                        .prop_map(move |(p, target, tag, chunks, overflow)| {
                            // Keep the committed message within max_message.
                            let mut room = max;
                            let chunks = chunks
                                .into_iter()
                                .map(|mut c| {
                                    c.truncate(room);
                                    room -= c.len();
                                    c
                                })
                                .collect();
                            Op::ClaimCommit {
                                p,
                                target,
                                tag,
                                chunks,
                                overflow,
                            }
                        })
                        .boxed(),
                ),
                (
                    3,
                    (p.clone(), payload(max))
                        .prop_map(|(p, partial)| Op::ClaimAbandon { p, partial })
                        .boxed(),
                ),
                (1, p.prop_map(Op::DropProducer).boxed()),
            ]);
        }
        let receivers = state.receivers();
        if !receivers.is_empty() {
            let r = one_of(receivers);
            arms.extend([
                (
                    20,
                    (r.clone(), 0..=max + 4)
                        .prop_map(|(r, buf)| Op::Recv { r, buf })
                        .boxed(),
                ),
                (
                    4,
                    (r.clone(), 0..=max + 4)
                        .prop_map(|(r, buf)| Op::Drain { r, buf })
                        .boxed(),
                ),
                (
                    5,
                    (r.clone(), 0..=3 * max + 4, 0..=5usize)
                        .prop_map(|(r, buf, max)| Op::RecvBatch { r, buf, max })
                        .boxed(),
                ),
                (
                    5,
                    (r.clone(), 0..=max + 2)
                        .prop_map(|(r, offset)| Op::Read { r, offset })
                        .boxed(),
                ),
                (1, r.prop_map(Op::DropReceiver).boxed()),
            ]);
        }
        if attached {
            // Rare (about once in 200 steps), and only once someone is
            // attached: a close ends most of what a run can do.
            for arm in &mut arms {
                arm.0 *= 3;
            }
            arms.push((1, Just(Op::Close).boxed()));
        }
        Union::new_weighted(arms).boxed()
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        state.step(op);
        state
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        match op {
            Op::Join(_) | Op::Close => true,
            Op::DropProducer(p)
            | Op::Send { p, .. }
            | Op::SendTooLarge { p, .. }
            | Op::SendBatch { p, .. }
            | Op::SendTo { p, .. }
            | Op::ClaimCommit { p, .. }
            | Op::ClaimAbandon { p, .. } => state.is_producer(*p),
            Op::DropReceiver(r)
            | Op::Recv { r, .. }
            | Op::Drain { r, .. }
            | Op::RecvBatch { r, .. }
            | Op::Read { r, .. } => state.is_receiver(*r),
        }
    }
}

// ---------------------------------------------------------------------------
// The system under test
// ---------------------------------------------------------------------------

/// Handles held for one table entry.
#[derive(Default)]
struct Handles {
    producer: Option<Producer<HeapRegions>>,
    receiver: Option<Receiver<HeapRegions>>,
    /// Id of the last message this receiver got (ids strictly increase).
    last_id: Option<u64>,
}

struct Sut {
    ring: HeapRing,
    handles: Vec<Handles>,
    /// The model as it was before the transition being applied: stepping it
    /// yields the prediction for that transition.
    before: Model,
}

/// The state-machine test of mode `M`.
struct RingTest<M>(PhantomData<M>);

impl Sut {
    fn producer(&self, p: u32) -> &Producer<HeapRegions> {
        self.handles[p as usize]
            .producer
            .as_ref()
            .expect("model and handles disagree: no producer")
    }

    fn producer_mut(&mut self, p: u32) -> &mut Producer<HeapRegions> {
        self.handles[p as usize]
            .producer
            .as_mut()
            .expect("model and handles disagree: no producer")
    }

    fn receiver_mut(&mut self, r: u32) -> &mut Receiver<HeapRegions> {
        self.handles[r as usize]
            .receiver
            .as_mut()
            .expect("model and handles disagree: no receiver")
    }

    fn join(&mut self, role: JoinAs, expect: &Result<u32, JoinError>) {
        let got = match role {
            JoinAs::Producer => self.ring.producer().map(|p| {
                let id = p.id();
                self.install(id, Some(p), None);
                id.0
            }),
            JoinAs::Receiver => self.ring.receiver().map(|r| {
                let id = r.id();
                self.install(id, None, Some(r));
                id.0
            }),
            JoinAs::Duplex => self.ring.duplex().map(|(p, r)| {
                let id = p.id();
                assert_eq!(r.id(), id, "duplex halves share one entry");
                self.install(id, Some(p), Some(r));
                id.0
            }),
        };
        assert_eq!(&got, expect, "join {role:?}");
    }

    fn install(
        &mut self,
        id: SubscriberId,
        producer: Option<Producer<HeapRegions>>,
        receiver: Option<Receiver<HeapRegions>>,
    ) {
        let h = &mut self.handles[id.index()];
        assert!(
            h.producer.is_none() && h.receiver.is_none(),
            "join handed out entry {id}, which is still held"
        );
        *h = Handles {
            producer,
            receiver,
            last_id: None,
        };
    }

    /// Check a delivered message against the model's and the ordering rule.
    fn delivered(&mut self, r: u32, id: u64) {
        let last = &mut self.handles[r as usize].last_id;
        if let Some(prev) = *last {
            assert!(id > prev, "receiver {r}: id {id} after {prev}");
        }
        *last = Some(id);
    }

    fn recv(&mut self, r: u32, buf_len: usize, expect: &Result<(u64, Msg), TryRecvError>) {
        let mut buf = vec![0xA5u8; buf_len];
        let got = self.receiver_mut(r).try_recv(&mut buf);
        match (got, expect) {
            (Ok(info), Ok((pos, msg))) => {
                let n = buf_len.min(msg.data.len());
                assert_eq!(info.id, *pos, "message id is its position");
                assert_eq!(info.len, n, "delivered length");
                assert_eq!(info.message_len, msg.data.len(), "message length");
                assert_eq!(info.truncated(), buf_len < msg.data.len(), "truncated flag");
                assert_eq!(&buf[..n], &msg.data[..n], "payload bytes");
                assert_eq!(info.sender, SubscriberId(msg.sender), "sender");
                assert_eq!(info.target, msg.target.map(SubscriberId), "target");
                assert_eq!(info.tag, msg.tag, "tag");
                self.delivered(r, info.id);
            }
            (got, expect) => assert_eq!(
                got.map(|i| (i.id, i.len)),
                expect.clone().map(|(p, m)| (p, m.data.len())),
                "try_recv by {r}"
            ),
        }
    }

    fn recv_batch(
        &mut self,
        r: u32,
        buf_len: usize,
        max: usize,
        expect: &Result<Vec<(u64, Msg, usize)>, TryRecvError>,
    ) {
        let mut buf = vec![0xA5u8; buf_len];
        let mut infos = vec![MessageInfo::default(); max];
        let got = self.receiver_mut(r).try_recv_batch(&mut buf, &mut infos);
        match (got, expect) {
            (Ok(n), Ok(want)) => {
                assert_eq!(n, want.len(), "batch count by {r}");
                let mut off = 0;
                for (info, (pos, msg, k)) in infos[..n].iter().zip(want) {
                    assert_eq!(info.id, *pos, "message id is its position");
                    assert_eq!(info.len, *k, "delivered length");
                    assert_eq!(info.message_len, msg.data.len(), "message length");
                    assert_eq!(&buf[off..off + k], &msg.data[..*k], "payload bytes");
                    assert_eq!(info.sender, SubscriberId(msg.sender), "sender");
                    assert_eq!(info.target, msg.target.map(SubscriberId), "target");
                    assert_eq!(info.tag, msg.tag, "tag");
                    off += k;
                    self.delivered(r, info.id);
                }
                assert!(
                    buf[off..].iter().all(|&b| b == 0xA5),
                    "bytes past the batch untouched"
                );
            }
            (got, expect) => assert_eq!(
                got,
                expect.clone().map(|v| v.len()),
                "try_recv_batch by {r}"
            ),
        }
    }

    fn read(&mut self, r: u32, offset: usize, expect: &Result<(u64, Msg), TryRecvError>) {
        let rx = self.receiver_mut(r);
        let id = match (rx.try_read(), expect) {
            (Ok(slot), Ok((pos, msg))) => {
                let info = slot.info();
                assert_eq!(info.id, *pos, "message id is its position");
                assert_eq!(
                    info.len,
                    msg.data.len(),
                    "zero-copy len is the whole message"
                );
                assert_eq!(info.message_len, msg.data.len());
                assert!(!info.truncated());
                assert_eq!(slot.len(), msg.data.len());
                assert_eq!(slot.is_empty(), msg.data.is_empty());
                assert_eq!(info.sender, SubscriberId(msg.sender), "sender");
                assert_eq!(info.target, msg.target.map(SubscriberId), "target");
                assert_eq!(info.tag, msg.tag, "tag");
                let mut all = vec![0u8; msg.data.len() + 3];
                assert_eq!(slot.read_at(0, &mut all), msg.data.len());
                assert_eq!(&all[..msg.data.len()], &msg.data[..], "payload bytes");
                // A partial read from `offset` into a 5-byte window.
                let mut win = [0u8; 5];
                let want = msg.data.len().saturating_sub(offset).min(win.len());
                assert_eq!(slot.read_at(offset, &mut win), want, "read_at({offset})");
                let start = offset.min(msg.data.len());
                assert_eq!(&win[..want], &msg.data[start..start + want]);
                info.id
                // The guard drops here: the message is consumed.
            }
            (got, expect) => {
                assert_eq!(
                    got.map(|s| s.info().id).err(),
                    expect.clone().err(),
                    "try_read by {r}"
                );
                return;
            }
        };
        self.delivered(r, id);
    }
}

impl<M: ModeTag> StateMachineTest for RingTest<M> {
    type SystemUnderTest = Sut;
    type Reference = RingModel<M>;

    fn init_test(model: &Model) -> Sut {
        let config = Config::new(model.mode)
            .capacity(model.capacity)
            .max_message(model.max_message as u32)
            .max_subscribers(model.entries.len() as u32);
        let ring = HeapRing::new(&config).expect("valid config");
        assert_eq!(ring.mode(), model.mode);
        Sut {
            ring,
            handles: model.entries.iter().map(|_| Handles::default()).collect(),
            before: model.clone(),
        }
    }

    fn apply(mut sut: Sut, after: &Model, op: Op) -> Sut {
        let mut model = sut.before.clone();
        let expect = model.step(&op);
        assert_eq!(&model, after, "the model is deterministic");
        match (&op, &expect) {
            (Op::Join(role), Expect::Join(e)) => sut.join(*role, e),
            (Op::DropProducer(p), _) => drop(sut.handles[*p as usize].producer.take()),
            (Op::DropReceiver(r), _) => drop(sut.handles[*r as usize].receiver.take()),
            (Op::Send { p, data, tag }, Expect::Send(e)) => {
                let tx = sut.producer(*p);
                let got = if *tag == 0 {
                    tx.try_send(data)
                } else {
                    tx.try_send_with(Envelope::tagged(*tag), data)
                };
                assert_eq!(&got, e, "try_send");
                if got.is_ok() {
                    // Nobody sleeps in these tests: no wake is ever needed.
                    assert!(tx.wake_set(1).is_empty());
                    assert!(!tx.has_sleepers());
                }
            }
            (Op::SendTooLarge { p, excess }, Expect::Send(e)) => {
                let data = vec![7u8; sut.before.max_message + excess];
                let tx = sut.producer(*p);
                assert_eq!(&tx.try_send(&data), e, "too large try_send");
                assert_eq!(
                    &tx.try_send_batch(&[&[][..], &data[..]]).map(|_| 0),
                    e,
                    "too large in a batch"
                );
            }
            (Op::SendBatch { p, msgs, oversize }, Expect::Batch(e, first)) => {
                let big = vec![1u8; sut.before.max_message + 1];
                let mut refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                if let Some(i) = *oversize {
                    refs.insert(i, &big);
                }
                let tx = sut.producer(*p);
                let got = tx.try_send_batch(&refs);
                assert_eq!(&got, e, "try_send_batch of {} at tail {first}", refs.len());
                assert_eq!(
                    sut.ring.tail(),
                    after.tail,
                    "batch claimed exactly its count"
                );
            }
            (Op::SendTo { p, target, data }, Expect::Send(e)) => {
                let got = sut.producer(*p).try_send_to(SubscriberId(*target), data);
                assert_eq!(&got, e, "try_send_to #{target}");
            }
            (
                Op::ClaimCommit {
                    p,
                    target,
                    tag,
                    chunks,
                    overflow,
                },
                Expect::Send(e),
            ) => {
                let max = sut.before.max_message;
                let env = Envelope {
                    target: target.map(SubscriberId),
                    tag: *tag,
                };
                let got = match sut.producer_mut(*p).try_claim_with(env) {
                    Err(err) => Err(err),
                    Ok(mut slot) => {
                        assert_eq!(Ok(slot.id()), *e, "claimed id");
                        assert!(slot.is_empty());
                        assert_eq!(slot.capacity(), max);
                        for c in chunks {
                            slot.append(c).expect("chunks fit in max_message");
                        }
                        let len = chunks.iter().map(Vec::len).sum::<usize>();
                        assert_eq!(slot.len(), len);
                        if *overflow {
                            let extra = vec![9u8; max - len + 1];
                            assert_eq!(
                                slot.append(&extra),
                                Err(TrySendError::TooLarge { len: max + 1, max }),
                                "append past max_message"
                            );
                            assert_eq!(slot.len(), len, "a refused append writes nothing");
                        }
                        Ok(slot.commit())
                    }
                };
                assert_eq!(&got, e, "try_claim + commit");
            }
            (Op::ClaimAbandon { p, partial }, Expect::Send(e)) => {
                let got = match sut.producer_mut(*p).try_claim() {
                    Err(err) => Err(err),
                    Ok(mut slot) => {
                        slot.append(partial).expect("fits");
                        Ok(slot.id())
                        // Dropped without commit: a skip record.
                    }
                };
                assert_eq!(&got, e, "try_claim then drop");
            }
            (Op::Recv { r, buf }, Expect::Recv(e)) => sut.recv(*r, *buf, e),
            (Op::Drain { r, buf }, Expect::Drain(all)) => {
                for e in all {
                    sut.recv(*r, *buf, e);
                }
            }
            (Op::RecvBatch { r, buf, max }, Expect::Batch2(e)) => sut.recv_batch(*r, *buf, *max, e),
            (Op::Read { r, offset }, Expect::Recv(e)) => sut.read(*r, *offset, e),
            (Op::Close, _) => {
                let woken = sut.ring.close();
                assert!(woken.is_empty(), "nobody sleeps, nobody to wake");
                assert!(sut.ring.is_closed());
            }
            (op, expect) => unreachable!("{op:?} predicted {expect:?}"),
        }
        sut.before = model;
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        let ring = &sut.ring;
        let (head, tail) = (ring.head(), ring.tail());
        assert_eq!(tail, model.tail, "tail counts every claimed position");
        assert!(head <= tail, "head {head} passed tail {tail}");
        assert!(
            tail - head <= model.capacity,
            "tail {tail} - head {head} exceeds capacity {}",
            model.capacity
        );
        match model.mode {
            Mode::Unicast | Mode::Multicast => {
                assert_eq!(
                    head,
                    model.tail - model.queue.len() as u64,
                    "shared head is exactly the first unconsumed position"
                );
            }
            Mode::Broadcast => {
                // The shared head is raised lazily: only bounded, by the
                // slowest live receiver's head.
                for e in model.entries.iter().filter(|e| e.recv) {
                    let local = model.tail - e.unread.len() as u64;
                    assert!(
                        head <= local,
                        "shared head {head} passed a receiver at {local}"
                    );
                }
            }
        }
        assert_eq!(ring.is_closed(), model.closed);
        let table = model.entries.len();
        for (i, (e, h)) in model.entries.iter().zip(&sut.handles).enumerate() {
            let id = SubscriberId(i as u32);
            assert_eq!(ring.is_receiver(id), e.recv, "is_receiver({id})");
            assert_eq!(h.producer.is_some(), e.send, "producer handle of {id}");
            assert_eq!(h.receiver.is_some(), e.recv, "receiver handle of {id}");
            if e.is_free() {
                continue;
            }
            let c = ring.counters(id).expect("inside the table");
            assert_eq!(c.sent, e.sent, "sent counter of {id}");
            assert_eq!(c.received, e.received, "received counter of {id}");
            assert_eq!(c.lagged, 0, "a lossless ring never lags ({id})");
            if let Some(tx) = &h.producer {
                assert_eq!(tx.id(), id);
                assert_eq!(tx.sent(), e.sent, "Producer::sent of {id}");
            }
            if let Some(rx) = &h.receiver {
                assert_eq!(rx.id(), id);
                assert_eq!(rx.received(), e.received, "Receiver::received of {id}");
                assert_eq!(rx.lagged(), 0);
            }
        }
        assert!(ring.counters(SubscriberId(table as u32)).is_none());
        assert!(!ring.is_receiver(SubscriberId(table as u32)));
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Transitions per case (at most).
const STEPS: usize = if cfg!(miri) { 12 } else { 150 };

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 1024 },
        // Regression files would land outside this test file; a failure
        // prints its minimal transition sequence instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

prop_state_machine! {
    #![proptest_config(config())]

    /// Unicast: one receiver, a second is refused.
    #[test]
    fn model_unicast(sequential 1..STEPS => RingTest<Unicast>);

    /// Broadcast: every receiver gets every message not addressed to another.
    #[test]
    fn model_broadcast(sequential 1..STEPS => RingTest<Broadcast>);

    /// Multicast: each message to exactly one competing receiver.
    #[test]
    fn model_multicast(sequential 1..STEPS => RingTest<Multicast>);
}

/// Regression: the model once found that `try_send_batch` sent only as many
/// messages as the producer's *cached* head said fit (the minimal sequences
/// after shrinking, one per mode). It now refreshes the head (and in
/// broadcast rescans) before settling for a partial batch.
#[test]
fn batch_sends_every_message_that_fits() {
    fn ring(mode: Mode, capacity: u64) -> HeapRing {
        let config = Config::new(mode)
            .capacity(capacity)
            .max_message(1)
            .max_subscribers(2);
        HeapRing::new(&config).expect("valid config")
    }
    // Unicast and multicast, capacity 2: the receiver frees the one slot in
    // use, so both messages of the batch fit; one is sent.
    for mode in [Mode::Unicast, Mode::Multicast] {
        let ring = ring(mode, 2);
        let tx = ring.producer().unwrap();
        let rx = ring.receiver().unwrap();
        tx.try_send(&[]).unwrap();
        rx.try_recv(&mut []).unwrap();
        assert_eq!(tx.try_send_batch(&[&[], &[]]), Ok(2), "{mode}");
    }
    // Broadcast with no receiver at all, capacity 4: every send fits, but
    // after six sends a batch of three sends two.
    let ring = ring(Mode::Broadcast, 4);
    let tx = ring.producer().unwrap();
    for _ in 0..6 {
        tx.try_send(&[]).unwrap();
    }
    assert_eq!(tx.try_send_batch(&[&[], &[], &[]]), Ok(3), "broadcast");
}
