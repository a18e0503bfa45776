//! Sleeping receivers woken across processes, for every notify backend the
//! probe reports usable here (the others print a skip line with the reason).
//!
//! The lost-wake-up stress runs use `shmcast-peer send --sync-every N`: at
//! random points the sender stops until every receiver has received all it
//! sent, for at most 10 s. A receiver that slept through a lost wake-up is
//! then not rescued by the next message: the run fails.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use shmcast::{attach, BackendKind, ChannelBuilder, Mode, RecvError, Role, SendError};
use shmcast_uring_notify::probe;

/// The stress runs are CPU-bound on a 2-core machine: one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn usable(kind: BackendKind) -> bool {
    match probe().check(kind, true) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skip {kind}: {why}");
            false
        }
    }
}

fn stress(kind: BackendKind, mode: Mode, receivers: usize, count: u64) {
    if !usable(kind) {
        return;
    }
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique(&format!("wake-{kind}"));
    let _ch = ChannelBuilder::new(&name)
        .mode(mode)
        .capacity(64)
        .max_message(64)
        .eventfds(true)
        .create()
        .unwrap();
    let count_s = count.to_string();
    let per = if mode == Mode::Multicast {
        None
    } else {
        Some(count_s.as_str())
    };
    let mut rxs: Vec<_> = (0..receivers)
        .map(|i| {
            let seed = (i + 7).to_string();
            let mut args = vec![
                "recv",
                &name,
                "--blocking",
                "--guard-ms",
                NO_GUARD_MS,
                "--backend",
                kind.name(),
                "--timeout",
                "120",
                "--pause-every",
                "3000",
                "--pause-us",
                "300",
                "--seed",
                &seed,
            ];
            match per {
                Some(c) => args.extend(["--count", c]),
                None => args.push("--until-closed"),
            }
            let args: Vec<String> = args.into_iter().map(String::from).collect();
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            Running::spawn(peer(&refs))
        })
        .collect();
    for r in &mut rxs {
        let line = r.line();
        assert!(line.ends_with(&format!("backend {kind}")), "{line}");
    }
    let n = receivers.to_string();
    let (code, out, err) = run(
        &[
            "send",
            &name,
            "--count",
            &count_s,
            "--blocking",
            "--sync-every",
            "256",
            "--receivers",
            &n,
            "--pause-every",
            "2000",
            "--pause-us",
            "300",
            "--timeout",
            "120",
        ],
        Duration::from_secs(180),
    );
    assert_eq!(code, 0, "sender: {out}{err}");
    let woken: u64 = out
        .split("woken ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        woken > 0,
        "the run made receivers sleep and woke them: {out}"
    );
    if mode == Mode::Multicast {
        _ch.destroy();
    }
    let mut total = 0u64;
    for r in rxs {
        let (code, out, err) = r.finish(Duration::from_secs(180));
        assert_eq!(code, 0, "receiver: {out}{err}");
        let got: u64 = out
            .split("received ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        total += got;
    }
    let expected = if mode == Mode::Broadcast {
        count * receivers as u64
    } else {
        count
    };
    assert_eq!(total, expected, "every message delivered");
}

#[test]
fn no_lost_wakeups_futex() {
    stress(BackendKind::Futex, Mode::Unicast, 1, 1_000_000);
    stress(BackendKind::Futex, Mode::Broadcast, 2, 100_000);
    // Past RELAY_ABOVE sleepers: most wakes go through the relay.
    stress(BackendKind::Futex, Mode::Broadcast, 4, 50_000);
    stress(BackendKind::Futex, Mode::Multicast, 2, 100_000);
}

#[test]
fn no_lost_wakeups_uring_futex() {
    stress(BackendKind::UringFutex, Mode::Unicast, 1, 1_000_000);
    stress(BackendKind::UringFutex, Mode::Broadcast, 2, 100_000);
    stress(BackendKind::UringFutex, Mode::Broadcast, 4, 50_000);
    stress(BackendKind::UringFutex, Mode::Multicast, 2, 100_000);
}

#[test]
fn no_lost_wakeups_msg_ring() {
    stress(BackendKind::MsgRing, Mode::Unicast, 1, 1_000_000);
    stress(BackendKind::MsgRing, Mode::Broadcast, 2, 100_000);
    stress(BackendKind::MsgRing, Mode::Multicast, 2, 100_000);
}

#[test]
fn no_lost_wakeups_eventfd() {
    stress(BackendKind::Eventfd, Mode::Unicast, 1, 1_000_000);
    stress(BackendKind::Eventfd, Mode::Broadcast, 2, 100_000);
    stress(BackendKind::Eventfd, Mode::Multicast, 2, 100_000);
}

#[test]
fn no_wake_syscall_while_receivers_are_awake() {
    // A polling receiver process never announces a sleep: the sender pays
    // the bitmap check only.
    let name = unique("awake");
    let ch = ChannelBuilder::new(&name)
        .capacity(256)
        .max_message(64)
        .create()
        .unwrap();
    let mut rx = Running::spawn(peer(&[
        "recv",
        &name,
        "--count",
        "50000",
        "--timeout",
        "60",
    ]));
    assert!(rx.line().starts_with("joined"));
    let tx = ch.sender().unwrap();
    for i in 0..50_000u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let (code, _, err) = rx.finish(LIMIT);
    assert_eq!(code, 0, "{err}");
    let st = tx.stats();
    assert_eq!(st.checks, 50_000);
    assert_eq!(st.skipped, 50_000, "{st:?}");
    assert_eq!(st.syscalls, 0, "{st:?}");
}

/// A wake guard (`--guard-ms`) far above every timeout here: a lost wake
/// must fail these tests, not be covered up by the guard's re-check.
const NO_GUARD_MS: &str = "3600000";

/// Wait until `n` receivers have their waiter bit set (are asleep).
fn wait_asleep(ch: &shmcast::Channel, n: u32) {
    use shmcast::core::Regions;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let bits = ch
            .raw_ring()
            .regions()
            .waiter_word(0)
            .load(std::sync::atomic::Ordering::SeqCst);
        if bits.count_ones() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "receivers did not fall asleep");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait until `n` entries show a receiver asleep in a sleeper that
/// performs broadcast wake relays (set just before its wait; producers
/// relay only through those).
fn wait_relaying(ch: &shmcast::Channel, n: usize) {
    use shmcast::core::layout::SLEEPING_RELAYS;
    use shmcast::core::Regions;
    let ring = ch.raw_ring();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let k = (0..ring.geometry().max_subscribers())
            .filter(|&i| {
                ring.regions()
                    .entry(i)
                    .sleeping
                    .load(std::sync::atomic::Ordering::SeqCst)
                    == SLEEPING_RELAYS
            })
            .count();
        if k >= n {
            return;
        }
        assert!(Instant::now() < deadline, "sleepers never said they relay");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn one_wake_syscall_per_publish_for_many_broadcast_sleepers() {
    for kind in BackendKind::ALL {
        if !usable(kind) {
            continue;
        }
        let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let name = unique(&format!("fan-{kind}"));
        let ch = ChannelBuilder::new(&name)
            .mode(Mode::Broadcast)
            .capacity(16)
            .max_message(64)
            .eventfds(true)
            .create()
            .unwrap();
        let mut rxs: Vec<_> = (0..4)
            .map(|_| {
                Running::spawn(peer(&[
                    "recv",
                    &name,
                    "--count",
                    "3",
                    "--blocking",
                    "--guard-ms",
                    NO_GUARD_MS,
                    "--backend",
                    kind.name(),
                    "--timeout",
                    "30",
                ]))
            })
            .collect();
        for r in &mut rxs {
            assert!(r.line().ends_with(&format!("backend {kind}")));
        }
        let tx = ch.sender().unwrap();
        for round in 1..=3u64 {
            wait_asleep(&ch, 4);
            wait_relaying(&ch, 4);
            let before = tx.stats();
            tx.send(&[round as u8; 16]).unwrap();
            let after = tx.stats();
            assert_eq!(
                after.woken - before.woken,
                4,
                "{kind}: all four sleepers woken"
            );
            assert_eq!(
                after.syscalls - before.syscalls,
                1,
                "{kind}: one syscall for four sleepers"
            );
            // Futex sleepers past RELAY_ABOVE: one woken by the sender, the
            // other three by it (the peers' guard is an hour: were the relay
            // not performed, they would time out).
            assert_eq!(
                after.relays - before.relays,
                u64::from(kind.woken_by_futex()),
                "{kind}: relayed"
            );
        }
        for r in rxs {
            let (code, out, err) = r.finish(LIMIT);
            assert_eq!(code, 0, "{kind}: {out}{err}");
        }
    }
}

#[test]
fn sender_attached_before_receiver_wakes_it() {
    let name = unique("before");
    let _ch = ChannelBuilder::new(&name)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let tx = attach(&name, Role::Send).unwrap().sender().unwrap();
    let mut rx = Running::spawn(peer(&[
        "recv",
        &name,
        "--count",
        "1",
        "--blocking",
        "--guard-ms",
        NO_GUARD_MS,
        "--timeout",
        "30",
    ]));
    assert!(rx.line().starts_with("joined"));
    wait_asleep(&_ch, 1);
    tx.send(&[1u8; 16]).unwrap();
    let (code, out, err) = rx.finish(LIMIT);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(tx.stats().syscalls, 1);
}

#[test]
fn receiver_asleep_before_sender_attaches_is_woken() {
    let name = unique("after");
    let ch = ChannelBuilder::new(&name)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let mut rx = Running::spawn(peer(&[
        "recv",
        &name,
        "--count",
        "1",
        "--blocking",
        "--guard-ms",
        NO_GUARD_MS,
        "--timeout",
        "30",
    ]));
    assert!(rx.line().starts_with("joined"));
    wait_asleep(&ch, 1);
    // A sender process that did not exist when the receiver fell asleep.
    let (code, out, err) = run(&["send", &name, "--count", "1", "--blocking"], LIMIT);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("wake_syscalls 1"), "{out}");
    let (code, out, err) = rx.finish(LIMIT);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn recv_timeout_times_out() {
    let name = unique("timeout");
    let ch = ChannelBuilder::new(&name)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let rx = ch.receiver().unwrap();
    let mut buf = [0u8; 64];
    let t0 = Instant::now();
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_millis(50)),
        Err(RecvError::Timeout)
    );
    assert!(t0.elapsed() >= Duration::from_millis(50));
    // A full ring times a blocking send out too.
    let tx = ch.sender().unwrap();
    for _ in 0..16 {
        tx.send(b"x").unwrap();
    }
    assert_eq!(
        tx.send_timeout(b"x", Duration::from_millis(20)),
        Err(SendError::Timeout)
    );
}

