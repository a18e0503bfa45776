//! Single-thread behaviour of every mode.

use shmcast_core::{Config, HeapRing, Mode, TryRecvError, TrySendError};

fn ring(mode: Mode, cap: u64) -> HeapRing {
    HeapRing::new(
        &Config::new(mode)
            .capacity(cap)
            .max_message(64)
            .max_subscribers(8),
    )
    .unwrap()
}

#[test]
fn smoke_unicast() {
    let r = ring(Mode::Unicast, 4);
    let tx = r.producer().unwrap();
    let rx = r.receiver().unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    for lap in 0..10u8 {
        for i in 0..4u8 {
            tx.try_send(&[lap, i]).unwrap();
        }
        assert_eq!(tx.try_send(b"x"), Err(TrySendError::Full));
        for i in 0..4u8 {
            let info = rx.try_recv(&mut buf).unwrap();
            assert_eq!(&buf[..info.len], &[lap, i]);
            assert_eq!(info.sender, tx.id());
        }
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    }
}

#[test]
fn smoke_broadcast() {
    let r = ring(Mode::Broadcast, 4);
    let tx = r.producer().unwrap();
    let a = r.receiver().unwrap();
    let b = r.receiver().unwrap();
    let mut buf = [0u8; 64];
    for i in 0..100u32 {
        tx.try_send(&i.to_le_bytes()).unwrap();
        for rx in [&a, &b] {
            let info = rx.try_recv(&mut buf).unwrap();
            assert_eq!(&buf[..info.len], &i.to_le_bytes());
        }
    }
}

#[test]
fn smoke_multicast() {
    let r = ring(Mode::Multicast, 4);
    let tx = r.producer().unwrap();
    let a = r.receiver().unwrap();
    let b = r.receiver().unwrap();
    let mut buf = [0u8; 64];
    tx.try_send(b"one").unwrap();
    tx.try_send(b"two").unwrap();
    let i1 = a.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..i1.len], b"one");
    let i2 = b.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..i2.len], b"two");
    assert_eq!(a.try_recv(&mut buf), Err(TryRecvError::Empty));
    assert_eq!(b.try_recv(&mut buf), Err(TryRecvError::Empty));
}

/// A broadcast producer that finds the ring full remembers which receiver
/// held the head back and skips the scan while that one has not moved; it
/// must notice at once when it reads, when another receiver becomes the
/// laggard, and when it leaves.
#[test]
fn broadcast_full_ring_follows_the_laggard() {
    let ring = ring(Mode::Broadcast, 4);
    let tx = ring.producer().unwrap();
    let fast = ring.receiver().unwrap();
    let slow = ring.receiver().unwrap();
    let mut buf = [0u8; 8];
    let mut next = 0u8;
    let mut send = |want_full: bool| {
        let r = tx.try_send(&[next]);
        if want_full {
            assert_eq!(r, Err(TrySendError::Full), "message {next}");
        } else {
            r.unwrap_or_else(|e| panic!("message {next}: {e}"));
            next += 1;
        }
    };
    for _ in 0..4 {
        send(false); // 0..=3
    }
    while fast.try_recv(&mut buf).is_ok() {}
    // Full: `slow` holds the head (the scan records it), and again.
    send(true);
    send(true);
    // The laggard reads one: room for exactly one more.
    assert_eq!(slow.try_recv(&mut buf).unwrap().len, 1);
    send(false); // 4
    send(true);
    // `slow` catches up; `fast` (at 4) becomes the laggard once the ring
    // is full again.
    while slow.try_recv(&mut buf).is_ok() {}
    for _ in 0..3 {
        send(false); // 5..=7
    }
    send(true);
    send(true);
    assert_eq!(fast.try_recv(&mut buf).unwrap().len, 1);
    send(false); // 8
    send(true);
    // The laggard leaving frees its slots at once.
    drop(fast);
    for _ in 0..4 {
        assert!(slow.try_recv(&mut buf).is_ok());
    }
    for _ in 0..4 {
        send(false);
    }
    send(true);
    drop(slow);
    // Nobody left: never full.
    for _ in 0..10 {
        send(false);
    }
}

