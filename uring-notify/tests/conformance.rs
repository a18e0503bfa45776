//! One conformance suite, run for every backend the probe reports usable
//! here; the others print a skip line with the reason (io-uring-test's
//! `require!` style). Receivers and producers are threads over a heap ring:
//! the backends only see a futex word, fds and an io_uring, which behave the
//! same across threads as across processes (the cross-process runs live in
//! `shm/tests/notify.rs`).

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use shmcast_core::{Config, HeapRing, Mode, Regions, TryRecvError};
use shmcast_uring_notify::{eventfd, probe, BackendKind, SleepError, Sleeper, Waker};

/// A guard far above every timeout here: a lost wake must show as a
/// timeout, not be covered up by the guard's re-check.
const NO_GUARD: Duration = Duration::from_secs(3600);

fn table() -> Arc<[OwnedFd]> {
    (0..8)
        .map(|_| eventfd::create().unwrap())
        .collect::<Vec<_>>()
        .into()
}

/// Run `f` for every usable backend; print a skip line for the others.
fn each_backend(test: &str, f: impl Fn(BackendKind)) {
    for kind in BackendKind::ALL {
        match probe().check(kind, true) {
            Ok(()) => f(kind),
            Err(why) => eprintln!("{test}: skip {kind}: {why}"),
        }
    }
}

fn ring(mode: Mode) -> HeapRing {
    HeapRing::new(
        &Config::new(mode)
            .capacity(8)
            .max_message(16)
            .max_subscribers(8),
    )
    .unwrap()
}

fn asleep(ring: &HeapRing, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ring
        .regions()
        .waiter_word(0)
        .load(Ordering::SeqCst)
        .count_ones()
        < n
    {
        assert!(
            Instant::now() < deadline,
            "receiver never announced its sleep"
        );
        thread::yield_now();
    }
}

#[test]
fn wakes_a_sleeping_receiver() {
    each_backend("wakes_a_sleeping_receiver", |kind| {
        for mode in [Mode::Unicast, Mode::Broadcast, Mode::Multicast] {
            let ring = ring(mode);
            let fds = table();
            let rx = ring.receiver().unwrap();
            let r2 = ring.clone();
            let fds2 = fds.clone();
            let sleeper = thread::spawn(move || {
                let mut s = Sleeper::new(kind, Some(fds2)).unwrap();
                s.set_guard(NO_GUARD);
                s.publish(&r2, rx.id()).unwrap();
                let token = rx.prepare_wait().expect("ring is empty");
                let r = s.sleep(&r2, rx.id(), &token, Some(Duration::from_secs(10)));
                let woken = token.is_woken();
                rx.finish_wait();
                let mut buf = [0u8; 16];
                (
                    r,
                    woken,
                    rx.try_recv(&mut buf).map(|i| buf[..i.len].to_vec()),
                )
            });
            asleep(&ring, 1);
            let tx = ring.producer().unwrap();
            tx.try_send(b"wake").unwrap();
            let mut waker = Waker::new(Some(fds));
            waker.wake(&ring, &tx.wake_set(1)).unwrap();
            let (r, woken, got) = sleeper.join().unwrap();
            assert_eq!(r, Ok(()), "{kind} {mode}");
            assert!(woken, "{kind} {mode}: the wake word moved");
            assert_eq!(got, Ok(b"wake".to_vec()), "{kind} {mode}");
            assert_eq!(waker.stats().syscalls, 1, "{kind} {mode}: one wake syscall");
            assert_eq!(waker.stats().woken, 1);
            // In-process MSG_RING receivers are woken through their armed
            // FUTEX_WAIT (senders never post into a ring of their own
            // process by fd number); across processes see
            // shm/tests/notify.rs. A lone eventfd sleeper gets a direct
            // write(2), not an io_uring WRITE.
            let via_ring = kind == BackendKind::MsgRing && !probe().futex_ops;
            assert_eq!(
                waker.stats().ring_wakes,
                via_ring as u64,
                "{kind}: woken through its own path: {:?}",
                waker.stats()
            );
            assert_eq!(waker.stats().failures, 0, "{kind}");
        }
    });
}

