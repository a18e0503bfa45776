//! Sending and receiving handles over shared memory: the core ring handles
//! plus the notify layer, so that receivers can sleep and senders wake them.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmcast_core::{
    Envelope, MessageInfo, Mode, ReadSlot, Ring, SubscriberId, TryRecvError, TrySendError, WakeSet,
};
use shmcast_uring_notify::{select, BackendKind, Sleeper, Unsupported, WakeStats, Waker};

use crate::error::{RecvError, SendError};
use crate::liveness::{evict_dead, evict_dead_senders, is_dead, Held, Liveness};
use crate::map::ShmRegions;

type CoreProducer = shmcast_core::Producer<ShmRegions>;
type CoreReceiver = shmcast_core::Receiver<ShmRegions>;

/// Whether `every` has passed since `last` (or it never happened); if so,
/// `last` becomes now. Rate-limits the probes of dead peers.
fn due(last: &Cell<Option<Instant>>, every: Duration) -> bool {
    let now = Instant::now();
    if last
        .get()
        .is_some_and(|t| now.saturating_duration_since(t) < every)
    {
        return false;
    }
    last.set(Some(now));
    true
}

/// A sender on a shared-memory channel.
///
/// Every successful send runs the eventcount check (one fence and one load
/// of the waiter bitmap) and wakes sleeping receivers only if there are any:
/// no syscall while receivers are awake. [`Sender::stats`] counts both.
pub struct Sender {
    inner: Option<CoreProducer>,
    waker: RefCell<Waker>,
    /// Publishes whose fast check found nobody asleep (kept out of the
    /// `RefCell` so the common path borrows nothing); folded into `stats()`.
    skipped: Cell<u64>,
    /// A broadcast wake relay we offered may be untaken: watch it after
    /// each publish (`Waker::watch_relay`).
    relay_watch: Cell<bool>,
    /// The channel's liveness locks (see `liveness`), to find receivers
    /// that died holding the ring full.
    liveness: Option<Arc<Liveness>>,
    /// When we last probed for dead receivers (at most every
    /// [`PROBE_EVERY`]), and whether the last zero-copy claim found the
    /// ring full (the next one probes first).
    last_probe: Cell<Option<Instant>>,
    claim_was_full: Cell<bool>,
    /// Our own lock; after `inner`, so it is released after we left.
    _held: Option<Held>,
}

/// How often a sender that keeps finding the ring full looks for dead
/// receivers holding it (one `fcntl` per holder).
const PROBE_EVERY: Duration = Duration::from_millis(1);

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.p().id())
            .finish_non_exhaustive()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let Some(p) = self.inner.take() else { return };
        let ring = p.ring().clone();
        drop(p); // leave the ring
                 // A unicast receiver reads a drained ring whose senders all left as
                 // closed. Wake whoever sleeps (after our leave; `wake_all` starts
                 // with a SeqCst fence that pairs with the receiver's in
                 // `prepare_wait`): either it sees our leave in its re-check, or we
                 // see its waiter bit here. A spurious wake, if other senders remain,
                 // costs one re-check.
        if ring.mode() == Mode::Unicast {
            let set = ring.wake_all();
            let _ = self.waker.get_mut().wake(&ring, &set);
        }
    }
}

/// Backoff while the ring is full: spin briefly, then yield, then sleep
/// with doubling pauses up to 1 ms. (Senders poll for room; receivers
/// sleep on the eventcount.)
struct FullBackoff {
    step: u32,
}

impl FullBackoff {
    fn wait(&mut self, deadline: Option<Instant>) {
        self.step = self.step.saturating_add(1);
        if self.step <= 32 {
            std::hint::spin_loop();
        } else if self.step <= 64 {
            std::thread::yield_now();
        } else {
            let pause = Duration::from_micros(20u64 << (self.step - 64).min(6));

            let pause = match deadline {
                Some(d) => pause.min(d.saturating_duration_since(Instant::now())),
                None => pause,
            };
            std::thread::sleep(pause);
        }
    }
}

impl Sender {
    pub(crate) fn new(
        inner: CoreProducer,
        eventfds: Option<Arc<[OwnedFd]>>,
        liveness: Option<Arc<Liveness>>,
    ) -> Self {
        let held = liveness
            .as_ref()
            .and_then(|l| Held::take(l, inner.ring(), inner.id(), inner.generation()));
        Sender {
            inner: Some(inner),
            waker: RefCell::new(Waker::new(eventfds)),
            skipped: Cell::new(0),
            relay_watch: Cell::new(false),
            liveness,
            last_probe: Cell::new(None),
            claim_was_full: Cell::new(false),
            _held: held,
        }
    }

