//! The wake guard, one timer per process: a thread that ends any sleep
//! older than its guard, instead of a timeout on every sleep.
//!
//! A sleep with a timeout arms a kernel timer and cancels it on wake-up;
//! measured here (`shmcast-bench --only notify`, three runs each way), that
//! made a futex wake-up 1.14 / 1.16 / 1.16× a bare futex wake instead of
//! 1.10 / 1.13 / 1.11× without a timeout: ~300 ns a sleep (likely the
//! timer's reprogramming on a VM whose idle CPU had it as its next event). So a sleeper without a caller's timeout of its
//! own sleeps without one, and registers a *watch* here: a due time and a
//! way to wake it (a `FUTEX_WAKE` of its word and bitset; eventfd sleepers,
//! whose fd a peer can make blocking, keep the timeout). The guard thread
//! sleeps until the earliest due time, wakes the sleepers that are due (a
//! spurious wake-up for them: they look at the ring and sleep again) and
//! sets their next due time one guard later. Registering and withdrawing
//! cost a lock each, a vector push / remove, a box and a clone of the ring.
//!
//! The thread is spawned on first use and exits only when replaced. A
//! process forked from one that used it has no guard thread: a sleep that
//! starts more than a second after the thread should have looked (its
//! planned wake-up or a watch's due time) starts a new one, which also
//! keeps waking the parent's watches it inherited (spurious wake-ups for
//! the parent's receivers). Until then — and in a child whose parent's
//! thread was idle, waiting for a notification — the child's sleeps are
//! unguarded. A child forked while another thread held the lock never gets
//! it: its sleeps fall back to the timeout. Receivers inherited across
//! `fork` without `exec` (which io_uring rings do not survive either) are
//! best not relied on.
//!
//! Measured (`shmcast-bench --only notify`, three runs): futex wake-up
//! 1.10 / 1.10 / 1.14× a bare futex wake this way, 1.14 / 1.16 / 1.16×
//! with a timeout on every sleep. A first version notified the thread at
//! every sleep and read 0.55–0.61×, *faster* than the bare futex: the
//! thread, run on the sleeper's CPU at every sleep, kept that CPU out of
//! deep idle, so the wake's IPI found it awake. That is not a speed-up a
//! user gets, so the thread now ticks instead of being notified.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How to wake one sleeper. Owns what it needs (a clone of the ring, which
/// keeps the mapping alive; the eventfd table), so it stays valid even if
/// the sleeper were gone.
pub(crate) type Nudge = Box<dyn Fn() + Send>;

struct Watch {
    id: u64,
    due: Instant,
    every: Duration,
    nudge: Nudge,
}

struct State {
    watches: Vec<Watch>,
    next_id: u64,
    /// The running guard thread's generation (0: none yet); a thread whose
    /// generation is not this one exits.
    generation: u64,
    /// When the guard thread last looked at the watches.
    beat: Option<Instant>,
    /// When it will look next (`None`: not before it is notified).
    wake_at: Option<Instant>,
    /// When the last watch was registered.
    last_watch: Option<Instant>,
}

static STATE: Mutex<State> = Mutex::new(State {
    watches: Vec::new(),
    next_id: 0,
    generation: 0,
    beat: None,
    wake_at: None,
    last_watch: None,
});
static WAKE: Condvar = Condvar::new();

/// How late a watch may be before its registrant concludes that the guard
/// thread is gone (a fork) and starts another.
const ORPHANED: Duration = Duration::from_secs(1);

/// While no sleep is watched, the thread still looks every `TICK` for
/// `IDLE` after the last watch, so that a new watch (due a guard later,
/// usually `TICK`) needs no notification: a sleep costs no wake-up of this
/// thread. After that it waits until notified.
const TICK: Duration = crate::sleeper::WAKE_GUARD;
const IDLE: Duration = Duration::from_secs(10);

fn lock() -> MutexGuard<'static, State> {
    // A nudge that panicked cannot leave the state inconsistent (the
    // vector is only pushed to, removed from and re-timed).
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered watch, withdrawn when dropped.
#[derive(Debug)]
pub(crate) struct Ticket(u64);

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = lock();
        if let Some(at) = st.watches.iter().position(|w| w.id == self.0) {
            st.watches.swap_remove(at);
        }
    }
}

/// Wake `nudge`'s sleeper every `every` from now until the ticket drops.
/// `None` if the state is locked past a few tries or no guard thread could
/// be started: the caller then bounds its sleep with a timeout instead.
/// (Never a blocking lock here: a child forked while another thread held
/// the lock would wait for it for ever.)
pub(crate) fn watch(every: Duration, nudge: Nudge) -> Option<Ticket> {
    let now = Instant::now();
    let due = now + every;
    let mut st = (0..4).find_map(|_| match STATE.try_lock() {
        Ok(st) => Some(st),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => {
            std::thread::yield_now();
            None
        }
    })?;
    // The thread should have looked by `wake_at`, or at a watch's due time;
    // long past either, it is gone (a fork) or starved: start another (a
    // starved one exits when it sees its generation replaced).
    let stale = |t: Instant| t + ORPHANED < now && st.beat.is_none_or(|b| b + ORPHANED < now);
    let orphaned = st.generation != 0
        && (st.wake_at.is_some_and(stale) || st.watches.iter().any(|w| stale(w.due)));
    if st.generation == 0 || orphaned {
        let generation = st.generation + 1;
        let spawned = std::thread::Builder::new()
            .name("shmcast-guard".into())
            .spawn(move || run(generation));
        if spawned.is_err() {
            return None;
        }
        st.generation = generation;
        st.beat = Some(now);
    }
    let id = st.next_id;
    st.next_id += 1;
    // Notify the thread only if it would look too late for this watch.
    let late = st.wake_at.is_none_or(|t| t > due);
    st.last_watch = Some(now);
    st.watches.push(Watch {
        id,
        due,
        every,
        nudge,
    });
    drop(st);
    if late {
        WAKE.notify_all();
    }
    Some(Ticket(id))
}

fn run(generation: u64) {
    let mut st = lock();
    while st.generation == generation {
        let now = Instant::now();
        st.beat = Some(now);
        for w in st.watches.iter_mut().filter(|w| w.due <= now) {
            (w.nudge)();
            w.due = now + w.every;
        }
        let next = match st.watches.iter().map(|w| w.due).min() {
            Some(due) => Some(due),
            None if st.last_watch.is_some_and(|t| now < t + IDLE) => Some(now + TICK),
            None => None,
        };
        st.wake_at = next;
        st = match next {
            None => WAKE.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                WAKE.wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}
