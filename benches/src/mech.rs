//! The mechanisms under test, each as a sending end ([`Tx`]) and a receiving
//! end ([`Rx`]) of a one-way stream of fixed-size messages:
//!
//! | mechanism | send | receive |
//! |---|---|---|
//! | pipe, unix stream socket | `write(2)` of the message | `read(2)` until the message is complete (blocks) |
//! | raw spin ([`SpscTx`]/[`SpscRx`]) | copy into the slot, store `seq = pos + 1` | spin on `seq`, copy out, store `head` |
//! | shm+eventfd ([`EfdTx`]/[`EfdRx`]) | the raw ring, then `write(eventfd, 1)` | `read(eventfd)` (blocks) when no message is known to be there, then the raw ring |
//! | bare futex ([`FutexTx`]/[`FutexRx`]) | the raw ring, then store the message count in a shared 32-bit word and `FUTEX_WAKE(1)` | `FUTEX_WAIT` on the word while it still holds the count already consumed (no spinning), then the raw ring |
//! | shmcast ([`ShmcastTx`]/[`ShmcastRx`]) | `try_send` (which wakes sleepers), waiting on `Full` | `try_recv`, waiting on `Empty` (spin or yield), or the blocking `recv` (spin per the receiver's `Spin`, then sleep in its notify backend) |
//!
//! The raw ring is the floor: a single-producer single-consumer ring in a
//! shared mapping with the sequence word and the payload in the same cache
//! lines, plain `memcpy` copies, and nothing else (no claim CAS, no header
//! fields, no counters, no length). Messages have the length of the
//! receiver's buffer.
//!
//! Every polling wait goes through a [`Waiter`], which panics after
//! [`STALL`] without progress, so a broken peer fails the run instead of
//! hanging it. Waits that sleep in the kernel (`read(2)`, `FUTEX_WAIT`,
//! shmcast's `recv`) have no timeout: the bench's watchdog ends a stalled
//! run.

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;
use shmcast::{TryRecvError, TrySendError};

use crate::sys::{thread_cpu_ns, Arena};

/// How long a wait may see no progress before the run is declared broken.
pub const STALL: Duration = Duration::from_secs(20);

/// The sending end of a one-way message stream.
pub trait Tx {
    /// Send one message, waiting for room if needed.
    fn send(&mut self, msg: &[u8]);
}

/// The receiving end of a one-way message stream.
pub trait Rx {
    /// Receive one message into `buf`, waiting for it; returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
}

/// What to do while waiting for a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Busy-poll with the CPU's spin hint.
    Spin,
    /// `sched_yield` between polls (a polling receiver sharing its CPU).
    Yield,
    /// Spin briefly, then sleep this long between polls (so the wait costs
    /// no CPU time: used by senders whose CPU time is what is measured).
    Sleep(Duration),
}

thread_local! {
    /// CPU time this thread spent in [`Wait::Sleep`] sleeps.
    static SLEEP_CPU_NS: Cell<u64> = const { Cell::new(0) };
}

/// CPU time the calling thread spent in [`Wait::Sleep`] sleeps (the
/// syscalls and scheduling around them) since the last call; resets it.
/// Lets a sender report its CPU cost of sending without its cost of
/// waiting for room.
pub fn take_sleep_cpu_ns() -> u64 {
    SLEEP_CPU_NS.with(|c| c.replace(0))
}

/// A wait in progress: applies the [`Wait`] policy and detects stalls.
#[derive(Debug)]
pub struct Waiter {
    how: Wait,
    n: u32,
    since: Option<Instant>,
}

impl Waiter {
    /// Start waiting with policy `how`.
    pub fn new(how: Wait) -> Waiter {
        Waiter {
            how,
            n: 0,
            since: None,
        }
    }

