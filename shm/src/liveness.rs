//! Telling a dead subscriber from a slow one without trusting pids: each
//! process holds an open-file-description (OFD) lock on one byte per
//! subscriber entry it holds, and the kernel drops the lock when the process
//! dies (its last fd for that description closes).
//!
//! - Every process reopens the control memfd through `/proc/self/fd` for
//!   its own open file description (the fd the channel handed it is one
//!   description shared by every peer, since `SCM_RIGHTS` passes
//!   descriptions, and locks of one description never conflict with each
//!   other). On it, a subscriber takes a read lock on byte
//!   [`LOCK_BASE`]` + index`, past the end of the file (locks may lie
//!   anywhere), then stores [`token`]`(generation)` in its entry's
//!   `liveness` word.
//! - A receiver that has waited at a claimed, unpublished position asks
//!   about the senders whose claim records cover it
//!   ([`shmcast_core::Receiver::step_over_dead_claim`]), and steps over it
//!   if they are all gone.
//! - A sender that finds the ring full asks about the receivers that hold
//!   it ([`shmcast_core::Ring::holding_receivers`]): an entry whose word
//!   shows the token for its current generation but whose byte no other
//!   description holds a lock on (`F_OFD_GETLK` through the shared
//!   description, on which nobody of ours locks) belongs to a dead process,
//!   and is evicted ([`shmcast_core::Ring::evict`]).
//! - An entry without the token (a peer that could not reopen the memfd,
//!   `/proc` missing, or an older version) is never judged dead: the ring
//!   waits for it, as before.
//! - All handles of a process lock through its one description, where
//!   locks merge (one unlock removes a byte's lock however often it was
//!   taken): [`Liveness`] counts the holds per byte and unlocks with the
//!   last, so a handle leaving an entry cannot take the lock of the handle
//!   that joined it next.
//!
//! What a peer can do with this: write tokens, or take locks of its own
//! through the shared description (which the probe does not see). That
//! makes an entry look dead or alive at will, and evicting a live receiver
//! is something a peer can already do by writing its entry's state; it
//! cannot remove another description's lock. A process that forks shares
//! its description with the child, so its entries count as alive while
//! either lives; `exec` closes it (close-on-exec), which is right, since
//! `exec` also drops the mapping.

#![allow(unsafe_code)] // two fcntl calls that rustix does not wrap (byte-range OFD locks)

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

use rustix::io::Errno;
use shmcast_core::layout::{entry_generation, ENTRY_ACTIVE, ENTRY_STATUS_MASK, ROLE_SEND};
use shmcast_core::{JoinError, Regions, Ring, SubscriberId};

use crate::ShmRegions;

/// First lock byte: entry `i` is byte `LOCK_BASE + i`, far past any
/// control region (locks do not need the bytes to exist). Within a 32-bit
/// `off_t` where that is what `struct flock` has.
pub(crate) const LOCK_BASE: u64 = if std::mem::size_of::<libc::off_t>() >= 8 {
    1 << 40
} else {
    1 << 30
};

/// The `liveness` word of an entry whose holder took its lock, for
/// generation `gen`: a stale word of an earlier holder never matches.
pub(crate) fn token(gen: u32) -> u64 {
    (u64::from(gen) << 32) | 0x4f46_444c // "OFDL"
}

fn lock_at(index: usize, kind: libc::c_short) -> libc::flock {
    libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: (LOCK_BASE + index as u64) as libc::off_t,
        l_len: 1,
        // Must be 0 for OFD locks.
        l_pid: 0,
    }
}

fn fcntl_lock(fd: BorrowedFd<'_>, cmd: libc::c_int, lock: &mut libc::flock) -> Result<(), Errno> {
    // SAFETY: `fd` is open (borrowed); `lock` is a valid, exclusively
    // borrowed `struct flock` (SETLK reads it, GETLK reads and writes it).
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, lock as *mut libc::flock) };
    if r == -1 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(())
    }
}