#[test]
fn destroy_wakes_a_sleeping_receiver() {
    let name = unique("destroy-wake");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Multicast)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let mut rx = Running::spawn(peer(&[
        "recv",
        &name,
        "--until-closed",
        "--blocking",
        "--guard-ms",
        NO_GUARD_MS,
        "--timeout",
        "30",
    ]));
    assert!(rx.line().starts_with("joined"));
    wait_asleep(&ch, 1);
    ch.destroy();
    let (code, out, err) = rx.finish(LIMIT);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("received 0 "), "{out}");
}

#[test]
fn unicast_receiver_sees_no_senders_when_the_last_sender_leaves() {
    let name = unique("last-sender");
    let ch = ChannelBuilder::new(&name)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let mut rx = ch.receiver().unwrap();
    rx.set_wake_guard(Duration::from_secs(3600));
    let mut buf = [0u8; 64];
    // No sender has ever joined: a receiver just waits (here: times out).
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_millis(10)),
        Err(RecvError::Timeout)
    );
    let waiter = std::thread::spawn(move || {
        let mut got = 0;
        loop {
            match rx.recv_timeout(&mut buf, Duration::from_secs(30)) {
                Ok(_) => got += 1,
                Err(e) => return (got, e, rx),
            }
        }
    });
    // A sender process sends three messages and exits.
    let (code, out, err) = run(&["send", &name, "--count", "3", "--blocking"], LIMIT);
    assert_eq!(code, 0, "{out}{err}");
    let (got, e, rx) = waiter.join().unwrap();
    assert_eq!((got, e), (3, RecvError::NoSenders));
    // Not final: the channel is open, and a later sender is heard.
    let (code, out, err) = run(&["send", &name, "--count", "1", "--blocking"], LIMIT);
    assert_eq!(code, 0, "{out}{err}");
    let mut buf = [0u8; 64];
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_secs(30))
            .map(|m| m.len),
        Ok(16)
    );
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_secs(30)),
        Err(RecvError::NoSenders)
    );
    // Destroyed: final.
    ch.destroy();
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_secs(30)),
        Err(RecvError::Closed)
    );
}

