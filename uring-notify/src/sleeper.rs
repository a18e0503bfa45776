//! The receiver side: sleep in the chosen backend until woken or a timeout.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use shmcast_core::atomic::AtomicU32;
use shmcast_core::layout::SLEEPING_RELAYS;
use shmcast_core::{Regions, Ring, SubscriberId, WaitToken};

use crate::uring::RingWaiter;
use crate::{eventfd, futex, guard, probe, BackendKind, SleepError, Unsupported};

#[derive(Debug)]
enum Imp {
    Futex,
    Ring(Option<Box<RingWaiter>>),
    /// The channel's eventfd table, and a private eventfd the guard thread
    /// writes to end a sleep (made at the first guarded sleep).
    Eventfd(Arc<[OwnedFd]>, Option<Arc<OwnedFd>>),
}

/// The longest a receiver sleeps in one go before it looks at the ring
/// again, whatever timeout it was given: the bound on how late a lost wake
/// can make a message (an idle receiver pays one spurious wake-up per
/// period, ~10 µs of CPU every 100 ms).
pub const WAKE_GUARD: Duration = Duration::from_millis(100);

/// A sleep the guard thread watches still carries a timeout of this many
/// guards of its own (see `Sleeper::sleep`): the bound when the guard's
/// nudge cannot reach it.
const BACKSTOP_GUARDS: u32 = 2;

/// The futex bitset a sleeper waits with: its own bit on the shared
/// broadcast word (so an addressed broadcast wakes only its target), any
/// on its own word.
fn futex_bitset(token: &WaitToken<'_>, id: SubscriberId) -> u32 {
    if token.is_shared() {
        1u32 << (id.0 % 32)
    } else {
        futex::MATCH_ANY
    }
}

/// The longest wake guard [`Sleeper::set_guard`] accepts: a day.
pub const MAX_WAKE_GUARD: Duration = Duration::from_secs(24 * 3600);

/// Perform a pending broadcast wake relay: wake, on the broadcast word,
/// the futex bitsets a producer left in the relay word when it woke only
/// one of several sleepers ([`Ring::take_relay`]: each relay is performed
/// once, by whoever takes it).
pub fn relay<R: Regions>(ring: &Ring<R>) {
    let mask = ring.take_relay();
    if mask != 0 {
        // Best effort: an error (there is none for a valid word) leaves the
        // sleepers to their guard timeout.
        let _ = futex::wake(ring.broadcast_wake_word(), i32::MAX as u32, mask);
    }
}

/// How one receiver sleeps. Created with the backend [`crate::select`]ed;
/// [`Sleeper::publish`] tells producers how to reach it.
#[derive(Debug)]
pub struct Sleeper {
    kind: BackendKind,
    imp: Imp,
    guard: Duration,
    /// The guard thread's watch of this sleeper, registered at its first
    /// guarded sleep, and again when what it wakes (word, bitset) or the
    /// guard changes.
    watch: Option<(WatchKey, guard::Ticket)>,
    /// The fork epoch its io_uring ring, private eventfd and watch belong
    /// to (see [`Sleeper::forked`]).
    epoch: u64,
    /// A word of this process's own memory that a futex sleeper also waits
    /// on (`futex_waitv`) and the guard thread's nudge wakes: a peer can
    /// move a wait on the shared word, not on this one.
    nudge_word: Arc<AtomicU32>,
}

/// What a watch wakes and how often: the futex word's address (kept
/// mapped by the ring clone the watch holds, so no other word can take
/// it), the bitset and the guard.
/// What a watch was made for: the futex word and bitset it wakes, the
/// guard, and the io_uring ring it posts into (its number plus one; 0: none).
type WatchKey = (usize, u32, Duration, u64);

