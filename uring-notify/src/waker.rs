//! The producer side: deliver the wakes of one publish with at most one
//! syscall.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
use shmcast_core::{Regions, Ring, WakeSet};

use crate::uring::Batch;
use crate::{eventfd, futex, probe, BackendKind, WakeError};

/// Counters of one producer's wake path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeStats {
    /// Publishes checked for sleepers.
    pub checks: u64,
    /// Publishes that found nobody asleep: no syscall made.
    pub skipped: u64,
    /// Wake syscalls made (futex wakes, `io_uring_enter`s, eventfd writes).
    pub syscalls: u64,
    /// One-time syscalls spent finding a receiver (`pidfd_open`, `pidfd_getfd`).
    pub setup_syscalls: u64,
    /// Receivers woken.
    pub woken: u64,
    /// Wakes the kernel reported as failed.
    pub failures: u64,
    /// Wakes queued as io_uring SQEs (`MSG_RING`, eventfd writes).
    pub ring_wakes: u64,
    /// Broadcast wakes handed to a relay: one sleeper woken, the rest left
    /// to it (see [`Waker::wake`]).
    pub relays: u64,
    /// Relays this producer performed itself because nobody had taken them
    /// after [`RELAY_WATCH`] (see [`Waker::watch_relay`]).
    pub relays_rescued: u64,
}

/// How long an offered relay may stay untaken before the producer that
/// offered it performs it itself, at its next publishes: ~15 times the
/// cross-CPU wake-up on this project's VM. Only a waiter that never relays
/// (a hostile peer's thread queued on the broadcast word) leaves one that
/// long; a relay taken late just turns into the producer's full wake.
pub const RELAY_WATCH: Duration = Duration::from_micros(100);

/// Broadcast futex sleepers a producer wakes itself; from one more on, it
/// wakes one and leaves the rest to that one (the relay). Measured on this
/// project's 2-vCPU VM (`shmcast-bench --only broadcast`, and an in-process
/// repro with 16 receivers asleep on one CPU): one `FUTEX_WAKE` of 16
/// sleepers cost the producer ~31 µs, one wake per sleeper, each an IPI;
/// waking one cost ~5.5 µs and the relay's wakes of the other 15, local to
/// their CPU, a fraction of that. Up to this many the producer wakes them
/// all: the others then need not wait for the relay to be scheduled.
pub const RELAY_ABOVE: u32 = 2;

/// Delivers wakes for one producer.
#[derive(Debug, Default)]
pub struct Waker {
    batch: Option<Batch>,
    eventfds: Option<Arc<[OwnedFd]>>,
    /// MSG_RING targets: receiver index -> (published backend word and
    /// info, our dup of its ring fd).
    rings: HashMap<usize, (u64, OwnedFd)>,
    stats: WakeStats,
    /// The relay this producer last offered and has not seen taken: when
    /// it offered it, and publishes since.
    relay_watch: Option<(Instant, u32)>,
}