    /// `send` once, and once more if it found the ring full and dead
    /// receivers holding it could be evicted.
    #[inline]
    fn again_if_evicted<T>(
        &self,
        send: impl Fn(&CoreProducer) -> Result<T, TrySendError>,
    ) -> Result<T, TrySendError> {
        match send(self.p()) {
            Err(TrySendError::Full) if self.evict_dead_receivers() => send(self.p()),
            r => r,
        }
    }

    /// The ring was full: evict receivers holding it whose processes are
    /// gone (at most every [`PROBE_EVERY`]). True if any was, so that the
    /// send is worth trying again.
    #[cold]
    #[inline(never)]
    fn evict_dead_receivers(&self) -> bool {
        let Some(liveness) = &self.liveness else {
            return false;
        };
        if !due(&self.last_probe, PROBE_EVERY) {
            return false;
        }
        let ring = self.p().ring();
        let mut held = [(SubscriberId(0), 0); 8];
        let n = ring.holding_receivers(&mut held);
        evict_dead(liveness, ring, held[..n].iter().copied()) > 0
    }

    #[inline]
    fn p(&self) -> &CoreProducer {
        self.inner.as_ref().expect("only None during drop")
    }

    fn wake(&self, set: WakeSet) {
        // A failed wake is counted (`stats().failures`); the message is
        // sent either way, and every receiver's sleep is bounded.
        let mut waker = self.waker.borrow_mut();
        let _ = waker.wake(self.p().ring(), &set);
        self.relay_watch.set(waker.relay_pending());
    }

    /// After publishing `n` messages (to `target` only, if given): the
    /// fast eventcount check, and the wake only if somebody sleeps.
    #[inline]
    fn after_publish(&self, n: u64, target: Option<SubscriberId>) {
        if !self.p().ring().sleepers_after_publish() {
            self.skipped.set(self.skipped.get().wrapping_add(1));
            if self.relay_watch.get() {
                self.watch_relay();
            }
            return;
        }
        self.wake_sleepers(n, target);
    }

    /// A relay we offered may still be untaken: see `Waker::watch_relay`.
    #[cold]
    #[inline(never)]
    fn watch_relay(&self) {
        let mut waker = self.waker.borrow_mut();
        waker.watch_relay(self.p().ring());
        self.relay_watch.set(waker.relay_pending());
    }

    /// The slow half of `after_publish`, out of line so that the common
    /// case (nobody asleep) carries none of its stack frame.
    #[cold]
    #[inline(never)]
    fn wake_sleepers(&self, n: u64, target: Option<SubscriberId>) {
        let ring = self.p().ring();
        let set = match target {
            Some(t) => ring.wake_set_for(t),
            None => ring.wake_set(n),
        };
        self.wake(set);
    }

    /// This sender's subscriber id.
    pub fn id(&self) -> SubscriberId {
        self.p().id()
    }

