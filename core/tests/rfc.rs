//! The io_uring IPC channel RFC's self-tests that apply within one process,
//! one test each, named after the RFC case (shared/reference/rfc-ipc-channel.md).
//! "Receive-only cannot send" and "send-only cannot receive" are compile-time
//! facts here: see the `compile_fail` doctests in the crate docs. "Attach by
//! id" and "cross-process send/receive" belong to the `shmcast` crate.

use shmcast_core::{
    Config, ConfigError, Envelope, HeapRing, JoinError, Mode, SubscriberId, TryRecvError,
    TrySendError, FLAG_BROADCAST, FLAG_MULTICAST,
};

fn ring(mode: Mode, cap: u64) -> HeapRing {
    HeapRing::new(
        &Config::new(mode)
            .capacity(cap)
            .max_message(128)
            .max_subscribers(8),
    )
    .unwrap()
}

#[test]
fn rfc_non_broadcast_send_recv() {
    let r = ring(Mode::Unicast, 8);
    let tx = r.producer().unwrap();
    let rx = r.receiver().unwrap();
    let id = tx.try_send(b"ping").unwrap();
    let mut buf = [0u8; 128];
    let info = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..info.len], b"ping");
    assert_eq!(info.id, id);
    assert_eq!(info.sender, tx.id());
    assert!(!info.truncated());
}

#[test]
fn rfc_broadcast_two_receivers() {
    let r = ring(Mode::Broadcast, 8);
    let tx = r.producer().unwrap();
    let a = r.receiver().unwrap();
    let b = r.receiver().unwrap();
    tx.try_send(b"all").unwrap();
    let mut buf = [0u8; 128];
    for rx in [&a, &b] {
        let info = rx.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..info.len], b"all");
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    }
}

#[test]
fn rfc_detach() {
    let r = ring(Mode::Broadcast, 2);
    let tx = r.producer().unwrap();
    let slow = r.receiver().unwrap();
    let slow_id = slow.id();
    tx.try_send(b"1").unwrap();
    tx.try_send(b"2").unwrap();
    assert_eq!(tx.try_send(b"3"), Err(TrySendError::Full));
    // Detaching the receiver that holds the ring full frees its entry and
    // its head stops counting.
    drop(slow);
    assert!(!r.is_receiver(slow_id));
    tx.try_send(b"3").unwrap();
    // The entry can be taken again.
    let again = r.receiver().unwrap();
    assert_eq!(again.id(), slow_id);
}

#[test]
fn rfc_receive_after_detach() {
    let r = ring(Mode::Unicast, 4);
    let rx = r.receiver().unwrap();
    // Someone else (a peer process, a recovery pass) released our entry.
    use shmcast_core::Regions;
    r.regions()
        .entry(rx.id().index())
        .state
        .store(0, core::sync::atomic::Ordering::Relaxed);
    let mut buf = [0u8; 8];
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Detached));
}

#[test]
fn rfc_ring_full() {
    let r = ring(Mode::Unicast, 4);
    let tx = r.producer().unwrap();
    let rx = r.receiver().unwrap();
    for i in 0..4u8 {
        tx.try_send(&[i]).unwrap();
    }
    assert_eq!(tx.try_send(b"x"), Err(TrySendError::Full));
    let mut buf = [0u8; 1];
    rx.try_recv(&mut buf).unwrap();
    tx.try_send(b"x").unwrap();
}

#[test]
fn rfc_message_too_large() {
    let r = ring(Mode::Unicast, 4);
    let tx = r.producer().unwrap();
    let big = [0u8; 129];
    assert_eq!(
        tx.try_send(&big),
        Err(TrySendError::TooLarge { len: 129, max: 128 })
    );
    tx.try_send(&big[..128]).unwrap();
}

#[test]
fn rfc_multiple_messages_in_order_then_empty() {
    let r = ring(Mode::Unicast, 16);
    let tx = r.producer().unwrap();
    let rx = r.receiver().unwrap();
    for i in 0..10u32 {
        tx.try_send(&i.to_le_bytes()).unwrap();
    }
    let mut buf = [0u8; 4];
    let mut last_id = None;
    for i in 0..10u32 {
        let info = rx.try_recv(&mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), i);
        assert!(last_id < Some(info.id));
        last_id = Some(info.id);
    }
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
}