#[test]
fn sleep_times_out() {
    each_backend("sleep_times_out", |kind| {
        let ring = ring(Mode::Unicast);
        let rx = ring.receiver().unwrap();
        let mut s = Sleeper::new(kind, Some(table())).unwrap();
        s.set_guard(NO_GUARD);
        s.publish(&ring, rx.id()).unwrap();
        let token = rx.prepare_wait().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            s.sleep(&ring, rx.id(), &token, Some(Duration::from_millis(30))),
            Err(SleepError::Timeout),
            "{kind}"
        );
        assert!(
            t0.elapsed() >= Duration::from_millis(25),
            "{kind}: slept the timeout"
        );
        rx.finish_wait();
    });
}

#[test]
fn wake_before_sleep_is_not_lost() {
    each_backend("wake_before_sleep_is_not_lost", |kind| {
        let ring = ring(Mode::Broadcast);
        let fds = table();
        let rx = ring.receiver().unwrap();
        let mut s = Sleeper::new(kind, Some(fds.clone())).unwrap();
        s.set_guard(NO_GUARD);
        s.publish(&ring, rx.id()).unwrap();
        let token = rx.prepare_wait().unwrap();
        // The producer publishes and wakes between the re-check and the sleep.
        let tx = ring.producer().unwrap();
        tx.try_send(b"early").unwrap();
        let mut waker = Waker::new(Some(fds));
        waker.wake(&ring, &tx.wake_set(1)).unwrap();
        assert_eq!(
            s.sleep(&ring, rx.id(), &token, Some(Duration::from_secs(10))),
            Ok(()),
            "{kind}"
        );
        rx.finish_wait();
    });
}

#[test]
fn no_wake_when_nobody_sleeps() {
    each_backend("no_wake_when_nobody_sleeps", |kind| {
        let ring = ring(Mode::Broadcast);
        let _rx = ring.receiver().unwrap();
        let tx = ring.producer().unwrap();
        let mut waker = Waker::new(Some(table()));
        for _ in 0..5 {
            tx.try_send(b"x").unwrap();
            waker.wake(&ring, &tx.wake_set(1)).unwrap();
        }
        let st = waker.stats();
        assert_eq!((st.checks, st.skipped, st.syscalls), (5, 5, 0), "{kind}");
    });
}

