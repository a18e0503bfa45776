//! The wake guard, one timer per process: a thread that ends any sleep
//! older than its guard, instead of a timeout on every sleep.
//!
//! A sleep with a timeout arms a kernel timer and cancels it on wake-up;
//! measured here (`shmcast-bench --only notify`, three runs each way), that
//! made a futex wake-up 1.14 / 1.16 / 1.16× a bare futex wake instead of
//! 1.10 / 1.13 / 1.11× without a timeout: ~300 ns a sleep (likely the
//! timer's reprogramming on a VM whose idle CPU had it as its next event).
//! So a sleeper without a caller's timeout of its own sleeps without one,
//! under a *watch* kept here: a way to wake it (a `FUTEX_WAKE` of its word
//! and bitset, or a write to the eventfd sleeper's private eventfd; never
//! the channel's eventfd, which a peer can make blocking) and a sleep
//! counter that is odd while it sleeps.
//!
//! A sleeper registers its watch once (a lock, a box, a clone of the ring)
//! and then pays two uncontended atomic increments a sleep. A first version
//! registered a watch per sleep: it cost ~0.02 of the futex wake-up ratio
//! (1.105 against 1.085 without any watch, medians of eight runs), several
//! times its single-thread cost, likely in cache misses on a vCPU that had
//! just been woken.
//!
//! The guard thread looks at each watch every half guard. A counter that is
//! odd and has not moved since its last look belongs to a sleep at least
//! half a guard old and at most a guard old: it nudges that sleeper (a
//! spurious wake-up: it looks at the ring and sleeps again). So no sleep
//! lasts much past its guard, and an idle receiver pays one wake-up a guard.
//!
//! When no watched sleeper has slept for a while (ten guards, at most a
//! second) the thread parks. Parking and starting a sleep form a Dekker
//! pair: the thread sets `PARKED` and then reads every counter, a sleeper
//! bumps its counter and then reads `PARKED` (all four SeqCst), so at least
//! one sees the other; a sleeper that sees `PARKED` wakes the thread under
//! the lock. A first version woke the thread at every sleep and read
//! 0.55–0.61× a bare futex wake, *faster* than the bare futex: the thread,
//! run on the sleeper's CPU at every sleep, kept that CPU out of deep idle,
//! so the wake's IPI found it awake. That is not a speed-up a user gets, so
//! the thread is woken only from its parked state.
//!
//! `fork`: the child has no guard thread. A `pthread_atfork` child handler
//! bumps the fork epoch and sets `FORKED`. A sleeper made before the fork
//! sees the new epoch at its first sleep in the child and registers again
//! (with a new io_uring ring or private eventfd: see `Sleeper::forked`),
//! which starts a new thread and drops every watch inherited from the
//! parent: its own old one, and those of the parent's other threads, which
//! did not survive the fork. A child forked while another thread held the
//! lock never gets it: its sleeps fall back to the timeout.
//!
//! A peer that maps a futex word can move a wait on it somewhere no
//! `FUTEX_WAKE` reaches (`FUTEX_CMP_REQUEUE` onto a futex of its own). So
//! an io_uring sleeper is nudged with a `MSG_RING` into its ring (from a
//! ring of this thread's own), which reaches it wherever its `FUTEX_WAIT`
//! went and makes it arm a new one; a futex sleeper with no bitset of its
//! own waits with `futex_waitv` on its word and on a private word of its
//! process that the nudge also wakes (`futex::wait_or_nudged`). Broadcast
//! futex sleepers (per-receiver bitsets, which `futex_waitv` lacks), and
//! every futex sleeper on a kernel without `futex_waitv`, carry a timeout
//! of two guards after all (`Sleeper::sleep`), which costs part of what
//! this thread saves (futex wake-ups 1.05 -> 1.07x a bare futex wake,
//! eight alternating runs of `shmcast-bench --quick --only notify`; the
//! same timer on io_uring sleeps cost them 1.10 -> 1.12x; `futex_waitv`
//! cost nothing measurable). Eventfd sleepers need none of this: their
//! `poll` cannot be moved.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

/// How to wake one sleeper. Owns what it needs (a clone of the ring, which
/// keeps the mapping alive), so it stays valid even if the sleeper were gone.
pub(crate) type Nudge = Box<dyn Fn() + Send>;