impl Sleeper {
    /// A sleeper of `kind`. `eventfds` is the channel's eventfd table (one
    /// per subscriber entry), required for [`BackendKind::Eventfd`].
    pub fn new(kind: BackendKind, eventfds: Option<Arc<[OwnedFd]>>) -> Result<Self, Unsupported> {
        probe().check(kind, eventfds.is_some())?;
        let imp = match kind {
            BackendKind::Futex => Imp::Futex,
            BackendKind::UringFutex | BackendKind::MsgRing => Imp::Ring(None),
            BackendKind::Eventfd => Imp::Eventfd(eventfds.expect("checked by probe"), None),
        };
        Ok(Sleeper {
            kind,
            imp,
            guard: WAKE_GUARD,
            watch: None,
            epoch: guard::epoch(),
            nudge_word: Arc::new(AtomicU32::new(0)),
        })
    }

    /// Set the longest single sleep (default [`WAKE_GUARD`]; clamped to
    /// 1 ms ..= [`MAX_WAKE_GUARD`]). Longer means fewer idle wake-ups and a
    /// longer delay when a wake is lost.
    pub fn set_guard(&mut self, guard: Duration) {
        self.guard = guard.clamp(Duration::from_millis(1), MAX_WAKE_GUARD);
    }

    /// The longest single sleep.
    pub fn guard(&self) -> Duration {
        self.guard
    }

    /// The backend.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Record in receiver `id`'s table entry how producers wake it: the
    /// backend code, and for `MSG_RING` the pid and ring fd. Call once after
    /// joining (and it is called again if the ring had to be re-created).
    pub fn publish<R: Regions>(
        &mut self,
        ring: &Ring<R>,
        id: SubscriberId,
    ) -> Result<(), SleepError> {
        use std::sync::atomic::Ordering::Release;
        let Some(entry) = (id.index() < ring.geometry().max_subscribers())
            .then(|| ring.regions().entry(id.index()))
        else {
            return Ok(());
        };
        let mut info = 0u64;
        if matches!(self.imp, Imp::Ring(_)) {
            let msg_ring = self.kind == BackendKind::MsgRing;
            let fd = self.ring_waiter_mut()?.fd();
            if msg_ring {
                info = ((rustix::process::getpid().as_raw_nonzero().get() as u64) << 32)
                    | fd as u32 as u64;
            }
        }
        entry.notify_info.store(info, Release);
        // ORDERING: Release; pairs with the producer's Acquire load of
        // `backend` in Waker::wake, which then sees this `notify_info` too.
        // The backend code in the low byte, a serial above it: a ring
        // re-created at the same fd number (the receiver moved threads)
        // publishes a new word, so producers drop their dup of the old ring.
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0x00ff_ffff;
        entry.backend.store(self.kind.code() | serial << 8, Release);
        Ok(())
    }

    fn ring_waiter_mut(&mut self) -> Result<&mut RingWaiter, SleepError> {
        let Imp::Ring(slot) = &mut self.imp else {
            unreachable!("only called for ring backends")
        };
        if slot.as_ref().is_none_or(|w| !w.on_owner_thread()) {
            let msg_ring = self.kind == BackendKind::MsgRing;
            let w =
                RingWaiter::new(probe().futex_ops, msg_ring).map_err(|errno| SleepError::Io {
                    op: "io_uring_setup",
                    errno,
                })?;
            *slot = Some(Box::new(w));
        }
        Ok(slot.as_mut().expect("just set"))
    }