/// With no receiver attached: unicast and multicast keep messages for the
/// next receiver and report `Full` when the ring is; broadcast never fills
/// and a receiver that joins later starts at the tail (README, "no
/// receiver").
#[test]
fn no_receiver_attached() {
    use shmcast_core::{Config, HeapRing, Mode, TryRecvError, TrySendError};
    for mode in [Mode::Unicast, Mode::Multicast, Mode::Broadcast] {
        let r = HeapRing::new(&Config::new(mode).capacity(4).max_message(8)).unwrap();
        let tx = r.producer().unwrap();
        let mut sent = 0u64;
        while sent < 10 && tx.try_send(&sent.to_le_bytes()).is_ok() {
            sent += 1;
        }
        let rx = r.receiver().unwrap();
        let mut buf = [0u8; 8];
        if mode == Mode::Broadcast {
            assert_eq!(sent, 10, "{mode:?}: never full without receivers");
            assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        } else {
            assert_eq!(sent, 4, "{mode:?}: full at capacity");
            assert_eq!(tx.try_send(b"more"), Err(TrySendError::Full));
            for want in 0u64..4 {
                rx.try_recv(&mut buf).unwrap();
                assert_eq!(u64::from_le_bytes(buf), want, "{mode:?}");
            }
        }
    }
}

/// A receiver whose entry was evicted while it still runs (a false "dead",
/// or a peer's doing) stops there: it does not move the head its successor
/// reads from (at most the message in its hands is read twice), and every
/// later receive is `Detached`.
#[test]
fn an_evicted_receiver_stops_and_stays_detached() {
    use shmcast_core::{Config, HeapRing, Mode, TryRecvError};
    for mode in [Mode::Unicast, Mode::Broadcast] {
        let r = HeapRing::new(&Config::new(mode).capacity(4).max_message(8)).unwrap();
        let tx = r.producer().unwrap();
        let old = r.receiver().unwrap();
        let mut buf = [0u8; 8];
        for k in 0u64..2 {
            tx.try_send(&k.to_le_bytes()).unwrap();
        }
        old.try_recv(&mut buf).unwrap();
        assert!(r.evict(old.id(), old.generation()));
        let new = r.receiver().unwrap();
        tx.try_send(&2u64.to_le_bytes()).unwrap();
        // The message in hand (1) may still come out once...
        match old.try_recv(&mut buf) {
            Ok(_) => assert_eq!(u64::from_le_bytes(buf), 1, "{mode:?}"),
            Err(e) => assert_eq!(e, TryRecvError::Detached, "{mode:?}"),
        }
        // ...and then nothing: detached for good.
        for _ in 0..3 {
            assert_eq!(
                old.try_recv(&mut buf),
                Err(TryRecvError::Detached),
                "{mode:?}"
            );
        }
        let mut got = Vec::new();
        while new.try_recv(&mut buf).is_ok() {
            got.push(u64::from_le_bytes(buf));
        }
        // Unicast: the successor reads from the old head (1); broadcast:
        // it joined at the tail (2).
        let want: &[u64] = if mode == Mode::Unicast { &[1, 2] } else { &[2] };
        assert_eq!(got, want, "{mode:?}");
    }
}

/// `claim_pending`: a sender's record holds receivers while its last
/// position is claimed, not consumed and not published; not once a
/// receiver stepped over it (broadcast: though the shared head lags), and
/// never for a record past the tail (a sender that died between writing it
/// and its claim CAS) or a count no claim can have.
#[test]
fn claim_pending_looks_at_the_last_claimed_position() {
    use core::sync::atomic::Ordering::Relaxed;
    use shmcast_core::{Config, HeapRing, Mode, Regions};
    for mode in [Mode::Unicast, Mode::Broadcast] {
        let r = HeapRing::new(&Config::new(mode).capacity(8).max_message(8)).unwrap();
        let mut tx = r.producer().unwrap();
        let rx = r.receiver().unwrap();
        let id = tx.id();
        let mut buf = [0u8; 8];
        assert!(!r.claim_pending(id), "{mode:?}: no record");
        let slot = tx.try_claim().unwrap();
        assert!(r.claim_pending(id), "{mode:?}: claimed, unpublished");
        slot.commit();
        assert!(!r.claim_pending(id), "{mode:?}: published");
        rx.try_recv(&mut buf).unwrap();
        let record = r.regions().entry(id.index());
        record.claim_start.store(r.tail(), Relaxed);
        record.claim_count.store(1, Relaxed);
        assert!(!r.claim_pending(id), "{mode:?}: past the tail");
        record.claim_start.store(0, Relaxed);
        record.claim_count.store(u32::MAX, Relaxed);
        assert!(!r.claim_pending(id), "{mode:?}: clamped, past the tail");
        // A claim whose sender "dies" (never publishes), stepped over.
        let slot = tx.try_claim().unwrap();
        core::mem::forget(slot);
        assert!(r.claim_pending(id), "{mode:?}: dead, unpublished");
        assert!(rx.step_over_dead_claim(|_, _| true), "{mode:?}");
        assert!(!r.claim_pending(id), "{mode:?}: stepped over");
    }
}