/// Producer and receivers race with random pauses; every sleep has a 5 s
/// timeout that can only expire if a wake-up was lost (the producer never
/// pauses that long), so a lost wake-up fails the test instead of hanging it.
fn stress(kind: BackendKind, mode: Mode, receivers: usize, count: u64) {
    let ring = ring(mode);
    let fds = table();
    let rxs: Vec<_> = (0..receivers).map(|_| ring.receiver().unwrap()).collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let r = ring.clone();
            let fds = fds.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut s = Sleeper::new(kind, Some(fds)).unwrap();
                s.set_guard(NO_GUARD);
                s.publish(&r, rx.id()).unwrap();
                let mut buf = [0u8; 16];
                let mut got = 0u64;
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
                loop {
                    match rx.try_recv(&mut buf) {
                        Ok(_) => {
                            got += 1;
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            if x % 500 == 0 {
                                thread::sleep(Duration::from_micros(x % 200));
                            }
                            if mode != Mode::Multicast && got == count {
                                return got;
                            }
                        }
                        Err(TryRecvError::Empty) => {
                            if mode == Mode::Multicast && done.load(Ordering::Acquire) {
                                if rx.try_recv(&mut buf).is_ok() {
                                    got += 1;
                                    continue;
                                }
                                return got;
                            }
                            if let Some(token) = rx.prepare_wait() {
                                let t = if mode == Mode::Multicast {
                                    Duration::from_millis(20)
                                } else {
                                    Duration::from_secs(5)
                                };
                                match s.sleep(&r, rx.id(), &token, Some(t)) {
                                    Ok(()) => {}
                                    Err(SleepError::Timeout) if mode == Mode::Multicast => {}
                                    Err(e) => panic!(
                                        "{kind} {mode}: lost wake-up or failure after {got}: {e}"
                                    ),
                                }
                                rx.finish_wait();
                            }
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let tx = ring.producer().unwrap();
    let mut waker = Waker::new(Some(fds));
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..count {
        while tx.try_send(&i.to_le_bytes()).is_err() {
            thread::yield_now();
        }
        waker.wake(&ring, &tx.wake_set(1)).unwrap();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 300 == 0 {
            thread::sleep(Duration::from_micros(x % 300));
        }
    }
    done.store(true, Ordering::Release);
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let want = if mode == Mode::Broadcast {
        count * receivers as u64
    } else {
        count
    };
    assert_eq!(total, want, "{kind} {mode}");
    assert!(
        waker.stats().syscalls > 0,
        "{kind} {mode}: receivers did sleep"
    );
    assert!(
        waker.stats().syscalls <= count,
        "{kind} {mode}: at most one wake syscall per publish"
    );
}

#[test]
fn no_lost_wakeups() {
    each_backend("no_lost_wakeups", |kind| {
        stress(kind, Mode::Unicast, 1, 50_000);
        stress(kind, Mode::Broadcast, 3, 20_000);
        stress(kind, Mode::Multicast, 2, 20_000);
    });
}

#[test]
fn receiver_moving_threads_is_still_woken() {
    // Ring backends re-create their ring on the new thread
    // (often at the same fd number) and republish; producers must follow.
    each_backend("receiver_moving_threads_is_still_woken", |kind| {
        let ring = ring(Mode::Unicast);
        let fds = table();
        let rx = ring.receiver().unwrap();
        let id = rx.id();
        let mut s = Sleeper::new(kind, Some(fds.clone())).unwrap();
        s.set_guard(NO_GUARD);
        s.publish(&ring, id).unwrap();
        let tx = ring.producer().unwrap();
        let mut waker = Waker::new(Some(fds));
        let mut state = (rx, s);
        for round in 0..3u8 {
            let r2 = ring.clone();
            let handle = thread::spawn(move || {
                let (rx, mut s) = state;
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut buf = [0u8; 16];
                // A moved ring backend may return once at once (a spurious
                // wake after re-publishing its ring): loop like a receiver.
                loop {
                    if let Ok(i) = rx.try_recv(&mut buf) {
                        return (Ok(()), Ok(buf[..i.len].to_vec()), (rx, s));
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Some(token) = rx.prepare_wait() {
                        let r = s.sleep(&r2, id, &token, Some(left));
                        rx.finish_wait();
                        if let Err(e) = r {
                            return (Err(e), Err(TryRecvError::Empty), (rx, s));
                        }
                    }
                }
            });
            asleep(&ring, 1);
            tx.try_send(&[round]).unwrap();
            waker.wake(&ring, &tx.wake_set(1)).unwrap();
            let (r, got, back) = handle.join().unwrap();
            assert_eq!(r, Ok(()), "{kind} round {round}");
            assert_eq!(got, Ok(vec![round]), "{kind} round {round}");
            state = back;
        }
        assert_eq!(waker.stats().failures, 0, "{kind}");
    });
}

/// Several eventfd sleepers woken by one publish: one `io_uring_enter`
/// carries every eventfd write when io_uring is usable (a lone sleeper gets
/// a direct `write(2)` instead, see `wakes_a_sleeping_receiver`).
///
/// The sleeper threads hand their receivers back instead of dropping them:
/// a sleeper that sees the publish's bump before its `poll` returns at once,
/// and had it left the ring before the waker reached its entry, the waker
/// would rightly skip its eventfd (no longer a receiver) and this count
/// would be one short (seen under load).
#[test]
fn eventfd_sleepers_share_one_submit() {
    if let Err(why) = probe().check(BackendKind::Eventfd, true) {
        eprintln!("eventfd_sleepers_share_one_submit: skip: {why}");
        return;
    }
    let ring = ring(Mode::Broadcast);
    let fds = table();
    let sleepers: Vec<_> = (0..3)
        .map(|_| {
            let rx = ring.receiver().unwrap();
            let (r2, fds2) = (ring.clone(), fds.clone());
            thread::spawn(move || {
                let mut s = Sleeper::new(BackendKind::Eventfd, Some(fds2)).unwrap();
                s.set_guard(NO_GUARD);
                s.publish(&r2, rx.id()).unwrap();
                let token = rx.prepare_wait().expect("ring is empty");
                let r = s.sleep(&r2, rx.id(), &token, Some(Duration::from_secs(10)));
                rx.finish_wait();
                let mut buf = [0u8; 16];
                let got = rx.try_recv(&mut buf).map(|i| buf[..i.len].to_vec());
                (r, got, rx)
            })
        })
        .collect();
    asleep(&ring, 3);
    let tx = ring.producer().unwrap();
    tx.try_send(b"all").unwrap();
    let mut waker = Waker::new(Some(fds));
    waker.wake(&ring, &tx.wake_set(1)).unwrap();
    let mut receivers = Vec::new();
    for s in sleepers {
        let (r, got, rx) = s.join().unwrap();
        assert_eq!(r, Ok(()));
        assert_eq!(got, Ok(b"all".to_vec()));
        receivers.push(rx);
    }
    let st = waker.stats();
    assert_eq!(st.woken, 3);
    if probe().uring.is_ok() {
        assert_eq!(st.syscalls, 1, "one io_uring_enter: {st:?}");
        assert_eq!(st.ring_wakes, 3, "{st:?}");
    } else {
        assert_eq!(st.syscalls, 3, "one write(2) each: {st:?}");
    }
    assert_eq!(st.failures, 0);
}

/// What a broadcast sleeper thread saw: its sleep's result, and what it
/// then received.
type Woke = (Result<(), SleepError>, Result<Vec<u8>, TryRecvError>);

/// A broadcast receiver asleep in `Sleeper::sleep` (futex backend, no
/// guard) in a thread of its own.
fn relaying_sleeper(ring: &HeapRing) -> thread::JoinHandle<Woke> {
    let rx = ring.receiver().unwrap();
    let r2 = ring.clone();
    thread::spawn(move || {
        let mut s = Sleeper::new(BackendKind::Futex, None).unwrap();
        s.set_guard(NO_GUARD);
        s.publish(&r2, rx.id()).unwrap();
        let token = rx.prepare_wait().expect("ring is empty");
        let r = s.sleep(&r2, rx.id(), &token, Some(Duration::from_secs(10)));
        rx.finish_wait();
        let mut buf = [0u8; 16];
        (r, rx.try_recv(&mut buf).map(|i| buf[..i.len].to_vec()))
    })
}

/// Wait until `n` entries show a sleeper that relays (it set `sleeping`
/// just before its futex wait).
fn relaying(ring: &HeapRing, n: usize) {
    use shmcast_core::layout::SLEEPING_RELAYS;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..8)
        .filter(|&i| ring.regions().entry(i).sleeping.load(Ordering::SeqCst) == SLEEPING_RELAYS)
        .count()
        < n
    {
        assert!(Instant::now() < deadline, "sleepers never said they relay");
        thread::yield_now();
    }
}

/// Past RELAY_ABOVE broadcast futex sleepers the producer wakes one, and
/// that one wakes the others: one syscall on the producer's side, and every
/// sleeper woken although none has a guard to fall back on.
#[test]
fn relay_wakes_many_broadcast_sleepers_with_one_wake() {
    probe(); // its io_uring teardown would interrupt a sleeper's first sleep
    let ring = ring(Mode::Broadcast);
    let sleepers: Vec<_> = (0..4).map(|_| relaying_sleeper(&ring)).collect();
    asleep(&ring, 4);
    relaying(&ring, 4);
    let tx = ring.producer().unwrap();
    tx.try_send(b"relayed").unwrap();
    let mut waker = Waker::new(None);
    waker.wake(&ring, &tx.wake_set(1)).unwrap();
    for s in sleepers {
        let (r, got) = s.join().unwrap();
        assert_eq!(r, Ok(()), "woken, not timed out");
        assert_eq!(got, Ok(b"relayed".to_vec()));
    }
    let st = waker.stats();
    assert_eq!((st.woken, st.relays, st.syscalls), (4, 1, 1), "{st:?}");
    assert_eq!(ring.take_relay(), 0, "the relay was taken");
}

/// A broadcast sleeper in its own loop (a futex wait of its own after
/// `prepare_wait`, like `examples/uring_receiver.rs`) does not relay, so
/// the producer does not hand a wake to a relay while it sleeps.
#[test]
fn own_loop_sleeper_gets_the_full_wake() {
    use shmcast_uring_notify::futex;
    probe();
    let ring = ring(Mode::Broadcast);
    let mut sleepers: Vec<_> = (0..3).map(|_| relaying_sleeper(&ring)).collect();
    let own = {
        let rx = ring.receiver().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 16];
            // The test's `asleep` sees our bit as soon as it is set, so the
            // publish may come before our re-check: then there is nothing to
            // wait for (the producer's wake decision, checked below, was
            // made with our bit set all the same).
            let Some(token) = rx.prepare_wait() else {
                return (Ok(()), rx.try_recv(&mut buf).map(|i| buf[..i.len].to_vec()));
            };
            let bitset = 1 << (rx.id().0 % 32);
            let r = futex::wait(
                token.word(),
                token.expected(),
                bitset,
                Some(Duration::from_secs(10)),
            );
            rx.finish_wait();
            (r, rx.try_recv(&mut buf).map(|i| buf[..i.len].to_vec()))
        })
    };
    sleepers.push(own);
    asleep(&ring, 4);
    relaying(&ring, 3);
    let tx = ring.producer().unwrap();
    tx.try_send(b"all of you").unwrap();
    let mut waker = Waker::new(None);
    waker.wake(&ring, &tx.wake_set(1)).unwrap();
    for s in sleepers {
        let (r, got) = s.join().unwrap();
        assert_eq!(r, Ok(()), "woken, not timed out");
        assert_eq!(got, Ok(b"all of you".to_vec()));
    }
    let st = waker.stats();
    assert_eq!((st.woken, st.relays, st.syscalls), (4, 0, 1), "{st:?}");
}

