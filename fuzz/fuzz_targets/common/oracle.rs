//! The trusted model of a ring: plain `VecDeque`s, no atomics, no slots.
//!
//! - Unicast and multicast keep one queue: every position from the shared
//!   head to the tail, messages and skip records alike (they occupy a slot
//!   until a receiver steps over them).
//! - Broadcast keeps one queue per receiver: the positions from its own head
//!   to the tail. A receiver joins at the tail with an empty queue; the ring
//!   is full when the fullest queue holds `capacity` records.
//! - The sleep/wake protocol is a set of sleeping receivers (with the wake
//!   word value their token saw) and the multicast round-robin cursor.
//!
//! Every method returns what the real ring must answer, checking the
//! conditions in the order the core checks them.

use std::collections::{BTreeMap, VecDeque};

use shmcast_core::{JoinError, Mode, TryRecvError, TrySendError};

use super::JoinAs;

/// A message as the model remembers it. `data[i] == None` is a byte the
/// sender never wrote (a gap in a zero-copy claim): it holds whatever an
/// older message left in the slot, so it is not compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub sender: u32,
    pub target: Option<u32>,
    pub tag: u64,
    pub data: Vec<Option<u8>>,
}

impl Msg {
    /// A message whose bytes are all known.
    pub fn plain(sender: u32, target: Option<u32>, tag: u64, data: &[u8]) -> Msg {
        Msg {
            sender,
            target,
            tag,
            data: data.iter().copied().map(Some).collect(),
        }
    }
}

/// One claimed position: a message or a skip record (`msg == None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub pos: u64,
    pub msg: Option<Msg>,
}

/// One entry of the subscriber table.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    pub send: bool,
    pub recv: bool,
    pub sent: u64,
    pub received: u64,
    /// Broadcast: positions from this receiver's head to the tail.
    pub unread: VecDeque<Rec>,
}

impl Entry {
    pub fn is_free(&self) -> bool {
        !self.send && !self.recv
    }
}

/// The model ring.
#[derive(Clone, Debug)]
pub struct Oracle {
    pub mode: Mode,
    pub capacity: u64,
    pub max_message: usize,
    pub entries: Vec<Entry>,
    /// Unicast / multicast: positions from the shared head to the tail.
    pub queue: VecDeque<Rec>,
    /// Positions claimed so far.
    pub tail: u64,
    pub closed: bool,
    /// Whether a sender ever joined.
    pub sender_joined: bool,
    /// Sleeping receivers: index -> the wake-word value their token expects.
    pub sleepers: BTreeMap<u32, u32>,
    /// Multicast round-robin cursor (the header's `wake.round_robin`).
    pub round_robin: u32,
    /// Words of the waiter bitmap.
    pub bitmap_words: usize,
}

impl Oracle {
    pub fn new(mode: Mode, capacity: u64, max_message: usize, table: usize) -> Oracle {
        Oracle {
            mode,
            capacity,
            max_message,
            entries: vec![Entry::default(); table],
            queue: VecDeque::new(),
            tail: 0,
            closed: false,
            sender_joined: false,
            sleepers: BTreeMap::new(),
            round_robin: 0,
            bitmap_words: table.div_ceil(64),
        }
    }

    pub fn producers(&self) -> Vec<u32> {
        (0..self.entries.len() as u32)
            .filter(|&i| self.entries[i as usize].send)
            .collect()
    }

    pub fn receivers(&self) -> Vec<u32> {
        (0..self.entries.len() as u32)
            .filter(|&i| self.entries[i as usize].recv)
            .collect()
    }

    pub fn is_receiver(&self, i: u32) -> bool {
        self.entries.get(i as usize).is_some_and(|e| e.recv)
    }