    /// Wait once more. Panics (naming `what`) after [`STALL`].
    pub fn wait(&mut self, what: &str) {
        self.n = self.n.wrapping_add(1);
        match self.how {
            Wait::Spin => std::hint::spin_loop(),
            Wait::Yield => std::thread::yield_now(),
            Wait::Sleep(d) => {
                if self.n <= 16 {
                    std::hint::spin_loop()
                } else {
                    let c0 = thread_cpu_ns();
                    std::thread::sleep(d);
                    let spent = thread_cpu_ns().saturating_sub(c0);
                    SLEEP_CPU_NS.with(|c| c.set(c.get() + spent));
                }
            }
        }
        if self.n.is_multiple_of(1024) {
            let since = *self.since.get_or_insert_with(Instant::now);
            if since.elapsed() > STALL {
                panic!("{what}: no progress for {STALL:?}");
            }
        }
    }
}

/// A pipe or socket end used for sending.
#[derive(Debug)]
pub struct FdTx(pub File);

/// A pipe or socket end used for receiving.
#[derive(Debug)]
pub struct FdRx(pub File);

impl FdTx {
    /// Wrap an fd.
    pub fn new(fd: OwnedFd) -> FdTx {
        FdTx(File::from(fd))
    }
}

impl FdRx {
    /// Wrap an fd.
    pub fn new(fd: OwnedFd) -> FdRx {
        FdRx(File::from(fd))
    }
}

impl Tx for FdTx {
    fn send(&mut self, msg: &[u8]) {
        self.0.write_all(msg).expect("write to pipe/socket");
    }
}

impl Rx for FdRx {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.0.read_exact(buf).expect("read from pipe/socket");
        buf.len()
    }
}

/// Add 1 to an eventfd counter.
pub fn eventfd_signal(fd: &OwnedFd) {
    let n = rustix::io::write(fd, &1u64.to_ne_bytes()).expect("write(eventfd)");
    assert_eq!(n, 8, "short eventfd write");
}

/// Block until an eventfd counter is non-zero; returns it (and resets it).
pub fn eventfd_wait(fd: &OwnedFd) -> u64 {
    let mut b = [0u8; 8];
    let n = rustix::io::read(fd, &mut b).expect("read(eventfd)");
    assert_eq!(n, 8, "short eventfd read");
    u64::from_ne_bytes(b)
}

/// Shape of a raw SPSC ring in an [`Arena`]: a `head` word on its own
/// 128-byte line, then `capacity` slots of `stride` bytes, each a `seq`
/// word followed by up to `msg` payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Number of slots (a power of two).
    pub capacity: usize,
    /// Largest message.
    pub msg: usize,
    /// Bytes per slot (64-byte multiple).
    pub stride: usize,
}

const SLOTS_AT: usize = 128;
const PAYLOAD_AT: usize = 8;

impl RingLayout {
    /// A ring of `capacity` slots (a power of two) for messages of up to
    /// `msg` bytes.
    pub fn new(capacity: usize, msg: usize) -> RingLayout {
        assert!(
            capacity.is_power_of_two(),
            "ring capacity must be a power of two"
        );
        RingLayout {
            capacity,
            msg,
            stride: (PAYLOAD_AT + msg).div_ceil(64) * 64,
        }
    }

    /// Bytes the ring occupies (a page multiple, so rings packed one after
    /// another stay page-aligned).
    pub fn bytes(&self) -> usize {
        (SLOTS_AT + self.capacity * self.stride).div_ceil(4096) * 4096
    }
}

/// One process's view of a raw ring.
#[derive(Debug)]
struct RingView {
    /// Keeps the mapping alive while `base` points into it.
    _arena: Rc<Arena>,
    base: *mut u8,
    lay: RingLayout,
}

impl RingView {
    fn new(arena: Rc<Arena>, offset: usize, lay: RingLayout) -> RingView {
        assert_eq!(offset % 64, 0, "ring offset must be cache-line aligned");
        let base = arena.at(offset, lay.bytes());
        RingView {
            _arena: arena,
            base,
            lay,
        }
    }