/// A waiter that never relays (here a thread queued on the broadcast word
/// before the receivers, as a hostile peer's could be) takes the producer's
/// single wake; the producer, publishing on, finds its relay untaken after
/// RELAY_WATCH and performs it itself. The sleepers have no guard: only
/// that rescue can wake them before their 10 s timeout.
///
/// A sleeper that had said it relays but was not yet queued in the kernel
/// when the thief took the wake sees the bump, returns and takes the relay
/// itself (correctly): that round shows no rescue and is run again (seen
/// under load); one round in five must show it.
#[test]
fn untaken_relay_is_performed_by_the_producer() {
    probe();
    for _ in 0..5 {
        if let Some(st) = rescue_round() {
            assert_eq!((st.relays, st.relays_rescued), (1, 1), "{st:?}");
            return;
        }
    }
    panic!("five rounds and a sleeper took the relay in each: never rescued");
}

/// One round of `untaken_relay_is_performed_by_the_producer`: the waker's
/// stats if the producer rescued the relay, `None` if a sleeper took it.
fn rescue_round() -> Option<shmcast_uring_notify::WakeStats> {
    use shmcast_uring_notify::{futex, RELAY_WATCH};
    let ring = ring(Mode::Broadcast);
    let thief = {
        let ring = ring.clone();
        thread::spawn(move || {
            let word = ring.broadcast_wake_word();
            let seen = word.load(Ordering::SeqCst);
            futex::wait(word, seen, futex::MATCH_ANY, Some(Duration::from_secs(10)))
        })
    };
    // Let the thief reach the kernel's queue first.
    thread::sleep(Duration::from_millis(100));
    let sleepers: Vec<_> = (0..3).map(|_| relaying_sleeper(&ring)).collect();
    asleep(&ring, 3);
    relaying(&ring, 3);
    let tx = ring.producer().unwrap();
    tx.try_send(b"rescued").unwrap();
    let mut waker = Waker::new(None);
    waker.wake(&ring, &tx.wake_set(1)).unwrap();
    assert_eq!(
        thief.join().unwrap(),
        Ok(()),
        "the thief took the single wake"
    );
    assert_eq!(waker.stats().relays, 1);
    assert!(waker.relay_pending(), "an offered relay is watched");
    // Publish on, as a streaming sender would.
    let t0 = Instant::now();
    while waker.relay_pending() {
        let _ = tx.try_send(b"more");
        waker.watch_relay(&ring);
        assert!(t0.elapsed() < Duration::from_secs(5), "relay never rescued");
        thread::sleep(RELAY_WATCH / 10);
    }
    for s in sleepers {
        let (r, got) = s.join().unwrap();
        assert_eq!(r, Ok(()), "woken, not timed out");
        assert_eq!(got, Ok(b"rescued".to_vec()));
    }
    let st = waker.stats();
    (st.relays_rescued != 0).then_some(st)
}