impl Waker {
    /// A waker; `eventfds` is the channel's eventfd table, if it has one.
    pub fn new(eventfds: Option<Arc<[OwnedFd]>>) -> Self {
        Waker {
            eventfds,
            ..Waker::default()
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> WakeStats {
        self.stats
    }

    /// Whether a relay this producer offered may still be untaken: then
    /// call [`Waker::watch_relay`] after each publish.
    #[inline]
    pub fn relay_pending(&self) -> bool {
        self.relay_watch.is_some()
    }

    /// After a publish while [`Waker::relay_pending`]: if the relay word
    /// is clear, the relay was taken; if it is still set after
    /// [`RELAY_WATCH`] (looked at every 16th publish), take and perform
    /// it ourselves: the single wake went to a waiter that does not relay.
    /// The check costs a load, and a clock read every 16 publishes.
    pub fn watch_relay<R: Regions>(&mut self, ring: &Ring<R>) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some((since, n)) = self.relay_watch.as_mut() else {
            return;
        };
        *n = n.wrapping_add(1);
        if ring.broadcast_relay_word().load(Relaxed) == 0 {
            self.relay_watch = None;
            return;
        }
        if *n % 16 != 0 || since.elapsed() < RELAY_WATCH {
            return;
        }
        self.relay_watch = None;
        let mask = ring.take_relay();
        if mask != 0 {
            self.stats.syscalls += 1;
            self.stats.relays_rescued += 1;
            if futex::wake(ring.broadcast_wake_word(), i32::MAX as u32, mask).is_err() {
                self.stats.failures += 1;
            }
        }
    }

    /// Count a publish whose check found nobody asleep (the caller used the
    /// fast check `Ring::sleepers_after_publish` and skipped `wake`).
    pub fn note_skipped(&mut self) {
        self.stats.checks += 1;
        self.stats.skipped += 1;
    }

    fn batch(&mut self) -> Option<&mut Batch> {
        if self.batch.is_none() && probe().uring.is_ok() {
            self.batch = Batch::new().ok();
        }
        self.batch.as_mut()
    }

    fn ring_fd(&mut self, index: usize, info: u64, key: u64) -> Option<RawFd> {
        if self.rings.get(&index).is_none_or(|(k, _)| *k != key) {
            self.rings.remove(&index);
            let pid = Pid::from_raw((info >> 32) as i32)?;
            let raw = info as u32 as i32;
            // Never trust the pid and fd a peer published.
            if pid == rustix::process::getpid() {
                // A receiver of our own process: with io_uring futex ops its
                // armed FUTEX_WAIT hears the futex wake, no fd needed (fd
                // numbers alone are a weak identity). Without them, only a
                // ring one of our receivers registered.
                if probe().futex_ops || !crate::uring::is_own_receiver_ring(raw) {
                    return None;
                }
            }
            self.stats.setup_syscalls += 2;
            let pidfd = pidfd_open(pid, PidfdFlags::empty()).ok()?;
            // Another process: only ever into an io_uring instance.
            let fd = pidfd_getfd(&pidfd, raw, PidfdGetfdFlags::empty()).ok()?;
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
            if link.as_os_str() != "anon_inode:[io_uring]" {
                return None;
            }
            self.rings.insert(index, (key, fd));
        }
        self.rings.get(&index).map(|(_, fd)| fd.as_raw_fd())
    }

    /// Wake the receivers of `set` (computed by the producer's
    /// `wake_set`). No syscall if the set is empty; otherwise one syscall in
    /// the common cases: one `FUTEX_WAKE(_BITSET)` when every sleeper waits
    /// on a futex word, one `io_uring_enter` carrying every SQE otherwise.
    pub fn wake<R: Regions>(&mut self, ring: &Ring<R>, set: &WakeSet) -> Result<(), WakeError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.checks += 1;
        if set.is_empty() {
            self.stats.skipped += 1;
            return Ok(());
        }
        // One futex sleeper on its own word (unicast, multicast): one
        // FUTEX_WAKE and none of the bookkeeping below. Measured against the
        // general path (`--quick --only notify`, 8 alternating runs on a
        // quiet host): futex wake-up 1.05-1.06x a bare futex wake against
        // 1.06-1.09x, uring-futex 1.10-1.11x against 1.11-1.14x.
        if !set.is_broadcast() && set.len() == 1 {
            if let Some(id) = set.receivers().next() {
                if let (_, BackendKind::Futex | BackendKind::UringFutex) = backend(ring, id) {
                    self.stats.woken += 1;
                    if let Some(w) = ring.wake_word(id) {
                        self.stats.syscalls += 1;
                        futex::wake(w, 1, futex::MATCH_ANY).map_err(|errno| WakeError::Io {
                            op: "futex(FUTEX_WAKE)",
                            errno,
                        })?;
                    }
                    return Ok(());
                }
            }
        }
        // One receiver to wake: a direct write(2) to its eventfd beats an
        // io_uring WRITE, which the kernel may hand to an io-wq worker
        // thread (measured: wake-up 1.36x a bare futex wake through the
        // ring). The ring pays off when it carries several wakes at once.
        let single = set.len() == 1;
        let mut futex_mask = 0u32; // broadcast: bitset of futex sleepers on the shared word
        let mut futex_n = 0u32; // how many of them
        let mut relayable = set.is_broadcast() && ring.relay_bitsets_unique();
        let mut futex_words = Vec::new(); // per-receiver words
        let mut fallback_mask = 0u32; // MSG_RING receivers: futex-woken only if it fails
        let mut fallback_words = Vec::new();
        let mut queued = false;
        for id in set.receivers() {
            self.stats.woken += 1;
            let (backend_word, kind) = backend(ring, id);
            let mut by_futex = kind.woken_by_futex();
            match kind {
                BackendKind::Eventfd => {
                    // The table outlives this call (we hold the Arc), so
                    // raw fd numbers from it stay valid through the submit.
                    let table = self.eventfds.clone();
                    match table.as_ref().and_then(|t| t.get(id.index())) {
                        Some(fd) => match if single { None } else { self.batch() } {
                            Some(b) => {
                                let ok = b.eventfd_write(fd.as_raw_fd()).is_ok();
                                self.stats.ring_wakes += ok as u64;
                                queued |= ok;
                            }
                            None => {
                                self.stats.syscalls += 1;
                                eventfd::signal(fd).map_err(|errno| WakeError::Io {
                                    op: "write(eventfd)",
                                    errno,
                                })?;
                            }
                        },
                        None => by_futex = true,
                    }
                }
                BackendKind::MsgRing => {
                    let info = ring.regions().entry(id.index()).notify_info.load(Relaxed);
                    // Cache key: the info and the backend word's serial.
                    let key = info ^ (u64::from(backend_word) << 40);
                    // The cache keeps the fd open until the next wake of this
                    // receiver, i.e. past the submit below.
                    let target = self.ring_fd(id.index(), info, key);
                    let sent = match (target, self.batch()) {
                        (Some(fd), Some(b)) => b.msg_ring(fd, id.0 as u64).is_ok(),
                        _ => false,
                    };
                    // One we could not queue: wake its word now (its armed
                    // FUTEX_WAIT hears it where the kernel has io_uring
                    // futex ops, and it sleeps on the word otherwise). One
                    // that fails in the submit: its word after the submit.
                    // Not both on success: the receiver would get two
                    // completions for one wake, and the second would end
                    // its next sleep at once.
                    self.stats.ring_wakes += sent as u64;
                    queued |= sent;
                    by_futex |= !sent;
                    if sent {
                        if set.is_broadcast() {
                            fallback_mask |= 1 << (id.0 % 32);
                        } else if let Some(w) = ring.wake_word(id) {
                            fallback_words.push(w);
                        }
                    }
                }
                BackendKind::Futex | BackendKind::UringFutex => {}
            }
            if by_futex {
                if set.is_broadcast() {
                    futex_mask |= 1 << (id.0 % 32);
                    futex_n += 1;
                    relayable &= ring.sleeps_relaying(id);
                } else if let Some(w) = ring.wake_word(id) {
                    futex_words.push(w);
                }
            }
        }
        let word = ring.broadcast_wake_word();
        // Broadcast: past RELAY_ABOVE futex sleepers, wake one and leave
        // the others' bitsets in the relay word for it (or any broadcast
        // sleeper that returns first) to wake: `Sleeper::sleep` relays on
        // its way out. The core has bumped the word already, so a sleeper
        // not yet queued in the kernel sees it moved and does not sleep;
        // one queued is woken by us or by the relay, which comes later.
        // Only when the single wake cannot land on a waiter that would not
        // relay: every sleeper of the set is asleep in a relaying sleeper
        // (not in its own event loop), and bitsets are unique (no other
        // receiver, or a stale io_uring wait of one, shares a bit). A
        // hostile peer's waiter can still take it: `watch_relay` performs
        // a relay left untaken, and the sleepers' guard bounds the rest.
        let all_futex_mask = futex_mask;
        // Kept only for a failed submit's fallback (no copy otherwise).
        let all_futex_words = if queued {
            futex_words.clone()
        } else {
            Vec::new()
        };
        let mut futex_n_wake = i32::MAX as u32;
        if relayable && futex_n > RELAY_ABOVE {
            ring.offer_relay(futex_mask);
            futex_n_wake = 1;
            self.stats.relays += 1;
            self.relay_watch = Some((Instant::now(), 0));
        }
        let mut submit_error = None;
        if queued {
            // Fold the futex wakes into the same io_uring_enter when the
            // kernel has IORING_OP_FUTEX_WAKE.
            let fold = probe().futex_ops;
            let b = self.batch.as_mut().expect("queued implies a batch");
            if fold {
                if futex_mask != 0 && b.futex_wake(word, futex_n_wake, futex_mask).is_ok() {
                    futex_mask = 0;
                }
                futex_words.retain(|w| b.futex_wake(w, 1, futex::MATCH_ANY).is_err());
            }
            self.stats.syscalls += 1;
            let submitted = b.submit();
            if !matches!(submitted, Ok(0)) {
                // Some SQE failed (we cannot tell which: a MSG_RING, or a
                // folded futex wake): reach every receiver of this publish
                // by its futex word, all of them at once (no relay: the
                // failed SQE may have been its single wake).
                futex_mask = all_futex_mask | fallback_mask;
                futex_n_wake = i32::MAX as u32;
                futex_words = all_futex_words;
                futex_words.append(&mut fallback_words);
            }
            match submitted {
                Ok(failed) => self.stats.failures += failed as u64,
                Err(errno) => {
                    // The SQEs may still be queued, naming fds valid only
                    // now: drop the ring. Finish the futex wakes first.
                    self.batch = None;
                    self.stats.failures += 1;
                    submit_error = Some(WakeError::Io {
                        op: "io_uring_enter",
                        errno,
                    });
                }
            }
        }
        if futex_mask != 0 {
            self.stats.syscalls += 1;
            futex::wake(word, futex_n_wake, futex_mask).map_err(|errno| WakeError::Io {
                op: "futex(FUTEX_WAKE_BITSET)",
                errno,
            })?;
        }
        for w in futex_words {
            self.stats.syscalls += 1;
            futex::wake(w, 1, futex::MATCH_ANY).map_err(|errno| WakeError::Io {
                op: "futex(FUTEX_WAKE)",
                errno,
            })?;
        }
        submit_error.map_or(Ok(()), Err)
    }
}

/// Receiver `id`'s published backend word and how to wake it. Untrusted: an
/// unknown code is treated as a futex sleeper, and so is any bit that does
/// not belong to an attached receiver (a peer may set waiter bits and write
/// entries at will; a futex wake of a word in the ring is harmless, an
/// fd-based one not).
fn backend<R: Regions>(ring: &Ring<R>, id: shmcast_core::SubscriberId) -> (u32, BackendKind) {
    use std::sync::atomic::Ordering::Acquire;
    // ORDERING: Acquire; pairs with the Release store of `backend` in
    // Sleeper::publish, which follows its `notify_info` store, so a caller
    // that reads `notify_info` after this sees the pair consistent.
    let word = ring.regions().entry(id.index()).backend.load(Acquire);
    let kind = if ring.is_receiver(id) {
        BackendKind::from_code(word & 0xff).unwrap_or(BackendKind::Futex)
    } else {
        BackendKind::Futex
    };
    (word, kind)
}