    /// A read-only look at the ring: geometry, positions, counters.
    pub fn ring(&self) -> crate::RingView<'_> {
        crate::RingView(self.p().ring())
    }

    /// The whole core ring over this process's mappings, with every
    /// operation of [`shmcast_core::Ring`], including ones this handle's
    /// role does not grant (closing the channel for everyone, joining
    /// again, writing entries). It is not a permission boundary either way:
    /// the memory is shared, and what it does a peer can do by writing the
    /// mapping. For embedders building their own protocol on the ring, and
    /// for tests that play a misbehaving peer; [`Self::ring`] is the
    /// read-only look.
    pub fn raw_ring(&self) -> &Ring<ShmRegions> {
        self.p().ring()
    }

    /// Counters of the wake path: publishes checked, publishes that found
    /// nobody asleep (no syscall), wake syscalls made.
    pub fn stats(&self) -> WakeStats {
        let mut stats = self.waker.borrow().stats();
        let skipped = self.skipped.get();
        stats.checks = stats.checks.wrapping_add(skipped);
        stats.skipped = stats.skipped.wrapping_add(skipped);
        stats
    }

    /// Send `data` if there is room now. Returns the message id.
    #[inline]
    pub fn try_send(&self, data: &[u8]) -> Result<u64, TrySendError> {
        let id = self.again_if_evicted(|p| p.try_send(data))?;
        self.after_publish(1, None);
        Ok(id)
    }

    /// Send `data` to receiver `target` only, if there is room now.
    pub fn try_send_to(&self, target: SubscriberId, data: &[u8]) -> Result<u64, TrySendError> {
        self.try_send_with(Envelope::to(target), data)
    }

    /// Send with an [`Envelope`] (target, tag), if there is room now.
    pub fn try_send_with(&self, env: Envelope, data: &[u8]) -> Result<u64, TrySendError> {
        let id = self.again_if_evicted(|p| p.try_send_with(env, data))?;
        self.after_publish(1, env.target);
        Ok(id)
    }

    /// Send as many of `msgs` as fit now, in order, with one claim; returns
    /// how many (at least 1; `Full` if none fit). The sizes are checked
    /// first: if any message is larger than the channel's maximum, none is
    /// sent (`TooLarge`), so a batch never goes out in part for that reason.
    pub fn try_send_batch(&self, msgs: &[&[u8]]) -> Result<usize, TrySendError> {
        let n = self.again_if_evicted(|p| p.try_send_batch(msgs))?;
        if n > 0 {
            self.after_publish(n as u64, None);
        }
        Ok(n)
    }

    /// Claim a slot to write in place (zero-copy); see
    /// [`shmcast_core::Producer::try_claim`]. Commit wakes receivers.
    pub fn try_claim(&mut self) -> Result<SendSlot<'_>, TrySendError> {
        self.try_claim_with(Envelope::default())
    }

    /// [`Sender::try_claim`] with an [`Envelope`].
    pub fn try_claim_with(&mut self, env: Envelope) -> Result<SendSlot<'_>, TrySendError> {
        // After a claim that found the ring full, look for dead receivers
        // holding it first (a slot borrowed from `self` cannot be retried
        // within one call).
        if self.claim_was_full.get() {
            self.evict_dead_receivers();
        }
        let Sender {
            inner,
            waker,
            relay_watch,
            claim_was_full,
            ..
        } = self;
        let producer = inner.as_mut().expect("only None during drop");
        let ring = producer.ring().clone();
        let slot = producer.try_claim_with(env);
        claim_was_full.set(matches!(slot, Err(TrySendError::Full)));
        let slot = slot?;
        Ok(SendSlot {
            slot: Some(slot),
            ring,
            waker,
            relay_watch,
            target: env.target,
        })
    }

    /// Send `data`, waiting while the ring is full.
    ///
    /// A full ring waits for its receivers, however long: with none
    /// attached to a unicast or multicast ring (a receiver that left, say),
    /// messages stay in the ring for the next one, and this waits until it
    /// comes (a broadcast ring without receivers is never full). Receivers
    /// whose processes died are evicted (see the README's "dead peer"), so
    /// they never hold the ring for good. [`Sender::send_timeout`] bounds
    /// the wait.
    pub fn send(&self, data: &[u8]) -> Result<u64, SendError> {
        self.send_until(Envelope::default(), data, None)
    }

    /// Send `data`, waiting at most `timeout` for room.
    pub fn send_timeout(&self, data: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.send_until(
            Envelope::default(),
            data,
            Instant::now().checked_add(timeout),
        )
    }

    /// Send with an [`Envelope`], waiting while the ring is full, until
    /// `deadline` if one is given.
    pub fn send_with(
        &self,
        env: Envelope,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<u64, SendError> {
        self.send_until(env, data, deadline)
    }

    fn send_until(
        &self,
        env: Envelope,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<u64, SendError> {
        let mut backoff = FullBackoff { step: 0 };
        loop {
            match self.try_send_with(env, data) {
                Ok(id) => return Ok(id),
                Err(e) => {
                    if let Some(e) = SendError::from_try(e) {
                        return Err(e);
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SendError::Timeout);
            }
            backoff.wait(deadline);
        }
    }
}

/// A claimed slot on a shared-memory channel (zero-copy send). Dereferences
/// to [`shmcast_core::SendSlot`] for writing; [`SendSlot::commit`]
/// publishes and wakes. Dropped without commit, it publishes a skip record.
pub struct SendSlot<'a> {
    slot: Option<shmcast_core::SendSlot<'a, ShmRegions>>,
    ring: Ring<ShmRegions>,
    waker: &'a RefCell<Waker>,
    relay_watch: &'a Cell<bool>,
    target: Option<SubscriberId>,
}

impl SendSlot<'_> {
    fn wake(&self, set: &WakeSet) {
        let mut waker = self.waker.borrow_mut();
        let _ = waker.wake(&self.ring, set);
        self.relay_watch.set(waker.relay_pending());
    }
}

impl fmt::Debug for SendSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.slot.fmt(f)
    }
}

impl<'a> Deref for SendSlot<'a> {
    type Target = shmcast_core::SendSlot<'a, ShmRegions>;
    fn deref(&self) -> &Self::Target {
        self.slot.as_ref().expect("present until commit")
    }
}

impl DerefMut for SendSlot<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.slot.as_mut().expect("present until commit")
    }
}

impl Drop for SendSlot<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // Abandoned: the core publishes a skip record. Receivers asleep
            // behind this position (a later message already woke them, and
            // they found this one unpublished) must step over it now.
            drop(slot);
            let set = self.ring.wake_set(1);
            self.wake(&set);
        }
    }
}