    fn word(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at + 8 <= self.lay.bytes() && at.is_multiple_of(8));
        // `at` is 8-aligned inside the ring (callers pass SLOTS_AT + k *
        // stride with 64-byte strides, or 0); the ring lies inside the arena
        // (checked by `Arena::at` in `new`), which `self._arena` keeps mapped.
        // SAFETY: aligned, in bounds and alive while `self` is (above); every
        // process touches this word only atomically.
        unsafe { AtomicU64::from_ptr(self.base.add(at).cast::<u64>()) }
    }

    fn head(&self) -> &AtomicU64 {
        self.word(0)
    }

    fn slot_at(&self, pos: u64) -> usize {
        SLOTS_AT + (pos as usize & (self.lay.capacity - 1)) * self.lay.stride
    }

    fn seq(&self, pos: u64) -> &AtomicU64 {
        self.word(self.slot_at(pos))
    }

    fn payload(&self, pos: u64) -> *mut u8 {
        // SAFETY: slot_at(pos) + PAYLOAD_AT + msg <= bytes(), within the
        // ring's part of the arena (see `word`).
        unsafe { self.base.add(self.slot_at(pos) + PAYLOAD_AT) }
    }
}

/// Sending end of a raw SPSC ring.
#[derive(Debug)]
pub struct SpscTx {
    ring: RingView,
    tail: u64,
    cached_head: u64,
    full: Wait,
}

/// Receiving end of a raw SPSC ring.
#[derive(Debug)]
pub struct SpscRx {
    ring: RingView,
    head: u64,
    empty: Wait,
}

impl SpscTx {
    /// The producer of the ring at `offset` in `arena` (zeroed, or left by a
    /// previous producer of this process: positions restart at 0 only on a
    /// fresh arena). Waits with `full` when the ring is full.
    pub fn new(arena: Rc<Arena>, offset: usize, lay: RingLayout, full: Wait) -> SpscTx {
        SpscTx {
            ring: RingView::new(arena, offset, lay),
            tail: 0,
            cached_head: 0,
            full,
        }
    }
}

impl SpscRx {
    /// The consumer of the ring at `offset` in `arena`. Waits with `empty`.
    pub fn new(arena: Rc<Arena>, offset: usize, lay: RingLayout, empty: Wait) -> SpscRx {
        SpscRx {
            ring: RingView::new(arena, offset, lay),
            head: 0,
            empty,
        }
    }
}

impl Tx for SpscTx {
    fn send(&mut self, msg: &[u8]) {
        let cap = self.ring.lay.capacity as u64;
        assert!(
            msg.len() <= self.ring.lay.msg,
            "message larger than the ring's slots"
        );
        if self.tail - self.cached_head >= cap {
            let mut w = Waiter::new(self.full);
            loop {
                // Acquire: pairs with the consumer's Release store of head,
                // so its reads of the slot we are about to reuse are done.
                self.cached_head = self.ring.head().load(Ordering::Acquire);
                if self.tail - self.cached_head < cap {
                    break;
                }
                w.wait("raw ring full");
            }
        }
        let p = self.ring.payload(self.tail);
        // Position `tail` belongs to us: the consumer released it (head >
        // tail - capacity, read with Acquire above or earlier) and will not
        // read it before the Release store of seq below.
        // SAFETY: no one else accesses these bytes now (above), and they lie
        // in the slot (msg.len() <= lay.msg, asserted).
        unsafe { std::slice::from_raw_parts_mut(p, msg.len()) }.copy_from_slice(msg);
        // Release: publishes the payload to the consumer's Acquire load.
        self.ring
            .seq(self.tail)
            .store(self.tail + 1, Ordering::Release);
        self.tail += 1;
    }
}

impl Rx for SpscRx {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let h = self.head;
        let seq = self.ring.seq(h);
        // Acquire: pairs with the producer's Release store of seq.
        if seq.load(Ordering::Acquire) != h + 1 {
            let mut w = Waiter::new(self.empty);
            while seq.load(Ordering::Acquire) != h + 1 {
                w.wait("raw ring empty");
            }
        }
        let n = buf.len().min(self.ring.lay.msg);
        let p = self.ring.payload(h);
        // Position h is published (seq == h + 1, Acquire) and the producer
        // does not rewrite it before our Release store of head below.
        // SAFETY: nobody writes these bytes now (above); n <= lay.msg keeps
        // the range inside the slot.
        buf[..n].copy_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
        // Release: our read of the slot happens before its reuse.
        self.ring.head().store(h + 1, Ordering::Release);
        self.head = h + 1;
        n
    }
}