/// What a sleeper shares with the guard thread.
#[derive(Debug, Default)]
struct Mark {
    /// Sleeps begun plus sleeps ended: odd while asleep.
    sleeps: AtomicU64,
    /// The ticket was dropped: the thread forgets the watch.
    withdrawn: AtomicBool,
    /// The fork epoch the watch was registered in.
    epoch: u64,
}

struct Watch {
    mark: Arc<Mark>,
    every: Duration,
    /// When the thread looks at this watch next.
    next: Instant,
    /// The counter the thread saw at its last look.
    seen: u64,
    nudge: Nudge,
}

struct State {
    watches: Vec<Watch>,
    /// The running guard thread's generation (0: none yet); a thread whose
    /// generation is not this one exits.
    generation: u64,
}

static STATE: Mutex<State> = Mutex::new(State {
    watches: Vec::new(),
    generation: 0,
});
static WAKE: Condvar = Condvar::new();

/// Set (under the lock) by the thread when it parks, cleared by whoever
/// wakes it.
const PARKED: u32 = 1;
/// Set in a forked child: no guard thread runs there yet.
const FORKED: u32 = 2;
static FLAGS: AtomicU32 = AtomicU32::new(0);
/// Forks this process has gone through (counted in the child).
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The fork epoch: a watch registered in an earlier one was inherited
/// across a `fork` and is registered again.
pub(crate) fn epoch() -> u64 {
    // ORDERING: Relaxed; the handler's write is made before any other code
    // runs in the child, by the one thread there.
    EPOCH.load(Relaxed)
}

/// The longest the thread stays up with no watched sleeper asleep.
const IDLE: Duration = Duration::from_secs(1);

fn lock() -> MutexGuard<'static, State> {
    // A nudge that panicked cannot leave the state inconsistent (the
    // vector is only pushed to, pruned and re-timed).
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lock within a few tries, never a blocking wait: a child forked
/// while another thread held the lock would wait for it for ever.
fn try_lock() -> Option<MutexGuard<'static, State>> {
    (0..4).find_map(|_| match STATE.try_lock() {
        Ok(st) => Some(st),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => {
            std::thread::yield_now();
            None
        }
    })
}

extern "C" fn forked_child() {
    // Async-signal-safe: lock-free atomic operations only.
    EPOCH.fetch_add(1, SeqCst);
    FLAGS.fetch_or(FORKED, SeqCst);
}

/// Register the fork handler once; false if that failed. (With the SQE
/// pushes in `uring`, the crate's only `unsafe` code.)
#[allow(unsafe_code)]
fn fork_handler() -> bool {
    static ONCE: Once = Once::new();
    static OK: AtomicBool = AtomicBool::new(false);
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only does atomic RMWs, which
        // are allowed in a forked child of a multi-threaded process.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
        OK.store(rc == 0, Relaxed);
    });
    OK.load(Relaxed)
}

/// Make sure a guard thread runs: start one if none has, or if this is a
/// forked child, and wake it if it parked. False if that cannot be done
/// (no thread could be started): the caller caps its sleep instead.
fn ensure_running(st: &mut State) -> bool {
    // Under the lock: no thread sets PARKED now, and FORKED is set only
    // by the fork handler, before any other code runs in the child.
    let flags = FLAGS.fetch_and(!(PARKED | FORKED), SeqCst);
    if st.generation == 0 || flags & FORKED != 0 {
        if !fork_handler() {
            FLAGS.fetch_or(flags & FORKED, SeqCst);
            return false;
        }
        let generation = st.generation + 1;
        let spawned = std::thread::Builder::new()
            .name("shmcast-guard".into())
            .spawn(move || run(generation));
        if spawned.is_err() {
            FLAGS.fetch_or(flags & FORKED, SeqCst);
            return false;
        }
        st.generation = generation;
        // Watches inherited across a fork: their sleepers register again
        // (or did not survive it).
        let now = epoch();
        st.watches.retain(|w| w.mark.epoch == now);
    } else if flags & PARKED != 0 {
        WAKE.notify_all();
    }
    true
}

/// A registered watch, withdrawn when dropped.
#[derive(Debug)]
pub(crate) struct Ticket(Arc<Mark>);

impl Drop for Ticket {
    fn drop(&mut self) {
        // The thread forgets a withdrawn watch at its next look if the lock
        // is busy now.
        self.0.withdrawn.store(true, Relaxed);
        if let Some(mut st) = try_lock() {
            st.watches.retain(|w| !Arc::ptr_eq(&w.mark, &self.0));
        } else {
            // A parked thread would keep the watch (and the ring clone in
            // its nudge) until the next sleep: have it look once.
            FLAGS.fetch_and(!PARKED, SeqCst);
            WAKE.notify_all();
        }
    }
}