#[test]
fn abandoned_zero_copy_claim_wakes_receivers_blocked_behind_it() {
    // A sleeps holding position 0 (claimed, unpublished); B publishes
    // position 1, which wakes the receiver, who finds 0 unpublished and
    // sleeps again. A's claim is then dropped: its skip record must wake the
    // receiver, or message 1 waits for the receiver's timeout.
    let name = unique("skip-wake");
    let ch = ChannelBuilder::new(&name)
        .capacity(8)
        .max_message(64)
        .create()
        .unwrap();
    let mut rx = ch.receiver().unwrap();
    rx.set_wake_guard(Duration::from_secs(3600));
    let mut a = ch.sender().unwrap();
    let b = ch.sender().unwrap();
    let waiter = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let t0 = Instant::now();
        let r = rx
            .recv_timeout(&mut buf, Duration::from_secs(60))
            .map(|i| buf[..i.len].to_vec());
        (r, t0.elapsed())
    });
    let slot = a.try_claim().unwrap();
    b.send(b"second").unwrap();
    wait_asleep(&ch, 1); // asleep again behind the unpublished position
    drop(slot);
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r, Ok(b"second".to_vec()));
    assert!(
        took < Duration::from_secs(30),
        "woken by the skip record, not the timeout ({took:?})"
    );
}