    /// Slots in use: what a producer's `tail - head` is after a rescan.
    pub fn used(&self) -> u64 {
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

    pub fn free(&self) -> u64 {
        let used = self.used();
        assert!(used <= self.capacity, "oracle overfilled");
        self.capacity - used
    }

    /// The queue a receiver reads from.
    fn queue_of(&mut self, r: u32) -> &mut VecDeque<Rec> {
        match self.mode {
            Mode::Broadcast => &mut self.entries[r as usize].unread,
            Mode::Unicast | Mode::Multicast => &mut self.queue,
        }
    }

    pub fn join(&mut self, role: JoinAs) -> Result<u32, JoinError> {
        if self.closed {
            return Err(JoinError::Closed);
        }
        let Some(i) = self.entries.iter().position(Entry::is_free) else {
            return Err(JoinError::TableFull {
                max: self.entries.len() as u32,
            });
        };
        let recv = role != JoinAs::Producer;
        let send = role != JoinAs::Receiver;
        if recv && self.mode == Mode::Unicast && self.entries.iter().any(|e| e.recv) {
            return Err(JoinError::ReceiverTaken);
        }
        self.entries[i] = Entry {
            send,
            recv,
            ..Entry::default()
        };
        self.sender_joined |= send;
        Ok(i as u32)
    }

    pub fn leave_producer(&mut self, p: u32) {
        self.entries[p as usize].send = false;
    }

    pub fn leave_receiver(&mut self, r: u32) {
        let e = &mut self.entries[r as usize];
        e.recv = false;
        e.unread.clear();
        self.sleepers.remove(&r);
    }

    /// The checks before a claim: target (support, then attachment), then
    /// closed, then room for one message.
    pub fn check_claim(&self, target: Option<u32>) -> Result<(), TrySendError> {
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
        if self.free() == 0 {
            return Err(TrySendError::Full);
        }
        Ok(())
    }

    /// A copying send: the length first, then as a claim.
    pub fn check_send(&self, len: usize, target: Option<u32>) -> Result<(), TrySendError> {
        if len > self.max_message {
            return Err(TrySendError::TooLarge {
                len,
                max: self.max_message,
            });
        }
        self.check_claim(target)
    }

    /// Claim the next position for `msg` (`None`: a skip record).
    pub fn push(&mut self, msg: Option<Msg>) -> u64 {
        let pos = self.tail;
        self.tail += 1;
        if let Some(m) = &msg {
            self.entries[m.sender as usize].sent += 1;
        }
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

    /// `try_send_batch`: every length is checked first, an empty batch
    /// sends nothing (even when closed), then as many as fit, at least one.
    pub fn batch(&mut self, p: u32, msgs: &[Vec<u8>]) -> Result<usize, TrySendError> {
        if let Some(m) = msgs.iter().find(|m| m.len() > self.max_message) {
            return Err(TrySendError::TooLarge {
                len: m.len(),
                max: self.max_message,
            });
        }
        if msgs.is_empty() {
            return Ok(0);
        }
        self.check_claim(None)?;
        let k = (msgs.len() as u64).min(self.free()) as usize;
        for m in &msgs[..k] {
            self.push(Some(Msg::plain(p, None, 0, m)));
        }
        Ok(k)
    }

    /// Receive for `r`: step over skip records and messages addressed to
    /// others, deliver the first message for `r`.
    pub fn recv(&mut self, r: u32) -> Result<(u64, Msg), TryRecvError> {
        let closed = self.closed;
        let queue = self.queue_of(r);
        while let Some(rec) = queue.pop_front() {
            let Some(msg) = rec.msg else { continue };
            if msg.target.is_some_and(|t| t != r) {
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

    /// `try_recv_batch` with `buf` bytes and `max` infos: what each delivered
    /// message is and how many of its bytes fit, or the error.
    #[allow(clippy::type_complexity)]
    pub fn recv_batch(
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
            // One claim each; later ones only while max_message bytes fit.
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
        let closed = self.closed;
        let queue = self.queue_of(r);
        while out.len() < max {
            let Some(rec) = queue.front() else { break };
            let for_us = rec
                .msg
                .as_ref()
                .is_some_and(|m| m.target.is_none_or(|t| t == r));
            if !for_us {
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
            return Err(if closed {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        }
        Ok(out)
    }

    /// `try_read`: multicast refuses, the others receive in place.
    pub fn read(&mut self, r: u32) -> Result<(u64, Msg), TryRecvError> {
        if self.mode == Mode::Multicast {
            return Err(TryRecvError::ZeroCopyUnsupported);
        }
        self.recv(r)
    }

    /// The re-check of `prepare_wait`: closed, in unicast the last sender
    /// gone, or a record (any record: a skip or a message for someone else
    /// ends a wait too) at the head.
    pub fn ready(&mut self, r: u32) -> bool {
        self.closed
            || (self.mode == Mode::Unicast && self.senders_gone())
            || !self.queue_of(r).is_empty()
    }

    /// `prepare_wait` by `r`, whose token would expect `expected`:
    /// `true` if it goes to sleep (its bit stays set).
    pub fn prepare_wait(&mut self, r: u32, expected: u32) -> bool {
        if self.ready(r) {
            self.sleepers.remove(&r);
            false
        } else {
            self.sleepers.insert(r, expected);
            true
        }
    }

    /// `wake_set(n)` / `wake_set_for(target)`: who is woken (and no longer
    /// sleeps).
    pub fn wake(&mut self, n: u64, target: Option<u32>) -> Vec<u32> {
        let woken: Vec<u32> = if let Some(t) = target {
            if self.sleepers.contains_key(&t) {
                vec![t]
            } else {
                vec![]
            }
        } else {
            match self.mode {
                Mode::Broadcast | Mode::Unicast => self.sleepers.keys().copied().collect(),
                Mode::Multicast => {
                    let total = (self.bitmap_words * 64) as u32;
                    let start = self.round_robin % total;
                    let mut out = Vec::new();
                    for k in 0..total {
                        if out.len() as u64 >= n {
                            break;
                        }
                        let i = (start + k) % total;
                        if self.sleepers.contains_key(&i) {
                            out.push(i);
                        }
                    }
                    if let Some(&last) = out.last() {
                        self.round_robin = (last + 1) % total;
                    }
                    out.sort_unstable();
                    out
                }
            }
        };
        for i in &woken {
            self.sleepers.remove(i);
        }
        woken
    }

    /// `Ring::wake_all` (and `close`): every sleeper.
    pub fn wake_all(&mut self) -> Vec<u32> {
        let all = self.sleepers.keys().copied().collect();
        self.sleepers.clear();
        all
    }

    /// Whether a sender ever joined and none is attached now.
    pub fn senders_gone(&self) -> bool {
        self.sender_joined && !self.entries.iter().any(|e| e.send)
    }
}