#[test]
fn rfc_invalid_parameters() {
    let c = Config::new(Mode::Unicast);
    assert_eq!(
        c.capacity(3).geometry(),
        Err(ConfigError::CapacityNotPowerOfTwo { capacity: 3 })
    );
    assert_eq!(c.capacity(0).geometry(), Err(ConfigError::ZeroCapacity));
    assert_eq!(
        c.max_message(0).geometry(),
        Err(ConfigError::ZeroMessageSize)
    );
    assert_eq!(
        c.max_message((1 << 20) + 1).geometry(),
        Err(ConfigError::MessageSizeTooLarge {
            size: (1 << 20) + 1,
            max: 1 << 20
        })
    );
    assert_eq!(
        Config::from_flags(FLAG_BROADCAST | FLAG_MULTICAST),
        Err(ConfigError::ConflictingModes)
    );
    assert_eq!(
        Config::from_flags(1 << 7),
        Err(ConfigError::UnknownFlags { flags: 1 << 7 })
    );
    assert_eq!(
        c.max_subscribers(0).geometry(),
        Err(ConfigError::ZeroSubscribers)
    );
    assert!(matches!(
        c.max_subscribers(5000).geometry(),
        Err(ConfigError::TooManySubscribers { .. })
    ));
    assert!(matches!(
        c.message_cap(u32::MAX).geometry(),
        Err(ConfigError::MessageCapTooLarge { .. })
    ));
    assert!(matches!(
        c.capacity(1 << 24).max_message(1 << 20).geometry(),
        Err(ConfigError::RingTooLarge { .. })
    ));
    // Errors say what is wrong in words.
    assert_eq!(
        ConfigError::CapacityNotPowerOfTwo { capacity: 3 }.to_string(),
        "ring capacity must be a power of two, got 3"
    );
    // The flags that are valid map to the modes.
    assert_eq!(Config::from_flags(0).unwrap().mode(), Mode::Unicast);
    assert_eq!(
        Config::from_flags(FLAG_BROADCAST).unwrap().mode(),
        Mode::Broadcast
    );
    assert_eq!(
        Config::from_flags(FLAG_MULTICAST).unwrap().mode(),
        Mode::Multicast
    );
}

#[test]
fn rfc_receive_truncation() {
    let r = ring(Mode::Unicast, 4);
    let tx = r.producer().unwrap();
    let rx = r.receiver().unwrap();
    tx.try_send(b"0123456789").unwrap();
    tx.try_send(b"next").unwrap();
    let mut small = [0u8; 4];
    let info = rx.try_recv(&mut small).unwrap();
    assert_eq!(info.len, 4);
    assert_eq!(info.message_len, 10);
    assert!(info.truncated());
    assert_eq!(&small, b"0123");
    // The truncated message was consumed.
    let info = rx.try_recv(&mut small).unwrap();
    assert_eq!(&small[..info.len], b"next");
    assert!(!info.truncated());
}

#[test]
fn rfc_broadcast_slot_reuse() {
    let r = ring(Mode::Broadcast, 2);
    let tx = r.producer().unwrap();
    let a = r.receiver().unwrap();
    let b = r.receiver().unwrap();
    tx.try_send(b"1").unwrap();
    tx.try_send(b"2").unwrap();
    let mut buf = [0u8; 8];
    a.try_recv(&mut buf).unwrap();
    a.try_recv(&mut buf).unwrap();
    // `a` has read everything, but `b` has not: still full for the producer.
    assert_eq!(tx.try_send(b"3"), Err(TrySendError::Full));
    b.try_recv(&mut buf).unwrap();
    tx.try_send(b"3").unwrap();
    assert_eq!(tx.try_send(b"4"), Err(TrySendError::Full));
    b.try_recv(&mut buf).unwrap();
    tx.try_send(b"4").unwrap();
}