/// Sending end of shm+eventfd: the raw ring, then one `write(eventfd)` per
/// message.
#[derive(Debug)]
pub struct EfdTx {
    ring: SpscTx,
    efd: OwnedFd,
}

/// Receiving end of shm+eventfd: blocks in `read(eventfd)` whenever it does
/// not already know of a published message.
#[derive(Debug)]
pub struct EfdRx {
    ring: SpscRx,
    efd: OwnedFd,
    known: u64,
}

impl EfdTx {
    /// Wrap a raw ring producer and the eventfd that counts its messages.
    pub fn new(ring: SpscTx, efd: OwnedFd) -> EfdTx {
        EfdTx { ring, efd }
    }
}

impl EfdRx {
    /// Wrap a raw ring consumer and the eventfd that counts its messages.
    pub fn new(ring: SpscRx, efd: OwnedFd) -> EfdRx {
        EfdRx {
            ring,
            efd,
            known: 0,
        }
    }
}

impl Tx for EfdTx {
    fn send(&mut self, msg: &[u8]) {
        self.ring.send(msg);
        eventfd_signal(&self.efd);
    }
}

impl Rx for EfdRx {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        if self.known == 0 {
            self.known = eventfd_wait(&self.efd);
        }
        self.known -= 1;
        self.ring.recv(buf)
    }
}

/// A 32-bit futex word in an [`Arena`] (so shared between the processes
/// that map it).
#[derive(Debug)]
pub struct FutexWord {
    /// Keeps the mapping alive while `ptr` points into it.
    _arena: Rc<Arena>,
    ptr: *mut u32,
}

impl FutexWord {
    /// The word at `offset` (a multiple of 4) in `arena`.
    pub fn new(arena: Rc<Arena>, offset: usize) -> FutexWord {
        assert_eq!(offset % 4, 0, "futex word offset must be 4-aligned");
        let ptr = arena.at(offset, 4).cast::<u32>();
        FutexWord { _arena: arena, ptr }
    }

    /// The word.
    pub fn get(&self) -> &AtomicU32 {
        // `ptr` is 4-aligned (the arena is page-aligned, the offset a
        // multiple of 4) and inside the arena (checked by `Arena::at`),
        // which `self._arena` keeps mapped; every process touches this word
        // only atomically or in the kernel's futex calls.
        // SAFETY: aligned, in bounds and alive while `self` is (above).
        unsafe { AtomicU32::from_ptr(self.ptr) }
    }
}

/// Sleep in `FUTEX_WAIT` until `word` no longer holds `old`. Re-checks the
/// word after every return: a wake, a spurious wake-up, `EAGAIN` (the word
/// changed before the kernel queued us) and `EINTR` (a signal) all loop.
pub fn futex_wait_change(word: &AtomicU32, old: u32) {
    // Acquire: pairs with the waker's Release store of the new value.
    while word.load(Ordering::Acquire) == old {
        // Shared futex (no FUTEX_PRIVATE_FLAG): the word lives in a
        // MAP_SHARED memfd mapped by two processes, and a private futex is
        // keyed by the address in one process's address space only.
        match futex::wait(word, futex::Flags::empty(), old, None) {
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
            Err(e) => panic!("FUTEX_WAIT: {e}"),
        }
    }
}

/// Store `new` in `word` and wake one waiter (`FUTEX_WAKE(1)`, shared).
pub fn futex_store_wake(word: &AtomicU32, new: u32) {
    // Release: what the caller wrote before is visible to the waiter that
    // sees `new` (its Acquire load in `futex_wait_change`).
    word.store(new, Ordering::Release);
    if let Err(e) = futex::wake(word, futex::Flags::empty(), 1) {
        panic!("FUTEX_WAKE: {e}");
    }
}