    /// Sleep until the token's word moves (a wake), or `timeout`. May
    /// return early (spuriously): callers re-check the ring anyway.
    ///
    /// One sleep lasts at most about the guard ([`WAKE_GUARD`] unless
    /// [`Sleeper::set_guard`] says otherwise; half a guard more if the
    /// guard thread's wake lands just before the sleep starts); past it
    /// this returns `Ok` as a spurious wake, so a wake that never comes — a
    /// broadcast relay whose receiver was killed before it relayed, a peer
    /// that cleared our waiter bit — delays a message by at most that,
    /// never forever.
    /// Broadcast sleepers also perform a pending relay on their way out
    /// (see [`Waker::wake`](crate::Waker::wake)).
    ///
    /// One sleeper serves one receiver of one ring: for another ring, make
    /// another sleeper. The guard thread keeps a clone of `ring` for as
    /// long as the sleeper lives (to wake it); with regions that do not own
    /// their memory ([`shmcast_core::RawRegions`]), that memory must
    /// outlive the sleeper.
    pub fn sleep<R: Regions + Clone + Send + 'static>(
        &mut self,
        ring: &Ring<R>,
        id: SubscriberId,
        token: &WaitToken<'_>,
        timeout: Option<Duration>,
    ) -> Result<(), SleepError> {
        use std::sync::atomic::Ordering::Relaxed;
        if guard::epoch() != self.epoch {
            self.forked();
        }
        let guard = self.guard;
        // The guard: a caller's timeout no longer than it bounds the sleep
        // by itself; otherwise the process's guard thread watches it (no
        // timer of its own: see `guard`), or, where that cannot reach this
        // backend or start, the sleep is capped at the guard and a cap that
        // ends it reads as a spurious wake-up. The watch is taken out of
        // `self` for the sleep (`sleep_once` needs `&mut self`) and put
        // back after; dropped on unwinding, it is registered again.
        let long = timeout.is_none_or(|t| t > guard);
        let watch = if long {
            self.watched(ring, id, token)
        } else {
            None
        };
        let asleep = watch.as_ref().and_then(|(_, t)| t.begin());
        // The cap on this sleep, if any: the guard where no watch keeps it;
        // BACKSTOP_GUARDS guards where one does with a `FUTEX_WAKE` of our
        // word as its only way in, since a peer can move our futex wait off
        // that word (FUTEX_CMP_REQUEUE onto a futex of its own), out of
        // reach of every wake; none where the nudge reaches us wherever the
        // wait went: an eventfd sleeper's `poll` cannot be moved (its nudge
        // is a write to its private eventfd), an io_uring sleeper's nudge
        // is a `MSG_RING` into its ring, and a futex sleeper without a
        // bitset of its own also waits on `nudge_word` (`futex_waitv`). A
        // cap that ends the sleep reads as a spurious wake-up.
        let reached = matches!(&self.imp, Imp::Eventfd(fds, _) if fds.get(id.index()).is_some())
            || watch.as_ref().is_some_and(|((.., ring), _)| *ring != 0)
            || (matches!(self.imp, Imp::Futex | Imp::Eventfd(..))
                && futex_bitset(token, id) == futex::MATCH_ANY
                && futex::waitv_works());
        let cap = match (long, asleep.is_some(), reached) {
            (false, _, _) | (true, true, true) => None,
            (true, false, _) => Some(guard),
            (true, true, false) => Some(guard.saturating_mul(BACKSTOP_GUARDS)),
        };
        let capped = cap.is_some_and(|c| timeout.is_none_or(|t| t > c));
        let timeout = if capped { cap } else { timeout };
        // Broadcast: tell producers that this sleep ends in `relay` (they
        // hand a wake to a relay only through sleepers that say so; see
        // `Ring::sleeps_relaying` for why Relaxed suffices).
        let entry = (token.is_shared() && id.index() < ring.geometry().max_subscribers())
            .then(|| ring.regions().entry(id.index()));
        if let Some(e) = entry {
            e.sleeping.store(SLEEPING_RELAYS, Relaxed);
        }
        let slept = self.sleep_once(ring, id, token, timeout);
        // The sleep's end, for the guard thread.
        drop(asleep);
        if watch.is_some() {
            self.watch = watch;
        }
        if let Some(e) = entry {
            e.sleeping.store(0, Relaxed);
            relay(ring);
        }
        match slept {
            Err(SleepError::Timeout) if capped => Ok(()),
            other => other,
        }
    }

    /// First sleep in a child forked since the last one: what this sleeper
    /// had is the parent's too. Its io_uring ring and private eventfd are
    /// one open file description with the parent's (a `SINGLE_ISSUER` ring
    /// even refuses the child's submissions), and its watch belongs to a
    /// guard thread that did not survive the fork. Make new ones (a new
    /// ring is published at the next sleep).
    fn forked(&mut self) {
        self.epoch = guard::epoch();
        self.watch = None;
        match &mut self.imp {
            Imp::Ring(slot) => *slot = None,
            Imp::Eventfd(_, private) => *private = None,
            Imp::Futex => {}
        }
    }

    /// This sleeper's watch for a sleep on `token`, taken out of `self`:
    /// the one registered before if it wakes the same word with the same
    /// bitset every guard, a new one otherwise. `None` where the guard
    /// thread cannot reach this backend or be relied on.
    fn watched<R: Regions + Clone + Send + 'static>(
        &mut self,
        ring: &Ring<R>,
        id: SubscriberId,
        token: &WaitToken<'_>,
    ) -> Option<(WatchKey, guard::Ticket)> {
        let word = if token.is_shared() {
            Some(ring.broadcast_wake_word())
        } else {
            ring.wake_word(id)
        };
        let key = (
            word.map_or(0, |w| w as *const AtomicU32 as usize),
            futex_bitset(token, id),
            self.guard,
            self.nudge_ring().map_or(0, |w| w.number() + 1),
        );
        match self.watch.take() {
            Some((k, ticket)) if k == key => Some((k, ticket)),
            _ => {
                let nudge = self.nudge(ring, id, token)?;
                guard::watch(self.guard, nudge).map(|t| (key, t))
            }
        }
    }

    /// How the guard thread wakes this sleeper. An io_uring sleeper (on a
    /// kernel with `MSG_RING`): a `MSG_RING` into its ring. Otherwise a
    /// `FUTEX_WAKE` of its word with its bitset, or `None` where that does
    /// not reach it: a `MSG_RING` sleeper without io_uring futex ops waits
    /// on its ring alone. An eventfd
    /// sleeper polls its channel eventfd and a private one, which the guard
    /// thread writes: not the channel's, which every peer shares (one open
    /// file description), so a peer could clear its `O_NONBLOCK` and fill
    /// its counter, and the write would block the guard thread (and through
    /// its lock every guarded sleep) for good.
    fn nudge<R: Regions + Clone + Send + 'static>(
        &mut self,
        ring: &Ring<R>,
        id: SubscriberId,
        token: &WaitToken<'_>,
    ) -> Option<guard::Nudge> {
        // An io_uring sleeper's ring, its own fd kept open by the watch (a
        // dup: the waiter may be re-made and its fd number reused). The
        // futex wake below stays too: it is what reaches the sleeper should
        // the guard thread fail to make its ring (out of fds, say).
        let ring_fd: Option<OwnedFd> = match self.nudge_ring() {
            Some(w) => Some(rustix::io::fcntl_dupfd_cloexec(w.borrowed_fd(), 0).ok()?),
            None => None,
        };
        match &mut self.imp {
            Imp::Eventfd(fds, private) if fds.get(id.index()).is_some() => {
                if private.is_none() {
                    *private = Some(Arc::new(eventfd::create().ok()?));
                }
                let fd = private.clone()?;
                Some(Box::new(move || {
                    // Non-blocking, and ours alone: a full counter is an
                    // EAGAIN (ignored: the sleeper is being woken anyway).
                    let _ = eventfd::signal(&*fd);
                }))
            }
            Imp::Ring(_)
                if ring_fd.is_none() && self.kind == BackendKind::MsgRing && !probe().futex_ops =>
            {
                None
            }
            _ => {
                let ring = ring.clone();
                let shared = token.is_shared();
                let bitset = futex_bitset(token, id);
                let own = self.nudge_word.clone();
                Some(Box::new(move || {
                    if let Some(fd) = &ring_fd {
                        crate::uring::nudge_ring(std::os::fd::AsRawFd::as_raw_fd(fd));
                    }
                    let word = if shared {
                        Some(ring.broadcast_wake_word())
                    } else {
                        ring.wake_word(id)
                    };
                    if let Some(w) = word {
                        let _ = futex::wake(w, i32::MAX as u32, bitset);
                    }
                    futex::nudge(&own);
                }))
            }
        }
    }

    /// The io_uring ring the guard thread nudges with `MSG_RING`, where
    /// there is one: this thread's ring, on kernels with the op. Such a
    /// nudge reaches the sleeper whatever became of its `FUTEX_WAIT`.
    fn nudge_ring(&self) -> Option<&RingWaiter> {
        match &self.imp {
            Imp::Ring(Some(w)) if w.on_owner_thread() && probe().msg_ring_op => Some(w),
            _ => None,
        }
    }

    fn sleep_once<R: Regions>(
        &mut self,
        ring: &Ring<R>,
        id: SubscriberId,
        token: &WaitToken<'_>,
        timeout: Option<Duration>,
    ) -> Result<(), SleepError> {
        if token.is_woken() {
            return Ok(());
        }
        let bitset = futex_bitset(token, id);
        let word: &AtomicU32 = token.word();
        let own = &self.nudge_word;
        let backstop = self.guard.saturating_mul(BACKSTOP_GUARDS);
        let futex_wait = || {
            if bitset == futex::MATCH_ANY && futex::waitv_works() {
                // Relaxed: futex_waitv compares it in the kernel; a nudge
                // after this load makes that compare fail (a spurious
                // wake-up), one before it was for an earlier sleep.
                let seen = own.load(std::sync::atomic::Ordering::Relaxed);
                match futex::wait_or_nudged(word, token.expected(), own, seen, timeout) {
                    Ok(()) => return Ok(()),
                    Err(Errno::TIMEDOUT) => return Err(SleepError::Timeout),
                    Err(Errno::NOSYS | Errno::PERM | Errno::ACCESS) => {
                        // This sleep was not capped (`Sleeper::sleep` counted
                        // on futex_waitv): the plain wait that replaces it
                        // gets the backstop, ending as a spurious wake-up.
                        let (t, spurious) = match timeout {
                            Some(t) if t <= backstop => (t, false),
                            _ => (backstop, true),
                        };
                        return match futex::wait(word, token.expected(), bitset, Some(t)) {
                            Err(SleepError::Timeout) if spurious => Ok(()),
                            r => r,
                        };
                    }
                    Err(errno) => {
                        return Err(SleepError::Io {
                            op: "futex_waitv",
                            errno,
                        })
                    }
                }
            }
            futex::wait(word, token.expected(), bitset, timeout)
        };
        match &mut self.imp {
            Imp::Futex => futex_wait(),
            Imp::Eventfd(fds, nudge) => match fds.get(id.index()) {
                Some(fd) => eventfd::wait_or_nudged(
                    fd.as_fd(),
                    nudge.as_deref().map(|n| n.as_fd()),
                    timeout,
                    || token.is_woken(),
                ),
                None => futex_wait(),
            },
            Imp::Ring(slot) => {
                let moved = slot.as_ref().is_none_or(|w| !w.on_owner_thread());
                if moved {
                    // DEFER_TASKRUN rings belong to their creating thread
                    // (MSG_RING targets, plain rings, are re-made too, so
                    // both kinds behave alike): make one here and tell
                    // producers where it is. A producer may have read the
                    // old ring from our entry after our waiter bit was set,
                    // so return (a spurious wake): the caller re-announces
                    // the sleep, and every wake from then on reads the new
                    // entry.
                    self.publish(ring, id)?;
                    return Ok(());
                }
                self.ring_waiter_mut()?
                    .sleep(word, token.expected(), bitset, timeout)
            }
        }
    }
}