impl SendSlot<'_> {
    /// Publish the message and wake whoever sleeps. Returns its id.
    pub fn commit(mut self) -> u64 {
        let slot = self.slot.take().expect("present until commit");
        let id = slot.commit();
        let set = match self.target {
            Some(t) => self.ring.wake_set_for(t),
            None => self.ring.wake_set(1),
        };
        self.wake(&set);
        id
    }
}

/// How long a receiver spins (re-checking the ring) before it sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spin {
    /// Never spin: sleep at once.
    Off,
    /// Spin this long.
    For(Duration),
    /// Look for [`Spin::AUTO_DURATION`] before sleeping: spinning when the
    /// machine has at least as many online CPUs as the ring has parties
    /// (attached subscribers); otherwise calling `sched_yield` between
    /// looks, since spinning on a CPU another party needs only delays it
    /// while yielding hands it over. Either way a message that comes within
    /// the budget is taken without the sender paying a wake syscall: with
    /// 16 receivers sharing one CPU, going straight to sleep made a
    /// multicast sender wake a receiver for up to 0.96 of its messages
    /// (sender cost 1.6–2.9x that with one receiver); yielding first
    /// brought it to 0.9–1.3x (`shmcast-bench --only broadcast,multicast`).
    Auto,
}

impl Spin {
    /// The spin of [`Spin::Auto`]: about the cost of a sleep and a wake on
    /// our machines (~6–7 µs each way), so a message that comes sooner is
    /// caught without a syscall and spinning never costs more than
    /// sleeping would have (the classic two-competitive rule). Measured by
    /// `examples/spin_tuning.rs` (blocking ping-pong between two pinned
    /// processes): without spin the one-way latency is the wake floor
    /// (~6–9 µs); a 10 µs spin answers back-to-back messages in ~1 µs and
    /// costs ~2.5 µs of CPU per round trip instead of ~7–10 µs of syscalls.
    pub const AUTO_DURATION: Duration = Duration::from_micros(10);
}

/// The blocking counterpart of a `try_recv` error other than `Empty`.
fn recv_error(e: TryRecvError) -> RecvError {
    match e {
        TryRecvError::Closed => RecvError::Closed,
        TryRecvError::Lagged(n) => RecvError::Lagged(n),
        TryRecvError::Empty | TryRecvError::Detached | TryRecvError::ZeroCopyUnsupported => {
            RecvError::Detached
        }
    }
}

/// CPUs online on the machine (not just those this process may run on:
/// the other parties are other processes, possibly pinned elsewhere).
fn online_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        let parse = |s: &str| -> Option<usize> {
            let mut n = 0;
            for part in s.trim().split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        n += b
                            .parse::<usize>()
                            .ok()?
                            .checked_sub(a.parse::<usize>().ok()?)?
                            + 1
                    }
                    None => {
                        part.parse::<usize>().ok()?;
                        n += 1
                    }
                }
            }
            Some(n)
        };
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse(&s))
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// A receiver on a shared-memory channel.
///
/// [`Receiver::try_recv`], [`Receiver::try_recv_batch`] and
/// [`Receiver::try_read`] never block; [`Receiver::recv`] and
/// [`Receiver::recv_timeout`] sleep in the notify backend chosen for this
/// receiver ([`Receiver::backend`]). The rest of
/// [`shmcast_core::Receiver`] is reached through `Deref`.
pub struct Receiver {
    // Dropped first: an io_uring the receiver sleeps in goes before the mapping.
    sleeper: RefCell<Sleeper>,
    fallback: Option<Unsupported>,
    spin: Spin,
    eventfds: Option<Arc<[OwnedFd]>>,
    inner: CoreReceiver,
    /// Our liveness lock; after `inner`, so it is released after we left.
    _held: Option<Held>,
    /// The channel's liveness locks: whether a sender that claimed the
    /// position we wait at is gone.
    liveness: Option<Arc<Liveness>>,
    /// The claimed but unpublished position we have been waiting at, and
    /// since when (see `STUCK_AFTER`). Kept across calls: a caller that
    /// polls, or receives with timeouts shorter than `STUCK_AFTER`, waits
    /// at one position over many calls.
    stuck: Cell<Option<(u64, Instant)>>,
    /// Polls since the last look for a stuck position (see `POLL_LOOK_EVERY`).
    polls: Cell<u32>,
    /// When a blocking unicast receive last looked for senders that died
    /// (see `SENDER_LOOK_EVERY`).
    senders_looked: Cell<Option<Instant>>,
}

/// How long a blocking receive waits at a position that is claimed but not
/// published before it checks whether the sender that claimed it died
/// (and then steps over it). A live sender publishes within microseconds,
/// or a scheduler slice when preempted mid-claim.
const STUCK_AFTER: Duration = Duration::from_millis(10);