#[test]
fn a_peer_cannot_steer_msg_ring_wakes_into_other_rings() {
    use shmcast::core::Regions;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering::SeqCst;
    // An io_uring of "the application" that no receiver sleeps in.
    let app = io_uring::IoUring::new(8).unwrap();
    let name = unique("steer");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(8)
        .max_message(64)
        .create()
        .unwrap();
    let tx = ch.sender().unwrap();
    let ring = ch.raw_ring();
    // A peer dresses up a free entry, and then a real receiver's entry, as
    // msg-ring sleepers pointing at the application's ring, and sets their
    // waiter bits.
    let rx = ch.receiver().unwrap();
    let me = rustix::process::getpid().as_raw_nonzero().get() as u64;
    for i in [rx.id().index(), 5] {
        let e = ring.regions().entry(i);
        e.notify_info
            .store(me << 32 | app.as_raw_fd() as u64, SeqCst);
        e.backend.store(BackendKind::MsgRing.code(), SeqCst);
        ring.regions().waiter_word(0).fetch_or(1 << i, SeqCst);
    }
    tx.send(b"x").unwrap();
    let st = tx.stats();
    assert_eq!(
        st.ring_wakes, 0,
        "no MSG_RING into a ring that is not a receiver's: {st:?}"
    );
    let mut app = app;
    assert_eq!(
        app.completion().count(),
        0,
        "the application's ring got nothing"
    );
}

/// The blocking batch receive: a receiver asleep in `recv_batch` is woken by
/// a sender process that did not exist when it fell asleep, and takes the
/// run of messages in batches (at most as many as it has infos for), in
/// order; with the ring empty it times out; after a destroy it is closed.
#[test]
fn recv_batch_sleeps_then_takes_runs_of_messages() {
    let name = unique("recv-batch");
    let ch = ChannelBuilder::new(&name)
        .capacity(64)
        .max_message(32)
        .create()
        .unwrap();
    let mut rx = ch.receiver().unwrap();
    rx.set_spin(shmcast::Spin::Off);
    rx.set_wake_guard(Duration::from_secs(3600));
    // A sender of our own keeps the unicast ring open once the peer's left
    // (else a drained ring without senders reads as closed).
    let _tx = ch.sender().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 32 * 8];
        let mut infos = [shmcast::MessageInfo::default(); 8];
        let mut seqs = Vec::new();
        let mut batches = 0;
        while seqs.len() < 40 {
            let n = rx
                .recv_batch_timeout(&mut buf, &mut infos, Duration::from_secs(20))
                .expect("a batch");
            assert!((1..=8).contains(&n), "batch of {n}");
            let mut off = 0;
            for info in &infos[..n] {
                let m = &buf[off..off + info.len];
                seqs.push(u64::from_le_bytes(m[8..16].try_into().unwrap()));
                off += info.len;
            }
            batches += 1;
        }
        let mut buf = [0u8; 32];
        let mut one = [shmcast::MessageInfo::default(); 1];
        let empty = rx.recv_batch_timeout(&mut buf, &mut one, Duration::from_millis(30));
        (seqs, batches, empty, rx)
    });
    wait_asleep(&ch, 1);
    let (code, out, err) = run(
        &[
            "send", &name, "--count", "40", "--batch", "8", "--size", "32",
        ],
        LIMIT,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (seqs, batches, empty, rx) = reader.join().unwrap();
    assert_eq!(seqs, (0..40).collect::<Vec<u64>>());
    assert!(batches >= 5, "{batches} batches of at most 8");
    assert_eq!(empty, Err(RecvError::Timeout));
    ch.destroy();
    let mut buf = [0u8; 32];
    let mut one = [shmcast::MessageInfo::default(); 1];
    assert_eq!(
        rx.recv_batch_timeout(&mut buf, &mut one, Duration::from_secs(5)),
        Err(RecvError::Closed)
    );
    assert_eq!(rx.recv_batch(&mut buf, &mut []), Ok(0));
}