/// The guard ends a sleep that no wake ends, as a spurious wake-up (`Ok`),
/// for every backend, while a caller's shorter timeout still reads
/// `Timeout`; a guard too
/// large to be a timeout is clamped rather than refused by the kernel.
#[test]
fn guard_bounds_every_sleep() {
    each_backend("guard_bounds_every_sleep", |kind| {
        let ring = ring(Mode::Broadcast);
        let rx = ring.receiver().unwrap();
        let mut s = Sleeper::new(kind, Some(table())).unwrap();
        s.publish(&ring, rx.id()).unwrap();
        s.set_guard(Duration::from_millis(20));
        let token = rx.prepare_wait().expect("ring is empty");
        // A timeout of the caller's far past the guard: the guard (the
        // guard thread's wake, or the capped sleep where the thread cannot
        // reach this backend) ends it first, as a spurious wake-up.
        let t0 = Instant::now();
        assert_eq!(
            s.sleep(&ring, rx.id(), &token, Some(Duration::from_secs(10))),
            Ok(()),
            "{kind}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{kind}: {:?}",
            t0.elapsed()
        );
        // The guard thread's nudge that ended the sleep above may land
        // after it ended and end this one early instead: a spurious
        // wake-up, which `sleep` allows. The guard thread does not nudge a
        // sleep this short (it is not watched), so at most once.
        let mut short = || s.sleep(&ring, rx.id(), &token, Some(Duration::from_millis(5)));
        let r = match short() {
            Ok(()) => short(),
            r => r,
        };
        assert_eq!(
            r,
            Err(SleepError::Timeout),
            "{kind}: the caller's own timeout"
        );
        s.set_guard(Duration::MAX);
        assert_eq!(s.guard(), shmcast_uring_notify::MAX_WAKE_GUARD);
        assert_eq!(
            s.sleep(&ring, rx.id(), &token, Some(Duration::from_millis(5))),
            Err(SleepError::Timeout),
            "{kind}: huge guard"
        );
        rx.finish_wait();
    });
    // A timeout too large for a timespec saturates instead of failing.
    let word = shmcast_core::atomic::AtomicU32::new(7);
    assert_eq!(
        shmcast_uring_notify::futex::wait(&word, 8, u32::MAX, Some(Duration::MAX)),
        Ok(())
    );
}