/// Sending end of the bare futex mechanism: the raw ring, then the number
/// of messages sent stored in a shared futex word and `FUTEX_WAKE(1)`,
/// every message (no check for a sleeper).
#[derive(Debug)]
pub struct FutexTx {
    ring: SpscTx,
    word: FutexWord,
    sent: u32,
}

/// Receiving end of the bare futex mechanism: `FUTEX_WAIT` on the word
/// while it holds the number of messages already taken (never spins), then
/// the raw ring.
#[derive(Debug)]
pub struct FutexRx {
    ring: SpscRx,
    word: FutexWord,
    taken: u32,
}

impl FutexTx {
    /// Wrap a raw ring producer and the futex word that counts its
    /// messages (zero on a fresh arena).
    pub fn new(ring: SpscTx, word: FutexWord) -> FutexTx {
        FutexTx {
            ring,
            word,
            sent: 0,
        }
    }
}

impl FutexRx {
    /// Wrap a raw ring consumer and the futex word that counts its
    /// messages.
    pub fn new(ring: SpscRx, word: FutexWord) -> FutexRx {
        FutexRx {
            ring,
            word,
            taken: 0,
        }
    }
}

impl Tx for FutexTx {
    fn send(&mut self, msg: &[u8]) {
        self.ring.send(msg);
        self.sent = self.sent.wrapping_add(1);
        futex_store_wake(self.word.get(), self.sent);
    }
}

impl Rx for FutexRx {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        // The word counts messages published (wrapping); while it equals
        // what we have taken, there is nothing new: sleep. The ring's slot
        // was published before the word's Release store, so it is there.
        futex_wait_change(self.word.get(), self.taken);
        self.taken = self.taken.wrapping_add(1);
        self.ring.recv(buf)
    }
}

/// A shmcast sender as a [`Tx`]; waits with `full` while the ring is full.
#[derive(Debug)]
pub struct ShmcastTx {
    /// The sender.
    pub tx: shmcast::Sender,
    /// Policy while the ring is full.
    pub full: Wait,
}

/// How a [`ShmcastRx`] waits for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// `try_recv`, waiting with this policy while empty.
    Poll(Wait),
    /// The blocking `recv`: spins as the receiver's `Spin` says, then sleeps
    /// in its notify backend until a sender wakes it.
    Recv,
}

/// A shmcast receiver as an [`Rx`].
#[derive(Debug)]
pub struct ShmcastRx {
    /// The receiver.
    pub rx: shmcast::Receiver,
    /// How it waits.
    pub mode: RxMode,
}

impl Tx for ShmcastTx {
    fn send(&mut self, msg: &[u8]) {
        let mut w: Option<Waiter> = None;
        loop {
            match self.tx.try_send(msg) {
                Ok(_) => return,
                Err(TrySendError::Full) => w
                    .get_or_insert_with(|| Waiter::new(self.full))
                    .wait("shmcast ring full"),
                Err(e) => panic!("shmcast send: {e}"),
            }
        }
    }
}

impl ShmcastRx {
    /// Receive one message; returns its info.
    pub fn recv_info(&mut self, buf: &mut [u8]) -> shmcast::MessageInfo {
        let empty = match self.mode {
            // No timeout (it would cost a clock read per call): a stalled
            // run is ended by the bench's watchdog.
            RxMode::Recv => {
                return self
                    .rx
                    .recv(buf)
                    .unwrap_or_else(|e| panic!("shmcast recv: {e}"))
            }
            RxMode::Poll(w) => w,
        };
        let mut w: Option<Waiter> = None;
        loop {
            match self.rx.try_recv(buf) {
                Ok(info) => return info,
                Err(TryRecvError::Empty) => w
                    .get_or_insert_with(|| Waiter::new(empty))
                    .wait("shmcast ring empty"),
                Err(e) => panic!("shmcast receive: {e}"),
            }
        }
    }
}

impl Rx for ShmcastRx {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.recv_info(buf).len
    }
}

/// Write the sequence number `seq` into the first 8 bytes of `msg` (all
/// benchmark messages are at least 8 bytes).
pub fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number in the first 8 bytes of `msg`.
pub fn seq_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().expect("messages are at least 8 bytes"))
}
