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