/// One sleep under a ticket's watch, from [`Ticket::begin`] until dropped.
#[derive(Debug)]
pub(crate) struct Asleep<'a>(&'a Mark);

impl Drop for Asleep<'_> {
    fn drop(&mut self) {
        // ORDERING: Relaxed; the counter carries no data, and a thread
        // that reads it late only nudges a sleeper that has already woken.
        self.0.sleeps.fetch_add(1, Relaxed);
    }
}

impl Ticket {
    /// Start a sleep the guard thread watches. `None` if it cannot (it
    /// parked and could not be woken, or a forked child could not start
    /// one): the caller caps this sleep with a timeout.
    pub(crate) fn begin(&self) -> Option<Asleep<'_>> {
        // ORDERING: SeqCst RMW and SeqCst load; with the thread's SeqCst
        // set of PARKED and SeqCst reads of the counters (a Dekker pair)
        // either it sees this sleep and stays up, or we see it parked.
        self.0.sleeps.fetch_add(1, SeqCst);
        let asleep = Asleep(&self.0);
        if FLAGS.load(SeqCst) == 0 {
            return Some(asleep);
        }
        let mut st = try_lock()?;
        ensure_running(&mut st).then_some(asleep)
    }
}

/// Watch a sleeper: nudge it when one of its sleeps (between
/// [`Ticket::begin`] and the end of the returned [`Asleep`]) has lasted
/// about `every`. `None` if the lock is busy past a few tries or no guard
/// thread could be started: the caller then bounds its sleeps with a
/// timeout instead.
pub(crate) fn watch(every: Duration, nudge: Nudge) -> Option<Ticket> {
    let mut st = try_lock()?;
    if !ensure_running(&mut st) {
        return None;
    }
    let mark = Arc::new(Mark {
        epoch: epoch(),
        ..Mark::default()
    });
    st.watches.push(Watch {
        mark: mark.clone(),
        every,
        next: Instant::now() + every / 2,
        seen: 0,
        nudge,
    });
    drop(st);
    // A running thread may be waiting for a later look than this watch
    // needs (another watch's longer guard): have it plan again. Once per
    // sleeper, not per sleep.
    WAKE.notify_all();
    Some(Ticket(mark))
}

fn run(generation: u64) {
    let mut st = lock();
    let mut active_at = Instant::now();
    while st.generation == generation {
        let now = Instant::now();
        st.watches.retain(|w| !w.mark.withdrawn.load(Relaxed));
        let mut next: Option<Instant> = None;
        let mut shortest = IDLE;
        for w in &mut st.watches {
            let sleeps = w.mark.sleeps.load(SeqCst);
            if sleeps & 1 == 1 || sleeps != w.seen {
                active_at = now;
            }
            if w.next <= now {
                // Odd and unchanged since the last look, half a guard ago:
                // this sleep began before that look.
                if sleeps & 1 == 1 && sleeps == w.seen {
                    // A nudge that panicked must not end the thread (every
                    // later sleep would go unguarded); none is known to.
                    let nudge = &w.nudge;
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(nudge));
                }
                w.seen = sleeps;
                w.next = now + w.every / 2;
            }
            next = Some(next.map_or(w.next, |n| n.min(w.next)));
            shortest = shortest.min(w.every * 10);
        }
        if now.saturating_duration_since(active_at) >= shortest || next.is_none() {
            FLAGS.fetch_or(PARKED, SeqCst);
            // ORDERING: SeqCst; the other half of the Dekker pair in
            // Ticket::begin: a sleep begun before PARKED was set shows here.
            if st
                .watches
                .iter()
                .any(|w| w.mark.sleeps.load(SeqCst) & 1 == 1)
            {
                FLAGS.fetch_and(!PARKED, SeqCst);
                active_at = now;
            } else {
                st = WAKE
                    .wait_while(st, |st| {
                        st.generation == generation && FLAGS.load(SeqCst) & PARKED != 0
                    })
                    .unwrap_or_else(|e| e.into_inner());
                active_at = Instant::now();
            }
            continue;
        }
        let left = next.map_or(IDLE, |at| at.saturating_duration_since(Instant::now()));
        st = WAKE
            .wait_timeout(st, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
