//! Subscribers whose process was killed: a sender finds them when they
//! hold the ring full, a joiner when they hold what it needs (the unicast
//! receiver's place, the last table entry), and they are evicted; live ones,
//! even stopped, never are. Real processes, SIGKILL / SIGSTOP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmcast::{attach, ChannelBuilder, Mode, OpenError, Role, SendError, SubscriberId};

/// A channel of 8 slots of up to 64 bytes.
fn channel(name: &str, mode: Mode) -> shmcast::Channel {
    builder(name, mode).create().unwrap()
}

/// The builder of [`channel`], for tests that change more.
fn builder(name: &str, mode: Mode) -> ChannelBuilder {
    ChannelBuilder::new(name)
        .mode(mode)
        .capacity(8)
        .max_message(64)
}

/// A `shmcast-peer recv` on `name` that has joined; returns it and its id.
fn receiver_process(name: &str) -> (Running, SubscriberId) {
    receiver_process_as(name, None)
}

/// [`receiver_process`], run as `uid` (and that gid) if given.
fn receiver_process_as(name: &str, uid: Option<u32>) -> (Running, SubscriberId) {
    let mut cmd = peer(&[
        "recv",
        name,
        "--blocking",
        "--timeout",
        "60",
        "--guard-ms",
        "50",
    ]);
    if let Some(uid) = uid {
        run_as(&mut cmd, uid, uid, vec![]);
    }
    let mut r = Running::spawn(cmd);
    let line = r.line();
    let id = line
        .strip_prefix("joined ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (r, SubscriberId(id))
}

/// Wait (bounded) until entry `id` has received `n` messages.
fn wait_received(view: shmcast::RingView<'_>, id: SubscriberId, n: u64) {
    let deadline = Instant::now() + LIMIT;
    while view.counters(id).map_or(0, |c| c.received) < n {
        assert!(Instant::now() < deadline, "receiver {id:?} stuck below {n}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn kill(mut r: Running) {
    r.child.kill().unwrap();
    r.child.wait().unwrap();
}

/// The joiner finds the dead receiver itself (no sender probed first).
#[test]
fn a_receiver_joining_a_unicast_ring_replaces_a_dead_one() {
    let name = unique("dead-join");
    let ch = channel(&name, Mode::Unicast);
    let tx = ch.sender().unwrap();
    let (child, id) = receiver_process(&name);
    tx.send(b"read by the dead one").unwrap();
    tx.send(b"left for the next").unwrap();
    wait_received(ch.ring(), id, 1);
    // Stopped, it is alive: the place stays taken.
    let pid = rustix::process::Pid::from_child(&child.child);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    // (It may have read the second message too before it stopped.)
    let read = ch.ring().counters(id).unwrap().received;
    assert!(matches!(
        attach(&name, Role::Recv).unwrap().receiver(),
        Err(OpenError::Join(shmcast::JoinError::ReceiverTaken))
    ));
    assert!(ch.ring().is_receiver(id));
    kill(child);
    let rx = attach(&name, Role::Recv).unwrap().receiver().unwrap();
    let mut buf = [0u8; 64];
    if read < 2 {
        let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
        assert_eq!(&buf[..m.len], b"left for the next");
    }
    tx.send(b"after").unwrap();
    let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!(&buf[..m.len], b"after");
}

/// Handles of one process come and go on the same entries (one leaving,
/// the next joining in its place) without any of them losing its lock: a
/// live receiver is never evicted, so a second receiver of the unicast
/// ring is always refused. (Locks of one open file description merge; a
/// release once took the lock of the handle that had just taken the
/// entry, and the live receiver was evicted within a few thousand rounds.)
#[test]
fn handles_of_one_process_never_evict_each_other() {
    let name = unique("churn");
    let ch = std::sync::Arc::new(channel(&name, Mode::Unicast));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (ch, stop) = (ch.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop(ch.sender().unwrap());
                n += 1;
            }
            n
        })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        let rx = ch.receiver().unwrap();
        match ch.receiver() {
            Err(OpenError::Join(shmcast::JoinError::ReceiverTaken)) => {}
            Err(e) => panic!("round {rounds}: {e}"),
            Ok(_) => panic!(
                "round {rounds}: the live receiver {:?} was evicted",
                rx.id()
            ),
        }
        rounds += 1;
        drop(rx);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.join().unwrap();
    assert!(
        rounds > 1000 && churned > 1000,
        "{rounds} rounds, {churned} senders"
    );
}

#[test]
fn a_killed_unicast_receiver_gives_its_place_to_the_next() {
    let name = unique("dead-uni");
    let ch = channel(&name, Mode::Unicast);
    let tx = ch.sender().unwrap();
    let (child, id) = receiver_process(&name);
    for i in 0u64..2 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    wait_received(ch.ring(), id, 2);
    kill(child);
    // The ring fills: the messages wait for the next receiver.
    let mut sent = 2u64;
    while tx.try_send(&sent.to_le_bytes()).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 10);
    // The dead receiver's place is taken over (it was ReceiverTaken for
    // good), and the new receiver reads on from where it stopped.
    let rx = attach(&name, Role::Recv).unwrap().receiver().unwrap();
    let mut buf = [0u8; 64];
    for want in 2u64..10 {
        let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), want);
        assert_eq!(m.len, 8);
    }
}