/// A broadcast wake relay taken by someone who never performs it costs the
/// other sleepers at most their wake guard, not the message. The thief is
/// a thread of ours spinning on the relay word, started just before each
/// send, that swaps it to 0 as soon as it is set, as a hostile peer could:
/// the receiver the sender woke then finds no relay, and the sender's watch
/// sees the relay taken. If the woken receiver still takes the relay first
/// (the thief was not running at that instant), the round is relayed as
/// usual and the test tries again.
#[test]
fn a_hijacked_broadcast_relay_delays_sleepers_by_their_guard_only() {
    use shmcast::core::SubscriberId;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique("relay-thief");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let ring = ch.raw_ring();
    let mut rxs: Vec<_> = (0..4)
        .map(|_| {
            Running::spawn(peer(&[
                "recv",
                &name,
                "--until-closed",
                "--blocking",
                "--backend",
                "futex",
                "--guard-ms",
                "2000",
                "--timeout",
                "60",
            ]))
        })
        .collect();
    let ids: Vec<SubscriberId> = rxs
        .iter_mut()
        .map(|r| {
            let line = r.line();
            let id = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            SubscriberId(id)
        })
        .collect();
    let tx = ch.sender().unwrap();
    wait_asleep(&ch, 4);
    // A process that probed io_uring gets one spurious wake-up some tens
    // of ms later (the probe ring's teardown interrupts the task with task
    // work), which would find the message and hide a missing guard: let
    // that pass first.
    std::thread::sleep(Duration::from_millis(500));
    let mut hijacked = None;
    for round in 1..=10u64 {
        wait_asleep(&ch, 4);
        wait_relaying(&ch, 4);
        let ready = AtomicBool::new(false);
        let (stolen, took) = std::thread::scope(|s| {
            let thief = s.spawn(|| {
                ready.store(true, SeqCst);
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(1) {
                    let m = ring.take_relay();
                    if m != 0 {
                        return m;
                    }
                    std::hint::spin_loop();
                }
                0
            });
            while !ready.load(SeqCst) {
                std::thread::yield_now();
            }
            let before = tx.stats();
            let sent = Instant::now();
            tx.send(&[round as u8; 16]).unwrap();
            let st = tx.stats();
            assert_eq!(
                (
                    st.woken - before.woken,
                    st.relays - before.relays,
                    st.syscalls - before.syscalls
                ),
                (4, 1, 1),
                "{st:?}"
            );
            let stolen = thief.join().unwrap();
            // Every receiver gets this round's message, relayed or not.
            let deadline = Instant::now() + Duration::from_secs(30);
            while ids
                .iter()
                .any(|&id| ring.counters(id).map_or(0, |c| c.received) < round)
            {
                assert!(Instant::now() < deadline, "round {round} never delivered");
                std::thread::sleep(Duration::from_millis(2));
            }
            (stolen, sent.elapsed())
        });
        if stolen != 0 {
            hijacked = Some(took);
            break;
        }
    }
    let took = hijacked.expect("the thief never got to the relay before a receiver");
    // Without the guard they would sleep to their 60 s timeout.
    assert!(
        took < Duration::from_secs(15),
        "woken by their 2 s guard, not their timeout ({took:?})"
    );
    ch.destroy();
    for r in rxs {
        let (code, out, err) = r.finish(LIMIT);
        assert_eq!(code, 0, "{out}{err}");
    }
}
