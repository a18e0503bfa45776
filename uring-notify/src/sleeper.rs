//! The receiver side: sleep in the chosen backend until woken or a timeout.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use shmcast_core::atomic::AtomicU32;
use shmcast_core::{Regions, Ring, SubscriberId, WaitToken};

use crate::uring::RingWaiter;
use crate::{eventfd, futex, probe, BackendKind, SleepError, Unsupported};

#[derive(Debug)]
enum Imp {
    Futex,
    Ring(Option<Box<RingWaiter>>),
    Eventfd(Arc<[OwnedFd]>),
}

/// How one receiver sleeps. Created with the backend [`crate::select`]ed;
/// [`Sleeper::publish`] tells producers how to reach it.
#[derive(Debug)]
pub struct Sleeper {
    kind: BackendKind,
    imp: Imp,
}

impl Sleeper {
    /// A sleeper of `kind`. `eventfds` is the channel's eventfd table (one
    /// per subscriber entry), required for [`BackendKind::Eventfd`].
    pub fn new(kind: BackendKind, eventfds: Option<Arc<[OwnedFd]>>) -> Result<Self, Unsupported> {
        probe().check(kind, eventfds.is_some())?;
        let imp = match kind {
            BackendKind::Futex => Imp::Futex,
            BackendKind::UringFutex | BackendKind::MsgRing => Imp::Ring(None),
            BackendKind::Eventfd => Imp::Eventfd(eventfds.expect("checked by probe")),
        };
        Ok(Sleeper { kind, imp })
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
            let w = RingWaiter::new(probe().futex_ops).map_err(|errno| SleepError::Io {
                op: "io_uring_setup",
                errno,
            })?;
            *slot = Some(Box::new(w));
        }
        Ok(slot.as_mut().expect("just set"))
    }

    /// Sleep until the token's word moves (a wake), or `timeout`. May
    /// return early (spuriously): callers re-check the ring anyway.
    pub fn sleep<R: Regions>(
        &mut self,
        ring: &Ring<R>,
        id: SubscriberId,
        token: &WaitToken<'_>,
        timeout: Option<Duration>,
    ) -> Result<(), SleepError> {
        if token.is_woken() {
            return Ok(());
        }
        let bitset = if token.is_shared() {
            1u32 << (id.0 % 32)
        } else {
            futex::MATCH_ANY
        };
        let word: &AtomicU32 = token.word();
        match &mut self.imp {
            Imp::Futex => futex::wait(word, token.expected(), bitset, timeout),
            Imp::Eventfd(fds) => match fds.get(id.index()) {
                Some(fd) => eventfd::wait(fd.as_fd(), timeout),
                None => futex::wait(word, token.expected(), bitset, timeout),
            },
            Imp::Ring(slot) => {
                let moved = slot.as_ref().is_none_or(|w| !w.on_owner_thread());
                if moved {
                    // DEFER_TASKRUN rings belong to their creating thread:
                    // make one here and tell producers where it is. A
                    // producer may have read the old ring from our entry
                    // after our waiter bit was set, so return (a spurious
                    // wake): the caller re-announces the sleep, and every
                    // wake from then on reads the new entry.
                    self.publish(ring, id)?;
                    return Ok(());
                }
                self.ring_waiter_mut()?
                    .sleep(word, token.expected(), bitset, timeout)
            }
        }
    }
}