#[test]
fn a_killed_broadcast_receiver_stops_holding_the_ring() {
    let name = unique("dead-bcast");
    let ch = channel(&name, Mode::Broadcast);
    let tx = ch.sender().unwrap();
    let rx = ch.receiver().unwrap();
    let (child, id) = receiver_process(&name);
    let mut buf = [0u8; 64];
    tx.send(b"both").unwrap();
    wait_received(ch.ring(), id, 1);
    kill(child);
    // It held position 1 for good; now the sender moves past it.
    for i in 0u64..100 {
        tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
        let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
        if i == 0 {
            assert_eq!(&buf[..m.len], b"both");
            rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
        }
        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i);
    }
    assert!(
        !ch.ring().is_receiver(id),
        "the dead receiver's entry is free"
    );
}

#[test]
fn a_stopped_receiver_is_alive_and_keeps_its_messages() {
    let name = unique("stopped");
    let ch = channel(&name, Mode::Broadcast);
    let tx = ch.sender().unwrap();
    let (child, id) = receiver_process(&name);
    tx.send(b"first").unwrap();
    wait_received(ch.ring(), id, 1);
    let pid = rustix::process::Pid::from_child(&child.child);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    for i in 0u64..8 {
        tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(5))
            .unwrap();
    }
    // Full, and it stays full: a stopped process is not a dead one.
    assert_eq!(
        tx.send_timeout(b"more", Duration::from_millis(300)),
        Err(SendError::Timeout)
    );
    assert!(ch.ring().is_receiver(id));
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    // Awake again, it reads on, and the send goes through.
    tx.send_timeout(b"more", Duration::from_secs(10)).unwrap();
    wait_received(ch.ring(), id, 10);
    kill(child);
}

#[test]
fn dead_subscribers_free_a_full_table() {
    let name = unique("dead-table");
    let ch = builder(&name, Mode::Broadcast)
        .max_subscribers(2)
        .create()
        .unwrap();
    let tx = ch.sender().unwrap();
    let (child, _) = receiver_process(&name);
    // Both entries taken: the table is full.
    assert!(matches!(
        attach(&name, Role::Recv).unwrap().receiver(),
        Err(OpenError::Join(shmcast::JoinError::TableFull { .. }))
    ));
    kill(child);
    let rx = attach(&name, Role::Recv).unwrap().receiver().unwrap();
    tx.send(b"to the new one").unwrap();
    let mut buf = [0u8; 64];
    let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!(&buf[..m.len], b"to the new one");
}

/// The receiver of another user reopens the control memfd for its lock
/// like anyone (the inode is readable by all; the channel's own mode bits
/// decided who got the fd), so its death is found the same way.
#[test]
fn a_killed_receiver_of_another_user_is_found_too() {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: needs root to run a peer as another user");
        return;
    }
    let name = unique("dead-other");
    let ch = builder(&name, Mode::Broadcast)
        .permissions(0o644)
        .create()
        .unwrap();
    let tx = ch.sender().unwrap();
    let (child, id) = receiver_process_as(&name, Some(65534));
    tx.send(b"one").unwrap();
    wait_received(ch.ring(), id, 1);
    kill(child);
    for i in 0u64..20 {
        tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
    }
    assert!(!ch.ring().is_receiver(id));
}