/// A process's view of one channel's liveness locks: its own open file
/// description of the control memfd (to lock on), and the shared one (to
/// probe through).
#[derive(Debug)]
pub(crate) struct Liveness {
    /// A copy of the fd the channel was handed: the description every peer
    /// shares (also what a forked child reopens for its own).
    shared: OwnedFd,
    /// This process's own description and its locks.
    own: std::sync::Mutex<Own>,
}

/// The description this process locks on, and how many of its handles
/// hold each byte. Locks of one description merge: a second lock on a byte
/// adds nothing and one unlock removes it, so two handles of this process
/// on the same entry (one leaving, the next joining it) share one lock,
/// taken by the first and released by the last.
#[derive(Debug)]
struct Own {
    /// The process it belongs to: a forked child shares its parent's
    /// description, so it must not unlock there, and makes its own.
    pid: rustix::process::Pid,
    /// `None` if the memfd could not be reopened.
    fd: Option<OwnedFd>,
    holders: std::collections::HashMap<usize, u32>,
}

fn reopen(control: BorrowedFd<'_>) -> Option<OwnedFd> {
    rustix::fs::open(
        format!("/proc/self/fd/{}", control.as_raw_fd()),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

impl Liveness {
    /// Reopen `control` (the channel's control memfd, as handed over) for
    /// a description of our own. Failing that (no `/proc`, an inode mode
    /// that refuses us), our entries carry no token: never judged dead.
    pub(crate) fn new(control: BorrowedFd<'_>) -> Result<Self, Errno> {
        let shared = rustix::io::fcntl_dupfd_cloexec(control, 0)?;
        let own = Own {
            pid: rustix::process::getpid(),
            fd: reopen(shared.as_fd()),
            holders: Default::default(),
        };
        Ok(Liveness {
            shared,
            own: std::sync::Mutex::new(own),
        })
    }

    /// This process's description (a new one in a forked child, whose
    /// parent's locks stay the parent's: they count while either lives).
    fn own(&self) -> std::sync::MutexGuard<'_, Own> {
        let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
        let pid = rustix::process::getpid();
        if own.pid != pid {
            // Dropping our copy of the parent's description leaves its
            // locks alone: they go when the last fd for it closes.
            *own = Own {
                pid,
                fd: reopen(self.shared.as_fd()),
                holders: Default::default(),
            };
        }
        own
    }

    /// Take entry `index`'s lock; true if held (then publish the token).
    pub(crate) fn hold(&self, index: usize) -> bool {
        let mut own = self.own();
        let count = own.holders.get(&index).copied().unwrap_or(0);
        if count == 0 {
            let Some(fd) = &own.fd else { return false };
            let mut lock = lock_at(index, libc::F_RDLCK as libc::c_short);
            if fcntl_lock(fd.as_fd(), libc::F_OFD_SETLK, &mut lock).is_err() {
                return false;
            }
        }
        own.holders.insert(index, count + 1);
        true
    }

    /// Give up one handle's hold on entry `index`'s lock (after leaving the
    /// entry); the lock goes with the last.
    pub(crate) fn release(&self, index: usize) {
        let mut own = self.own();
        let count = match own.holders.get(&index) {
            Some(&n) if n > 0 => n - 1,
            // Taken before a fork (the parent's), or never: nothing of ours.
            _ => return,
        };
        if count > 0 {
            own.holders.insert(index, count);
            return;
        }
        own.holders.remove(&index);
        if let Some(fd) = &own.fd {
            let mut lock = lock_at(index, libc::F_UNLCK as libc::c_short);
            let _ = fcntl_lock(fd.as_fd(), libc::F_OFD_SETLK, &mut lock);
        }
    }

    /// Whether a description other than the shared one holds entry
    /// `index`'s lock: `Some(false)` means whoever locked it is gone.
    /// `None` if the kernel would not say.
    pub(crate) fn held(&self, index: usize) -> Option<bool> {
        let mut lock = lock_at(index, libc::F_WRLCK as libc::c_short);
        fcntl_lock(self.shared.as_fd(), libc::F_OFD_GETLK, &mut lock).ok()?;
        Some(lock.l_type != libc::F_UNLCK as libc::c_short)
    }
}

/// A subscriber's lock, held for as long as its handle lives (declared
/// after the core handle in the handles, so that it is released after the
/// entry was left).
#[derive(Debug)]
pub(crate) struct Held {
    liveness: Arc<Liveness>,
    index: usize,
}

impl Held {
    /// Lock entry `id`'s byte and publish the token of generation `gen`;
    /// `None` (no token: never judged dead) if the lock cannot be taken.
    pub(crate) fn take(
        liveness: &Arc<Liveness>,
        ring: &Ring<ShmRegions>,
        id: SubscriberId,
        gen: u32,
    ) -> Option<Held> {
        if id.index() >= ring.geometry().max_subscribers() || !liveness.hold(id.index()) {
            return None;
        }
        // ORDERING: Release; pairs with the Acquire load in `evict_dead`:
        // a prober that sees the token probes after our lock was taken.
        ring.regions()
            .entry(id.index())
            .liveness
            .store(token(gen), Release);
        Some(Held {
            liveness: liveness.clone(),
            index: id.index(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.liveness.release(self.index);
    }
}

/// Whether the holder of entry `id`, whose state word reads `state`, is
/// gone: it published its token for that generation, and no description
/// holds its lock any more.
pub(crate) fn is_dead(
    liveness: &Liveness,
    ring: &Ring<ShmRegions>,
    id: SubscriberId,
    state: u64,
) -> bool {
    if id.index() >= ring.geometry().max_subscribers() {
        return false;
    }
    // ORDERING: Acquire; pairs with the Release store in `Held::take`,
    // made after the holder took its lock: the probe below sees that lock
    // unless its description was closed since (the holder died).
    let word = ring.regions().entry(id.index()).liveness.load(Acquire);
    word == token(entry_generation(state)) && liveness.held(id.index()) == Some(false)
}

/// Evict, among `candidates` (entry and generation), those whose holder is
/// gone (its token is published for that generation and no description
/// holds its lock), except senders whose claim record still names a
/// position receivers wait at ([`Ring::claim_pending`]): they need that
/// record to step over it, and a join into the freed entry would clear it.
/// Returns how many were evicted.
pub(crate) fn evict_dead(
    liveness: &Liveness,
    ring: &Ring<ShmRegions>,
    candidates: impl IntoIterator<Item = (SubscriberId, u32)>,
) -> usize {
    let max = ring.geometry().max_subscribers();
    let mut evicted = 0;
    for (id, gen) in candidates {
        if id.index() >= max {
            continue;
        }
        // Dead first: a dead process's claim record no longer changes, so
        // `claim_pending` then holds (a live sender could claim between a
        // look at its record and its death).
        if is_dead(liveness, ring, id, u64::from(gen) << 32)
            && !ring.claim_pending(id)
            && ring.evict(id, gen)
        {
            evicted += 1;
        }
    }
    evicted
}

/// Every active entry of the table whose state word `keep` accepts, with
/// its generation: the candidates of [`evict_dead`] for a join that found
/// the table full (any role) and for a unicast receiver (senders).
pub(crate) fn active_entries<'a>(
    ring: &'a Ring<ShmRegions>,
    keep: impl Fn(u64) -> bool + 'a,
) -> impl Iterator<Item = (SubscriberId, u32)> + 'a {
    // Up to the high-water mark: no entry past it was ever joined. A peer
    // that moves it only changes which entries are looked at (at most the
    // table); hiding a dead one from eviction costs only room.
    let high = (ring.regions().header().wake.table_high_water.load(Relaxed) as usize)
        .min(ring.geometry().max_subscribers());
    (0..high).filter_map(move |i| {
        // Relaxed: a candidate list; `evict` re-checks with a CAS.
        let s = ring.regions().entry(i).state.load(Relaxed);
        let id = SubscriberId(i as u32);
        (s & ENTRY_STATUS_MASK == ENTRY_ACTIVE && keep(s)).then_some((id, entry_generation(s)))
    })
}

/// Evict the senders whose processes died (except one whose claim record
/// still holds receivers: see [`evict_dead`]). What a unicast receiver
/// that waits does, so that senders that died end its wait with
/// `NoSenders` as senders that left do. Returns how many were evicted.
pub(crate) fn evict_dead_senders(liveness: &Liveness, ring: &Ring<ShmRegions>) -> usize {
    evict_dead(liveness, ring, active_entries(ring, |s| s & ROLE_SEND != 0))
}

/// Join `ring` with `join`; if it is refused because a unicast receiver
/// holds the ring (that receiver is looked at) or the table is full (every
/// entry is), and dead holders are evicted, try once more.
fn join_evicting<T>(
    ring: &Ring<ShmRegions>,
    liveness: Option<&Liveness>,
    join: impl Fn() -> Result<T, JoinError>,
) -> Result<T, JoinError> {
    let (e, l) = match (join(), liveness) {
        (Err(e @ (JoinError::ReceiverTaken | JoinError::TableFull { .. })), Some(l)) => (e, l),
        (r, _) => return r,
    };
    let evicted = if e == JoinError::ReceiverTaken {
        let mut held = [(SubscriberId(0), 0); 1];
        let n = ring.holding_receivers(&mut held);
        evict_dead(l, ring, held[..n].iter().copied())
    } else {
        evict_dead(l, ring, active_entries(ring, |_| true))
    };
    if evicted > 0 {
        join()
    } else {
        Err(e)
    }
}

/// Join `ring` as a receiver, evicting dead holders in the way.
pub(crate) fn join_receiver(
    ring: &Ring<ShmRegions>,
    liveness: Option<&Liveness>,
) -> Result<shmcast_core::Receiver<ShmRegions>, JoinError> {
    join_evicting(ring, liveness, || ring.receiver())
}

/// Join `ring` as a sender, evicting dead holders in the way.
pub(crate) fn join_sender(
    ring: &Ring<ShmRegions>,
    liveness: Option<&Liveness>,
) -> Result<shmcast_core::Producer<ShmRegions>, JoinError> {
    join_evicting(ring, liveness, || ring.producer())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd() -> OwnedFd {
        let fd =
            rustix::fs::memfd_create("liveness-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
        fd
    }

    #[test]
    fn a_lock_shows_through_the_shared_description_until_released() {
        let shared = memfd();
        let a = Liveness::new(shared.as_fd()).unwrap();
        let b = Liveness::new(shared.as_fd()).unwrap();
        assert_eq!(a.held(3), Some(false));
        assert!(a.hold(3));
        // Seen by anyone probing, this process included.
        assert_eq!(a.held(3), Some(true));
        assert_eq!(b.held(3), Some(true));
        assert_eq!(b.held(4), Some(false));
        // Two holders of one byte (read locks share).
        assert!(b.hold(3));
        a.release(3);
        assert_eq!(a.held(3), Some(true));
        drop(b); // its description closes: its lock goes
        assert_eq!(a.held(3), Some(false));
    }

    /// Two handles of one process on one entry (the first leaving, the
    /// next joining it) lock through one description, where locks merge:
    /// the first one's release must not take the second one's lock away.
    #[test]
    fn holds_of_one_process_are_counted() {
        let shared = memfd();
        let a = Liveness::new(shared.as_fd()).unwrap();
        assert!(a.hold(5));
        assert!(a.hold(5));
        a.release(5);
        assert_eq!(a.held(5), Some(true), "one holder left");
        a.release(5);
        assert_eq!(a.held(5), Some(false));
        a.release(5); // one too many: nothing to do
        assert_eq!(a.held(5), Some(false));
    }

    #[test]
    fn tokens_differ_by_generation() {
        assert_ne!(token(1), token(2));
        assert_ne!(token(0), 0);
    }
}
