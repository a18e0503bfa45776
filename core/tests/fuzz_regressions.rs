//! Regressions found by the cargo-fuzz targets in `fuzz/` (each input is
//! also kept in `fuzz/corpus/<target>/`). One test per bug, named after
//! what was wrong, reproducing the minimal sequence the fuzzer found.

use shmcast_core::{Config, HeapRing, JoinError, Mode};

/// `ops_model`: a duplex join of a unicast ring whose receiver is taken is
/// refused, but it used to mark the ring as "a sender joined" first, so
/// `senders_gone()` said true although no sender had ever joined (and a
/// drained unicast channel would read as closed).
#[test]
fn refused_duplex_join_does_not_count_as_a_sender() {
    let config = Config::new(Mode::Unicast)
        .capacity(1)
        .max_message(3)
        .max_subscribers(4);
    let ring = HeapRing::new(&config).unwrap();
    let _rx = ring.receiver().unwrap();
    assert_eq!(ring.duplex().map(|_| ()), Err(JoinError::ReceiverTaken));
    assert!(!ring.senders_gone(), "no sender ever joined");
    let tx = ring.producer().unwrap();
    assert!(!ring.senders_gone());
    drop(tx);
    assert!(ring.senders_gone(), "the one sender left");
}

/// `hostile_writer`: a peer set a padding bit of the waiter bitmap (a bit
/// past the last table entry). Closing the ring, or any wake after a
/// publish, then named that non-entry in its wake set and bumped the wake
/// word of "entry" 55 of a 2-entry table: an index panic. Padding bits are
/// now ignored.
#[test]
fn waiter_bits_past_the_table_wake_nobody() {
    use shmcast_core::{Regions, SubscriberId};
    use std::sync::atomic::Ordering::Relaxed;

    for mode in [Mode::Unicast, Mode::Broadcast, Mode::Multicast] {
        let config = Config::new(mode)
            .capacity(1)
            .max_message(8)
            .max_subscribers(2);
        let ring = HeapRing::new(&config).unwrap();
        let tx = ring.producer().unwrap();
        let padding = ring.regions().waiter_word(0);
        padding.store(1 << 55, Relaxed);
        assert!(!tx.has_sleepers(), "{mode}");
        assert!(tx.wake_set(1).is_empty(), "{mode}");
        assert!(tx.wake_set_for(SubscriberId(55)).is_empty(), "{mode}");
        assert!(ring.wake_all().is_empty(), "{mode}");
        padding.store(u64::MAX, Relaxed);
        let woken = ring.close();
        assert!(woken.receivers().all(|id| id.index() < 2), "{mode}");
        assert!(ring.is_closed());
    }
}

/// `hostile_writer`: a peer moved the shared positions to just below
/// `u64::MAX`, and a batch then delivered ids `u64::MAX` and `0` in that
/// order. The ring is right (positions wrap, and all its arithmetic is
/// wrapping); the fuzz target's check that ids increase was not, and now
/// compares them wrapping. This pins the ring's side: sends and receives
/// run through the wrap in order, payloads intact.
#[test]
fn positions_run_through_the_u64_wrap_in_order() {
    use shmcast_core::{MessageInfo, Regions};
    use std::sync::atomic::Ordering::Relaxed;

    let config = Config::new(Mode::Unicast).capacity(4).max_message(8);
    let ring = HeapRing::new(&config).unwrap();
    let start = u64::MAX - 1;
    ring.regions().header().tail.store(start, Relaxed);
    ring.regions().header().head.store(start, Relaxed);
    let tx = ring.producer().unwrap();
    let rx = ring.receiver().unwrap();
    assert_eq!(tx.try_send_batch(&[b"one", b"two", b"three"]), Ok(3));
    let mut buf = [0u8; 32];
    let mut infos = [MessageInfo::default(); 4];
    assert_eq!(rx.try_recv_batch(&mut buf, &mut infos), Ok(3));
    let ids: Vec<u64> = infos[..3].iter().map(|i| i.id).collect();
    assert_eq!(ids, [u64::MAX - 1, u64::MAX, 0]);
    assert_eq!(&buf[..11], b"onetwothree");
    assert_eq!(tx.try_send(b"four"), Ok(1));
    let info = rx.try_recv(&mut buf).unwrap();
    assert_eq!((info.id, &buf[..info.len]), (1, &b"four"[..]));
}

/// Review finding (not the fuzzer's): a peer that parks a multicast ring's
/// shared head on a slot already reused by a later lap made every
/// `try_recv` spin 4 × capacity backed-off turns before it reported
/// `Empty`: seconds in a ring of 2^20 slots. The turns are now capped.
#[test]
fn a_parked_multicast_head_does_not_make_try_recv_long() {
    use shmcast_core::{Regions, TryRecvError};
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};

    let cap = 1u64 << 20;
    let ring = HeapRing::new(&Config::new(Mode::Multicast).capacity(cap).max_message(8)).unwrap();
    let tx = ring.producer().unwrap();
    let rx = ring.receiver().unwrap();
    let mut buf = [0u8; 8];
    // Two laps: the slot of position 0 now holds position `cap`.
    for lap in 0..2 {
        for i in 0..cap {
            tx.try_send(&(lap * cap + i).to_le_bytes()).unwrap();
        }
        if lap == 0 {
            while rx.try_recv(&mut buf).is_ok() {}
        }
    }
    // The peer parks the head on position 0.
    ring.regions().header().head.store(0, Relaxed);
    let t0 = Instant::now();
    let r = rx.try_recv(&mut buf);
    let took = t0.elapsed();
    assert_eq!(r, Err(TryRecvError::Empty));
    assert!(took < Duration::from_secs(1), "try_recv took {took:?}");
}
