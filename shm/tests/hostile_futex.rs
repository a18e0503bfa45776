//! A peer that moves our futex waiters away: `FUTEX_CMP_REQUEUE` from a
//! receiver's wake word (which every attached process maps) onto a futex
//! word of its own, over and over. No producer's wake and no guard nudge
//! reaches a wait moved there, so a receiver asleep without a timeout must
//! end its sleep by itself: within a few of its guards, for every futex
//! based backend (plain and io_uring), unicast and broadcast.
//!
//! The hostile peer is this test binary run again as a separate process
//! (the ignored test below), attached to the channel by name.

mod common;

use std::io::BufReader;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{this_test_as, unique, wait_for_line};
use shmcast::{attach, BackendKind, ChannelBuilder, Mode, Role, SubscriberId};
use shmcast_uring_notify::probe;

const PEER_ENV: &str = "SHMCAST_TEST_REQUEUE_PEER";

#[test]
fn a_receiver_whose_futex_wait_is_requeued_away_still_gets_its_message() {
    for kind in [
        BackendKind::Futex,
        BackendKind::UringFutex,
        BackendKind::MsgRing,
    ] {
        if let Err(why) = probe().check(kind, false) {
            eprintln!("skip {kind}: {why}");
            continue;
        }
        for mode in [Mode::Unicast, Mode::Broadcast] {
            let took = one(kind, mode);
            assert!(
                took < Duration::from_secs(3),
                "{kind} {mode:?}: the message took {took:?} (the guard is 20 ms)"
            );
        }
    }
}

/// Receive one message sent while the hostile peer keeps requeueing our
/// wait; returns how long after the send it arrived (panics after 20 s).
fn one(kind: BackendKind, mode: Mode) -> Duration {
    let name = unique("requeue");
    let ch = ChannelBuilder::new(&name)
        .mode(mode)
        .capacity(8)
        .max_message(64)
        .create()
        .unwrap();
    let mut rx = ch.receiver_with(Some(kind)).unwrap();
    rx.set_wake_guard(Duration::from_millis(20));
    let target = rx.id();

    let mut peer = this_test_as(
        "hostile_requeue_peer",
        (PEER_ENV, &format!("{name} {}", target.0)),
    )
    .spawn()
    .unwrap();
    // Kept open to the end: the peer writes to it as it exits.
    let mut out = BufReader::new(peer.stdout.take().unwrap());
    wait_for_line(&mut out, "requeueing");

    let (done, got) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let r = rx.recv(&mut buf).map(|info| info.len);
        let _ = done.send(Instant::now());
        r
    });
    // Let the receiver fall asleep and the peer move its wait.
    std::thread::sleep(Duration::from_millis(200));
    let tx = ch.sender().unwrap();
    let sent = Instant::now();
    tx.try_send(b"through").unwrap();
    let arrived = match got.recv_timeout(Duration::from_secs(20)) {
        Ok(at) => at,
        Err(_) => {
            let _ = peer.kill();
            panic!("{kind} {mode:?}: recv still asleep 20 s after the send");
        }
    };
    assert_eq!(waiter.join().unwrap(), Ok(7));
    drop(peer.stdin.take());
    let status = peer.wait().unwrap();
    assert!(status.success(), "hostile peer: {status}");
    arrived.saturating_duration_since(sent)
}

/// The hostile peer (run by the test above as a process of its own).
#[test]
#[ignore = "the hostile peer process of the test above"]
fn hostile_requeue_peer() {
    let Ok(spec) = std::env::var(PEER_ENV) else {
        return;
    };
    let (name, target) = spec.split_once(' ').unwrap();
    let target = SubscriberId(target.parse().unwrap());
    let at = attach(name, Role::Send).unwrap();
    let ring = at.raw_ring();
    let word = if ring.mode() == Mode::Broadcast {
        ring.broadcast_wake_word()
    } else {
        ring.wake_word(target).unwrap()
    };
    // Our own futex word, where the receiver's waits end up.
    let ours = Box::new(AtomicU32::new(0));
    // Until the test closes our stdin.
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
        let _ = stop.send(());
    });
    println!("requeueing");
    let mut moved = 0usize;
    while stopped.try_recv() == Err(mpsc::TryRecvError::Empty) {
        let now = word.load(Ordering::Relaxed);
        if let Ok(n) = rustix::thread::futex::cmp_requeue(
            word,
            rustix::thread::futex::Flags::empty(),
            0,
            i32::MAX as u32,
            &ours,
            now,
        ) {
            moved += n;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    // Let go of whatever we hold, so that nothing stays asleep on our word.
    let _ = rustix::thread::futex::wake(
        &ours,
        rustix::thread::futex::Flags::empty(),
        i32::MAX as u32,
    );
    eprintln!("hostile peer: moved {moved} waits");
    assert!(moved > 0, "the attack never caught a waiter");
}