/// Every way of sending finds a dead receiver holding the ring: batches,
/// and zero-copy claims (which look after a claim found the ring full).
#[test]
fn batch_and_zero_copy_sends_find_dead_receivers_too() {
    for zero_copy in [false, true] {
        let name = unique("dead-ways");
        let ch = channel(&name, Mode::Broadcast);
        let mut tx = ch.sender().unwrap();
        let (child, id) = receiver_process(&name);
        tx.send(b"x").unwrap();
        wait_received(ch.ring(), id, 1);
        kill(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut sent = 0;
        while sent < 40 {
            assert!(
                Instant::now() < deadline,
                "zero_copy {zero_copy}: stuck at {sent}"
            );
            let ok = if zero_copy {
                match tx.try_claim() {
                    Ok(mut slot) => {
                        slot.append(b"z").unwrap();
                        slot.commit();
                        true
                    }
                    Err(_) => false,
                }
            } else {
                tx.try_send_batch(&[b"a", b"b"]).is_ok()
            };
            if ok {
                sent += 1;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert!(!ch.ring().is_receiver(id), "zero_copy {zero_copy}");
    }
}

/// A receiver that holds no liveness lock (joined through the raw core
/// ring, as an embedder or an older version would) is never judged dead:
/// the ring waits for it.
#[test]
fn a_receiver_without_a_lock_is_never_evicted() {
    let name = unique("no-token");
    let ch = channel(&name, Mode::Broadcast);
    let tx = ch.sender().unwrap();
    let att = attach(&name, Role::Recv).unwrap();
    let bare = att.raw_ring().receiver().unwrap();
    for i in 0u64..8 {
        tx.try_send(&i.to_le_bytes()).unwrap();
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(50) {
        assert_eq!(tx.try_send(b"more"), Err(shmcast::TrySendError::Full));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(ch.ring().is_receiver(bare.id()));
    let mut buf = [0u8; 8];
    bare.try_recv(&mut buf).unwrap();
    assert_eq!(u64::from_le_bytes(buf), 0);
}

/// A `shmcast-peer send --hang-in-claim` on `name`: it has claimed a
/// position (returned) and will never publish it.
fn claiming_sender(name: &str) -> (Running, u64) {
    let mut r = Running::spawn(peer(&["send", name, "--hang-in-claim"]));
    let line = r.line();
    let pos = line
        .strip_prefix("claimed ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (r, pos)
}

/// A channel of `mode` with a receiver, a sender, `n` senders in other
/// processes that each claimed a position and hang there (with the
/// positions), and `after` sent behind those positions.
struct HungClaims {
    ch: shmcast::Channel,
    rx: shmcast::Receiver,
    tx: shmcast::Sender,
    claimers: Vec<(Running, u64)>,
}

fn hung_claims(tag: &str, mode: Mode, n: usize) -> HungClaims {
    let name = unique(tag);
    let ch = channel(&name, mode);
    let rx = ch.receiver().unwrap();
    let tx = ch.sender().unwrap();
    let claimers = (0..n).map(|_| claiming_sender(&name)).collect();
    tx.send(b"after").unwrap();
    HungClaims {
        ch,
        rx,
        tx,
        claimers,
    }
}

/// [`hung_claims`] with one claimer.
fn hung_claim(tag: &str, mode: Mode) -> (HungClaims, Running) {
    let mut h = hung_claims(tag, mode, 1);
    let (child, _) = h.claimers.pop().unwrap();
    (h, child)
}

/// A sender killed between claiming a position and publishing it held
/// every receiver at that position for good; receivers now step over it
/// once its process is gone, and get what was sent after it.
#[test]
fn a_sender_killed_mid_send_is_stepped_over() {
    for mode in [Mode::Unicast, Mode::Broadcast, Mode::Multicast] {
        let HungClaims {
            rx,
            tx,
            mut claimers,
            ..
        } = hung_claims("dead-claim", mode, 1);
        let (child, pos) = claimers.pop().unwrap();
        assert_eq!(pos, 0);
        kill(child);
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        let m = rx
            .recv_timeout(&mut buf, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!((&buf[..m.len], m.id), (&b"after"[..], 1), "{mode}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{mode}: {:?}",
            t0.elapsed()
        );
        // And the ring goes on round past the position.
        for i in 0u64..20 {
            tx.send_timeout(&i.to_le_bytes(), Duration::from_secs(5))
                .unwrap();
            let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
            assert_eq!(
                u64::from_le_bytes(buf[..8].try_into().unwrap()),
                i,
                "{mode}"
            );
            assert_eq!(m.id, i + 2);
        }
    }
}

/// A sender stopped mid-send is alive: receivers wait for it, and get its
/// message first once it goes on (here: until it is killed, then the rest).
#[test]
fn a_sender_stopped_mid_send_is_waited_for() {
    let (HungClaims { rx, tx: _tx, .. }, child) = hung_claim("stopped-claim", Mode::Unicast);
    let mut buf = [0u8; 64];
    // Well past STUCK_AFTER: still waiting, nothing stepped over.
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_millis(300)),
        Err(shmcast::RecvError::Timeout)
    );
    kill(child);
    let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!(&buf[..m.len], b"after");
}

/// A receiver that only polls steps over a dead sender's position itself,
/// and only once the sender is gone.
#[test]
fn a_polling_receiver_steps_over_a_dead_sender_when_asked() {
    let (HungClaims { rx, tx: _tx, .. }, child) = hung_claim("poll-claim", Mode::Broadcast);
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv(&mut buf), Err(shmcast::TryRecvError::Empty));
    assert!(!rx.step_over_dead_sender(), "alive: waited for");
    kill(child);
    assert!(rx.step_over_dead_sender());
    let m = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..m.len], b"after");
    assert!(!rx.step_over_dead_sender(), "nothing claimed any more");
}

/// The three polling receives step over a dead sender's position by
/// themselves once it has held them for a while, and never while the
/// sender is alive: a `try_recv` loop once waited there for good unless it
/// called `step_over_dead_sender`. Every mode (zero-copy: not multicast).
#[test]
fn polling_receives_step_over_a_dead_sender_by_themselves() {
    for mode in [Mode::Unicast, Mode::Broadcast, Mode::Multicast] {
        for how in ["try_recv", "try_recv_batch", "try_read"] {
            if how == "try_read" && mode == Mode::Multicast {
                continue;
            }
            let (
                HungClaims {
                    mut rx, tx: _tx, ..
                },
                child,
            ) = hung_claim("poll-self", mode);
            // Alive (well past STUCK_AFTER): waited for.
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(100) {
                assert_eq!(
                    poll(&mut rx, how),
                    Ok(None),
                    "{mode} {how}: stepped over a live sender"
                );
            }
            kill(child);
            let t0 = Instant::now();
            let got = loop {
                if let Some(m) = poll(&mut rx, how).unwrap() {
                    break m;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "{mode} {how}: still held"
                );
            };
            assert_eq!(got, b"after", "{mode} {how}");
        }
    }
}

/// One polling receive by `how` (`try_recv`, `try_recv_batch` or
/// `try_read`): the bytes received (`None`: empty), or the error.
fn poll(rx: &mut shmcast::Receiver, how: &str) -> Result<Option<Vec<u8>>, shmcast::TryRecvError> {
    let mut buf = [0u8; 64];
    let mut infos = [shmcast::MessageInfo::default(); 4];
    let got = match how {
        "try_recv" => rx.try_recv(&mut buf).map(|m| buf[..m.len].to_vec()),
        "try_recv_batch" => rx
            .try_recv_batch(&mut buf, &mut infos)
            .map(|n| buf[..infos[..n].iter().map(|i| i.len).sum()].to_vec()),
        _ => rx.try_read().map(|slot| {
            let mut m = vec![0; slot.len()];
            slot.read_at(0, &mut m);
            m
        }),
    };
    match got {
        Ok(m) => Ok(Some(m)),
        Err(shmcast::TryRecvError::Empty) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A receive with a timeout shorter than the wait before a step-over, in a
/// loop, steps over too: the wait counts across calls (each call started
/// it afresh, so such a loop waited for good).
#[test]
fn short_receive_timeouts_add_up_to_a_step_over() {
    let (HungClaims { rx, tx: _tx, .. }, child) = hung_claim("short-timeouts", Mode::Unicast);
    kill(child);
    let mut buf = [0u8; 64];
    let t0 = Instant::now();
    let m = loop {
        match rx.recv_timeout(&mut buf, Duration::from_millis(2)) {
            Ok(m) => break m,
            Err(shmcast::RecvError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "still held");
    };
    assert_eq!(&buf[..m.len], b"after");
}

/// A unicast receiver whose only sender died gets `NoSenders`, as when the
/// sender leaves (a pipe's reader gets end of file when the writer dies):
/// it used to wait for good. Both a sender that died idle and one that
/// died mid-send (whose position is stepped over first).
#[test]
fn a_unicast_receiver_whose_senders_died_gets_no_senders() {
    for hang in ["--stay", "--hang-in-claim"] {
        let name = unique("senders-died");
        let ch = channel(&name, Mode::Unicast);
        let rx = ch.receiver().unwrap();
        let mut child = Running::spawn(peer(&["send", &name, "--count", "1", hang]));
        child.line();
        let mut buf = [0u8; 64];
        if hang == "--stay" {
            assert!(rx.recv_timeout(&mut buf, Duration::from_secs(5)).is_ok());
        }
        // Alive (well past the look's period): waited for.
        assert_eq!(
            rx.recv_timeout(&mut buf, Duration::from_millis(300)),
            Err(shmcast::RecvError::Timeout),
            "{hang}"
        );
        kill(child);
        assert_eq!(
            rx.recv_timeout(&mut buf, Duration::from_secs(5)),
            Err(shmcast::RecvError::NoSenders),
            "{hang}"
        );
        // Not final: a new sender is heard.
        let tx = ch.sender().unwrap();
        tx.send(b"again").unwrap();
        let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
        assert_eq!(&buf[..m.len], b"again", "{hang}");
    }
}

/// What was sent behind dead senders' positions is drained after a close
/// too, by blocking and polling receives alike (they once read `Closed` at
/// the first such position, and a blocking receive with its default spin
/// at the second).
#[test]
fn a_closed_ring_drains_past_dead_senders() {
    for how in ["recv", "try_recv", "try_recv_batch", "try_read"] {
        let HungClaims {
            ch,
            mut rx,
            tx: _tx,
            claimers,
        } = hung_claims("closed-claim", Mode::Broadcast, 2);
        for (child, _) in claimers {
            kill(child);
        }
        ch.destroy();
        if how == "recv" {
            let mut buf = [0u8; 64];
            let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
            assert_eq!(&buf[..m.len], b"after");
            assert_eq!(
                rx.recv_timeout(&mut buf, Duration::from_secs(5)),
                Err(shmcast::RecvError::Closed)
            );
        } else {
            // Closed ring: no 10 ms wait, the first calls drain.
            assert_eq!(poll(&mut rx, how), Ok(Some(b"after".to_vec())), "{how}");
            assert_eq!(
                poll(&mut rx, how),
                Err(shmcast::TryRecvError::Closed),
                "{how}"
            );
        }
    }
}

/// Senders of this process that claimed a position each and left without
/// publishing it (their entries free, their records kept): positions a
/// receiver steps over without any process dying.
fn abandoned_claims(ch: &shmcast::Channel, n: usize) {
    let mut senders: Vec<_> = (0..n).map(|_| ch.raw_ring().producer().unwrap()).collect();
    for s in &mut senders {
        std::mem::forget(s.try_claim().unwrap());
    }
}

/// A polling receive steps over at most 16 positions per call, then says
/// `Empty` (not `Closed`, which is final) and goes on at the next call.
#[test]
fn polling_receives_step_over_a_bounded_run_per_call() {
    for how in ["try_recv", "try_recv_batch", "try_read"] {
        let name = unique("step-budget");
        let ch = builder(&name, Mode::Broadcast)
            .capacity(64)
            .max_subscribers(40)
            .create()
            .unwrap();
        let mut rx = ch.receiver().unwrap();
        let tx = ch.sender().unwrap();
        abandoned_claims(&ch, 20);
        tx.send(b"after").unwrap();
        ch.raw_ring().close();
        assert_eq!(poll(&mut rx, how), Ok(None), "{how}: 16 of 20 stepped over");
        assert_eq!(poll(&mut rx, how), Ok(Some(b"after".to_vec())), "{how}");
        assert_eq!(
            poll(&mut rx, how),
            Err(shmcast::TryRecvError::Closed),
            "{how}"
        );
    }
}

/// A close that comes while `try_read` looks at a dead sender's position
/// does not end the drain: it once returned `Closed` there (about two
/// times in three in this race), losing what was sent behind it.
#[test]
fn a_close_racing_try_read_loses_nothing() {
    for round in 0..100 {
        let name = unique("close-race");
        let ch = channel(&name, Mode::Broadcast);
        let mut rx = ch.receiver().unwrap();
        let tx = ch.sender().unwrap();
        abandoned_claims(&ch, 1);
        tx.send(b"after").unwrap();
        let poller = std::thread::spawn(move || loop {
            match poll(&mut rx, "try_read") {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        });
        ch.raw_ring().close();
        assert_eq!(
            poller.join().unwrap(),
            Ok(b"after".to_vec()),
            "round {round}"
        );
    }
}

/// A dead sender whose claim still holds receivers up keeps its table
/// entry (a join would clear the record they need to step over it); once
/// they have, a join that finds the table full evicts it.
#[test]
fn a_dead_sender_with_a_pending_claim_keeps_its_entry_until_stepped_over() {
    let name = unique("table-claim");
    let ch = builder(&name, Mode::Broadcast)
        .max_subscribers(2)
        .create()
        .unwrap();
    let rx = ch.receiver().unwrap();
    let (child, _) = claiming_sender(&name);
    kill(child);
    assert!(matches!(
        attach(&name, Role::Send).unwrap().sender(),
        Err(OpenError::Join(shmcast::JoinError::TableFull { .. }))
    ));
    let mut buf = [0u8; 64];
    // Nothing behind it, but the receive steps over the dead position.
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_millis(200)),
        Err(shmcast::RecvError::Timeout)
    );
    let tx = attach(&name, Role::Send).unwrap().sender().unwrap();
    tx.send(b"after").unwrap();
    let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!((&buf[..m.len], m.id), (&b"after"[..], 1));
}

/// A unicast receiver that looks for dead senders leaves one whose claim
/// holds it in the table as well: evicted, its entry would go to the next
/// sender to join, whose join clears the record, and the position would
/// never be stepped over.
#[test]
fn a_unicast_receiver_keeps_a_dead_sender_whose_claim_holds_it() {
    let name = unique("keep-claim");
    let ch = builder(&name, Mode::Unicast)
        .max_subscribers(3)
        .create()
        .unwrap();
    let rx = ch.receiver().unwrap();
    let tx = ch.sender().unwrap();
    let (child, _) = claiming_sender(&name);
    tx.send(b"after").unwrap();
    kill(child);
    let mut buf = [0u8; 64];
    // The first wait looks for dead senders at once.
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_millis(1)),
        Err(shmcast::RecvError::Timeout)
    );
    // The table is full unless the dead sender was evicted.
    let late = ch.sender();
    let m = rx.recv_timeout(&mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!(&buf[..m.len], b"after");
    assert!(late.is_err(), "the dead sender's entry was given away");
}

/// A sender that died between writing its claim record and its claim CAS
/// left a record past the tail, which holds nobody: it counts as gone (it
/// used to count as pending for good, and `NoSenders` never came).
#[test]
fn a_sender_that_died_before_its_claim_counts_as_gone() {
    use shmcast::core::layout::{ENTRY_ACTIVE, ENTRY_STATUS_MASK, ROLE_SEND};
    use shmcast::core::Regions;
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};
    let name = unique("died-before-claim");
    let ch = channel(&name, Mode::Unicast);
    let rx = ch.receiver().unwrap();
    let mut child = Running::spawn(peer(&["send", &name, "--count", "1", "--stay"]));
    child.line();
    let mut buf = [0u8; 64];
    assert!(rx.recv_timeout(&mut buf, Duration::from_secs(5)).is_ok());
    // What the sender would have written just before its CAS.
    let ring = ch.raw_ring();
    let entry = (0..ring.geometry().max_subscribers())
        .map(|i| ring.regions().entry(i))
        .find(|e| {
            let s = e.state.load(SeqCst);
            s & ENTRY_STATUS_MASK == ENTRY_ACTIVE && s & ROLE_SEND != 0
        })
        .expect("the child's entry");
    entry.claim_start.store(ring.tail(), Relaxed);
    entry.claim_count.store(1, SeqCst);
    kill(child);
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_secs(5)),
        Err(shmcast::RecvError::NoSenders)
    );
}