#[test]
fn rfc_multicast_round_robin() {
    let r = ring(Mode::Multicast, 4);
    let tx = r.producer().unwrap();
    let a = r.receiver().unwrap();
    let b = r.receiver().unwrap();
    tx.try_send(b"m1").unwrap();
    tx.try_send(b"m2").unwrap();
    let mut ba = [0u8; 8];
    let mut bb = [0u8; 8];
    let ia = a.try_recv(&mut ba).unwrap();
    let ib = b.try_recv(&mut bb).unwrap();
    assert_ne!(
        &ba[..ia.len],
        &bb[..ib.len],
        "two receivers got two different messages"
    );
    assert_eq!(a.try_recv(&mut ba), Err(TryRecvError::Empty));
    // Wake-ups go round-robin: with both asleep, two publishes wake two
    // different receivers.
    let (ta, tb) = (a.prepare_wait().unwrap(), b.prepare_wait().unwrap());
    tx.try_send(b"m3").unwrap();
    let w1: Vec<_> = tx.wake_set(1).receivers().collect();
    tx.try_send(b"m4").unwrap();
    let w2: Vec<_> = tx.wake_set(1).receivers().collect();
    assert_eq!(w1.len(), 1);
    assert_eq!(w2.len(), 1);
    assert_ne!(w1, w2);
    assert!(ta.is_woken() && tb.is_woken());
}

#[test]
fn rfc_channel_destroy() {
    let r = ring(Mode::Broadcast, 4);
    let tx = r.producer().unwrap();
    let rx = r.receiver().unwrap();
    tx.try_send(b"last words").unwrap();
    r.close();
    assert!(r.is_closed());
    assert_eq!(tx.try_send(b"more"), Err(TrySendError::Closed));
    assert_eq!(r.receiver().unwrap_err(), JoinError::Closed);
    let mut buf = [0u8; 16];
    // What was sent before the close is still delivered, then Closed.
    let info = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..info.len], b"last words");
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Closed));
}

#[test]
fn rfc_targeted_unicast_delivery() {
    let r = ring(Mode::Broadcast, 8);
    let tx = r.producer().unwrap();
    let a = r.receiver().unwrap();
    let b = r.receiver().unwrap();
    tx.try_send_to(b.id(), b"for b").unwrap();
    tx.try_send(b"for all").unwrap();
    let mut buf = [0u8; 16];
    let ia = a.try_recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..ia.len],
        b"for all",
        "a skips the message addressed to b"
    );
    let ib = b.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..ib.len], b"for b");
    assert_eq!(ib.target, Some(b.id()));
    let ib = b.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..ib.len], b"for all");
    // Only the target is woken.
    let _ta = a.prepare_wait().unwrap();
    let _tb = b.prepare_wait().unwrap();
    tx.try_send_to(b.id(), b"wake b").unwrap();
    let woken: Vec<_> = tx.wake_set_for(b.id()).receivers().collect();
    assert_eq!(woken, vec![b.id()]);
}

#[test]
fn rfc_targeted_unicast_missing_subscriber() {
    let r = ring(Mode::Broadcast, 8);
    let tx = r.producer().unwrap();
    let _rx = r.receiver().unwrap();
    assert_eq!(
        tx.try_send_to(SubscriberId(5), b"?"),
        Err(TrySendError::UnknownTarget { target: 5 })
    );
    // Outside the table, and a sender (not a receiver), are unknown too.
    assert_eq!(
        tx.try_send_to(SubscriberId(1000), b"?"),
        Err(TrySendError::UnknownTarget { target: 1000 })
    );
    assert_eq!(
        tx.try_send_with(Envelope::to(tx.id()), b"?"),
        Err(TrySendError::UnknownTarget { target: tx.id().0 })
    );
    // Multicast receivers compete: addressing is refused outright.
    let m = ring(Mode::Multicast, 8);
    let mtx = m.producer().unwrap();
    let mrx = m.receiver().unwrap();
    assert_eq!(
        mtx.try_send_to(mrx.id(), b"?"),
        Err(TrySendError::AddressingUnsupported)
    );
}

#[test]
fn rfc_unicast_second_receiver_refused() {
    let r = ring(Mode::Unicast, 8);
    let rx = r.receiver().unwrap();
    assert_eq!(r.receiver().unwrap_err(), JoinError::ReceiverTaken);
    drop(rx);
    r.receiver().unwrap();
}