/// A polling receive (`try_recv`, `try_recv_batch`: empty ones; `try_read`:
/// every call) looks whether it waits at a stuck position once in this many
/// polls: a look reads the tail, a line the senders write, and the clock,
/// which would slow a busy-polling loop down if done at every poll. At
/// ~5-50 ns a poll that is a look every 5-50 µs, far below `STUCK_AFTER`.
const POLL_LOOK_EVERY: u32 = 1024;

/// The most dead senders' positions one polling receive steps over (each
/// step scans the table and probes locks); past that it returns `Empty`,
/// and the next call goes on.
const STEPS_PER_POLL: u32 = 16;

/// How often, at most, a blocking unicast receive that is about to sleep
/// looks for senders whose processes died, and evicts them: once every
/// sender is gone, dead or left, it returns `NoSenders`, as a pipe's reader
/// gets end of file when the writer dies. A look probes one lock per
/// sender (a syscall each). An idle sleeper wakes at least once a wake
/// guard (100 ms by default), so a death shows within about a guard.
const SENDER_LOOK_EVERY: Duration = Duration::from_millis(100);

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("id", &self.inner.id())
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Deref for Receiver {
    type Target = CoreReceiver;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Receiver {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Receiver {
    pub(crate) fn new(
        inner: CoreReceiver,
        eventfds: Option<Arc<[OwnedFd]>>,
        requested: Option<BackendKind>,
        liveness: Option<&Arc<Liveness>>,
    ) -> Self {
        let held =
            liveness.and_then(|l| Held::take(l, inner.ring(), inner.id(), inner.generation()));
        let liveness = liveness.cloned();
        let selection = select(requested, eventfds.is_some());
        let mut fallback = selection.fallback;
        let sleeper = match Sleeper::new(selection.kind, eventfds.clone()) {
            Ok(s) => s,
            Err(why) => {
                fallback = Some(why);
                Sleeper::new(BackendKind::Futex, None).expect("futex always works")
            }
        };
        let mut sleeper = sleeper;
        if let Err(e) = sleeper.publish(inner.ring(), inner.id()) {
            // Could not set up the ring backend: futex always works.
            fallback = Some(Unsupported {
                kind: Some(selection.kind),
                reason: e.to_string(),
            });
            sleeper = Sleeper::new(BackendKind::Futex, None).expect("futex always works");
            let _ = sleeper.publish(inner.ring(), inner.id());
        }
        Receiver {
            sleeper: RefCell::new(sleeper),
            fallback,
            spin: Spin::Auto,
            eventfds,
            inner,
            _held: held,
            liveness,
            stuck: Cell::new(None),
            polls: Cell::new(0),
            senders_looked: Cell::new(None),
        }
    }

    /// The notify backend this receiver sleeps in.
    pub fn backend(&self) -> BackendKind {
        self.sleeper.borrow().kind()
    }

    /// If the backend asked for (argument or `SHMCAST_NOTIFY`) could not be
    /// used, what was asked and why; the receiver then uses futex.
    pub fn backend_fallback(&self) -> Option<&Unsupported> {
        self.fallback.as_ref()
    }

    /// Switch to another notify backend (takes effect at the next sleep).
    pub fn set_backend(&mut self, kind: BackendKind) -> Result<(), Unsupported> {
        let mut s = Sleeper::new(kind, self.eventfds.clone())?;
        s.set_guard(self.sleeper.get_mut().guard());
        s.publish(self.inner.ring(), self.inner.id())
            .map_err(|e| Unsupported {
                kind: Some(kind),
                reason: e.to_string(),
            })?;
        *self.sleeper.get_mut() = s;
        self.fallback = None;
        Ok(())
    }

    /// Set the spin before sleeping (default [`Spin::Auto`]).
    pub fn set_spin(&mut self, spin: Spin) {
        self.spin = spin;
    }

    /// Set the longest single sleep of the blocking calls (default
    /// [`WAKE_GUARD`](shmcast_uring_notify::WAKE_GUARD), 100 ms; at least
    /// 1 ms). A sleeping receiver looks at the ring again after this long
    /// even if no wake came, which bounds how late a lost wake can make a
    /// message: one lost because a broadcast relay receiver died before it
    /// relayed, or because a peer cleared our waiter bit. Longer means fewer
    /// idle wake-ups (one per period while nothing arrives).
    pub fn set_wake_guard(&mut self, guard: Duration) {
        self.sleeper.get_mut().set_guard(guard);
    }

    /// The eventfd producers signal when this receiver sleeps with the
    /// eventfd backend: register it with epoll / tokio. Pattern: on
    /// readiness, drain with `try_recv`; before waiting again, call
    /// [`shmcast_core::Receiver::prepare_wait`] (re-checks the ring and
    /// announces the sleep), and after waking, `finish_wait`. Wait with a
    /// timeout, and when one passes with nothing received, call
    /// [`Receiver::step_over_dead_sender`]: a sender that died mid-send
    /// sends no more wakes.
    pub fn eventfd(&self) -> Option<BorrowedFd<'_>> {
        if self.backend() != BackendKind::Eventfd {
            return None;
        }
        self.eventfds
            .as_ref()?
            .get(self.inner.id().index())
            .map(|f| f.as_fd())
    }

    /// How long to look for a message before sleeping, and whether to
    /// yield the CPU between looks instead of pausing.
    fn spin_budget(&self) -> (Duration, bool) {
        match self.spin {
            Spin::Off => (Duration::ZERO, false),
            Spin::For(d) => (d, false),
            Spin::Auto => {
                if online_cpus() >= self.inner.ring().active_subscribers() {
                    (Spin::AUTO_DURATION, false)
                } else {
                    (Spin::AUTO_DURATION, true)
                }
            }
        }
    }

    /// Receive the next message, sleeping until one arrives.
    pub fn recv(&self, buf: &mut [u8]) -> Result<MessageInfo, RecvError> {
        self.recv_until(buf, None)
    }

    /// Receive the next message, sleeping at most `timeout`.
    pub fn recv_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<MessageInfo, RecvError> {
        self.recv_until(buf, Instant::now().checked_add(timeout))
    }

    /// Receive the next message, sleeping until `deadline` at most.
    pub fn recv_deadline(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<MessageInfo, RecvError> {
        self.recv_until(buf, Some(deadline))
    }

    /// One receive attempt through `take` (a `try_recv` or a
    /// `try_recv_batch`): `None` to keep waiting.
    fn attempt<T>(
        &self,
        take: &mut impl FnMut(&CoreReceiver) -> Result<T, TryRecvError>,
    ) -> Option<Result<T, RecvError>> {
        match take(&self.inner) {
            Ok(m) => Some(Ok(m)),
            Err(TryRecvError::Empty) => {
                let ring = self.inner.ring();
                if ring.mode() == Mode::Unicast && ring.senders_gone() {
                    // Drained, and nobody is left to send (a later sender
                    // may still come: not `Closed`), unless a dead
                    // sender's position holds back what was sent after it.
                    if self.step_over_dead_sender() {
                        return None;
                    }
                    return Some(match take(&self.inner) {
                        Ok(m) => Ok(m),
                        Err(TryRecvError::Empty) => Err(RecvError::NoSenders),
                        Err(e) => Err(recv_error(e)),
                    });
                }
                None
            }
            // Closed with a dead sender's position at our head: what was
            // sent after it is still to be drained.
            Err(TryRecvError::Closed) if self.step_over_dead_sender() => None,
            Err(e) => Some(Err(recv_error(e))),
        }
    }

    fn recv_until(
        &self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<MessageInfo, RecvError> {
        self.wait_for(deadline, |rx| rx.try_recv(buf))
    }

    /// Receive up to `infos.len()` messages into `buf` (packed back to back,
    /// as [`shmcast_core::Receiver::try_recv_batch`] describes), sleeping
    /// until at least one arrives. Returns how many (0 only for empty
    /// `infos`, at once). Errors as [`Receiver::recv`].
    pub fn recv_batch(
        &self,
        buf: &mut [u8],
        infos: &mut [MessageInfo],
    ) -> Result<usize, RecvError> {
        self.recv_batch_until(buf, infos, None)
    }

    /// [`Receiver::recv_batch`], sleeping at most `timeout`.
    pub fn recv_batch_timeout(
        &self,
        buf: &mut [u8],
        infos: &mut [MessageInfo],
        timeout: Duration,
    ) -> Result<usize, RecvError> {
        self.recv_batch_until(buf, infos, Instant::now().checked_add(timeout))
    }

    fn recv_batch_until(
        &self,
        buf: &mut [u8],
        infos: &mut [MessageInfo],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvError> {
        if infos.is_empty() {
            return Ok(0);
        }
        self.wait_for(deadline, |rx| rx.try_recv_batch(buf, infos))
    }

    /// Step over the position this receiver waits at if the sender that
    /// claimed it died before publishing it (its process is gone: see the
    /// README's "dead peer"); a sender that is alive, however slow, is
    /// waited for. Every receive of this handle, blocking or polling, does
    /// this by itself once it has waited 10 ms at such a position (counted
    /// across calls); calling it earlier is allowed. True if it stepped
    /// over (receive again).
    pub fn step_over_dead_sender(&self) -> bool {
        let ring = self.inner.ring();
        let liveness = self.liveness.as_deref();
        self.inner
            .step_over_dead_claim(|id, state| liveness.is_some_and(|l| is_dead(l, ring, id, state)))
    }

    /// Called when a receive found nothing: if the position we wait at is
    /// claimed (below the tail) but unpublished, note since when; once that
    /// has lasted `STUCK_AFTER`, step over it if its sender died. True if
    /// it stepped over (receive again at once).
    #[inline(never)]
    fn check_stuck(&self) -> bool {
        let pos = self.inner.next_position();
        if self.inner.ring().tail() == pos {
            self.stuck.set(None); // nothing claimed: plain empty
            return false;
        }
        let now = Instant::now();
        match self.stuck.get() {
            Some((p, since)) if p == pos => {
                if now.saturating_duration_since(since) < STUCK_AFTER {
                    return false;
                }
                if self.step_over_dead_sender() {
                    // A dead batch leaves a run of positions: look at the
                    // next one at once, not after another STUCK_AFTER.
                    self.stuck.set(Some((self.inner.next_position(), since)));
                    return true;
                }
                self.stuck.set(Some((pos, now)));
                false
            }
            _ => {
                self.stuck.set(Some((pos, now)));
                false
            }
        }
    }

    /// Unicast, about to sleep: evict senders whose processes died, at most
    /// once in `SENDER_LOOK_EVERY`. True if one was (receive again: if none
    /// is left, that is `NoSenders`).
    fn evict_dead_senders(&self) -> bool {
        let ring = self.inner.ring();
        let Some(liveness) = self.liveness.as_deref() else {
            return false;
        };
        if ring.mode() != Mode::Unicast {
            return false;
        }
        if !due(&self.senders_looked, SENDER_LOOK_EVERY) {
            return false;
        }
        !ring.senders_gone() && evict_dead_senders(liveness, ring) > 0
    }

    /// Counts a poll; true once in `POLL_LOOK_EVERY` (time to `check_stuck`).
    #[inline]
    fn look_due(&self) -> bool {
        let n = self.polls.get().wrapping_add(1);
        let due = n >= POLL_LOOK_EVERY;
        self.polls.set(if due { 0 } else { n });
        due
    }

    /// After a polling receive's error `e`, with `steps` step-overs made
    /// in this call: `None` if a dead sender's position was stepped over
    /// (receive again), else the error to return.
    #[inline]
    fn after_poll_error(&self, e: TryRecvError, steps: &mut u32) -> Option<TryRecvError> {
        let stepped = match e {
            TryRecvError::Empty | TryRecvError::Closed if *steps >= STEPS_PER_POLL => {
                // Enough for one call: the next goes on (not `Closed`,
                // which is final while there may be more to drain).
                return Some(TryRecvError::Empty);
            }
            TryRecvError::Empty => self.look_due() && self.check_stuck(),
            // Closed: what was sent behind a dead sender's position is
            // still to be drained.
            TryRecvError::Closed => self.step_over_dead_sender(),
            e => return Some(e),
        };
        if !stepped {
            return Some(e);
        }
        *steps += 1;
        // A dead batch leaves a run of positions: look again at once.
        self.polls.set(POLL_LOOK_EVERY - 1);
        None
    }

    /// Receive the next message into `buf` without blocking, as
    /// [`shmcast_core::Receiver::try_recv`] does, and step over positions
    /// whose senders died between claiming and publishing them (see
    /// [`Receiver::step_over_dead_sender`]). It looks for such a position
    /// once in 1024 calls that find nothing, and steps over it at the
    /// first look 10 ms or more after it first saw it: a loop that polls
    /// at least every few microseconds is held up about 10 ms. A receiver
    /// that polls rarely (say, only when its eventfd is readable) calls
    /// `step_over_dead_sender` itself when it has found nothing for a
    /// while. After a close, everything behind dead senders' positions is
    /// drained before `Closed`. At most 16 positions are stepped over per
    /// call (then `Empty`: call again).
    #[inline]
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<MessageInfo, TryRecvError> {
        // One call site of the core's `try_recv`, so that it is inlined
        // (a second one, for the retry, made it a call: ~2 ns a receive).
        let mut steps = 0;
        loop {
            let r = self.inner.try_recv(buf);
            match r {
                Err(e) => match self.after_poll_error(e, &mut steps) {
                    None => continue,
                    Some(e) => return Err(e),
                },
                r => return r,
            }
        }
    }

    /// Receive up to `infos.len()` messages without blocking, as
    /// [`shmcast_core::Receiver::try_recv_batch`] does, stepping over dead
    /// senders' positions as [`Receiver::try_recv`] does.
    // Inlined as `try_recv` is. Out of line, the bench's 8-byte batch
    // streaming read 83-98 M msg/s against 101-116 M inlined, and so did
    // its raw-ring column, which runs none of this code: the bench binary
    // is that sensitive to layout (benches/results/README.md, ninth round).
    #[inline]
    pub fn try_recv_batch(
        &self,
        buf: &mut [u8],
        infos: &mut [MessageInfo],
    ) -> Result<usize, TryRecvError> {
        let mut steps = 0;
        loop {
            match self.inner.try_recv_batch(buf, infos) {
                Err(e) => match self.after_poll_error(e, &mut steps) {
                    None => continue,
                    Some(e) => return Err(e),
                },
                r => return r,
            }
        }
    }

    /// Zero-copy receive, as [`shmcast_core::Receiver::try_read`] does,
    /// stepping over dead senders' positions as [`Receiver::try_recv`]
    /// does. Here the looks come before the read (a step-over shows in the
    /// same call): once in 1024 calls (found empty or not), and at every
    /// call once the ring is closed (one more load of the ring's state per
    /// call).
    pub fn try_read(&mut self) -> Result<ReadSlot<'_, ShmRegions>, TryRecvError> {
        if self.look_due() && self.check_stuck() {
            self.polls.set(POLL_LOOK_EVERY - 1);
        }
        let closed = self.inner.ring().is_closed();
        if closed {
            let mut steps = 0;
            while self.step_over_dead_sender() {
                steps += 1;
                if steps == STEPS_PER_POLL {
                    return Err(TryRecvError::Empty);
                }
            }
        }
        match self.inner.try_read() {
            // Closed since the look above: the steps over dead senders'
            // positions come at the next call (`Closed` is final).
            Err(TryRecvError::Closed) if !closed => Err(TryRecvError::Empty),
            r => r,
        }
    }

    /// The blocking loop shared by every `recv*`: try, spin or yield for
    /// the spin budget, then sleep on the eventcount until `deadline`.
    fn wait_for<T>(
        &self,
        deadline: Option<Instant>,
        mut take: impl FnMut(&CoreReceiver) -> Result<T, TryRecvError>,
    ) -> Result<T, RecvError> {
        let mut spun = false;
        'attempt: loop {
            if let Some(r) = self.attempt(&mut take) {
                return r;
            }
            if !spun {
                spun = true;
                let (budget, yielding) = self.spin_budget();
                if !budget.is_zero() {
                    // Re-check the ring after every pause (as a polling
                    // loop of the caller's would: a pause is ~25 ns on our
                    // VMs, and a look at an empty ring one `seq` load), and
                    // the clock only every `looks` looks: a clock read costs
                    // about a look, and before the first look it would delay
                    // every receive that finds the ring empty. The budget
                    // and the caller's deadline are overshot by at most one
                    // round of looks (~2 µs spinning, one yield yielding).
                    let looks = if yielding { 1 } else { 64 };
                    let mut started = None;
                    loop {
                        for _ in 0..looks {
                            if yielding {
                                std::thread::yield_now();
                            } else {
                                std::hint::spin_loop();
                            }
                            match take(&self.inner) {
                                Ok(m) => return Ok(m),
                                Err(TryRecvError::Empty) => {}
                                // Closed: `attempt` drains what is behind
                                // a dead sender's position, if one holds it.
                                Err(TryRecvError::Closed) => continue 'attempt,
                                // Reported as is: a Lagged receiver has
                                // already moved on, the report is this one.
                                Err(e) => return Err(recv_error(e)),
                            }
                        }
                        let now = Instant::now();
                        let t0 = *started.get_or_insert(now);
                        if now.duration_since(t0) >= budget || deadline.is_some_and(|d| now >= d) {
                            break;
                        }
                    }
                }
            }
            // About to sleep: a position claimed but unpublished this long
            // may be a dead sender's (after the spin: its cost does not
            // matter here).
            if self.check_stuck() || self.evict_dead_senders() {
                // A run of dead senders' positions is stepped over one
                // position a round: keep to the deadline meanwhile.
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return self.attempt(&mut take).unwrap_or(Err(RecvError::Timeout));
                }
                continue;
            }
            let mut timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(RecvError::Timeout);
                    }
                    Some(left)
                }
                None => None,
            };
            if self.stuck.get().is_some() {
                // Waiting at a claimed position: look again in STUCK_AFTER,
                // whether or not its sender wakes us.
                timeout = Some(timeout.map_or(STUCK_AFTER, |t| t.min(STUCK_AFTER)));
            }
            let Some(token) = self.inner.prepare_wait() else {
                continue;
            };
            let slept = self.sleeper.borrow_mut().sleep(
                self.inner.ring(),
                self.inner.id(),
                &token,
                timeout,
            );
            self.inner.finish_wait();
            match slept {
                Ok(()) | Err(shmcast_uring_notify::SleepError::Timeout) => {}
                Err(e) => return Err(RecvError::Sleep(e)),
            }
        }
    }
}
