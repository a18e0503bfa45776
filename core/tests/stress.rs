//! Std-thread stress tests: many messages through small rings, checking for
//! loss, duplication and reordering. Run in release for full counts
//! (`cargo test --release -p shmcast-core --test stress`); the machine has
//! two cores, so waiting sides yield instead of spinning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use shmcast_core::{Config, HeapRing, MessageInfo, Mode, TryRecvError, TrySendError};

const TOTAL: u64 = if cfg!(miri) {
    2_000
} else if cfg!(debug_assertions) {
    200_000
} else {
    1_000_000
};

fn msg(producer: u32, seq: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..4].copy_from_slice(&producer.to_le_bytes());
    m[8..].copy_from_slice(&seq.to_le_bytes());
    m
}

fn parse(m: &[u8]) -> (u32, u64) {
    (
        u32::from_le_bytes(m[..4].try_into().unwrap()),
        u64::from_le_bytes(m[8..16].try_into().unwrap()),
    )
}

fn send_all(ring: &HeapRing, me: u32, count: u64, batch: bool) {
    let tx = ring.producer().unwrap();
    let mut seq = 0;
    while seq < count {
        let r = if batch && count - seq >= 4 {
            let ms = [
                msg(me, seq),
                msg(me, seq + 1),
                msg(me, seq + 2),
                msg(me, seq + 3),
            ];
            let refs = [&ms[0][..], &ms[1][..], &ms[2][..], &ms[3][..]];
            tx.try_send_batch(&refs).map(|n| n as u64)
        } else {
            tx.try_send(&msg(me, seq)).map(|_| 1)
        };
        match r {
            Ok(n) => seq += n,
            Err(TrySendError::Full) => thread::yield_now(),
            Err(e) => panic!("send failed: {e}"),
        }
    }
}

#[test]
fn unicast_mpsc_four_producers() {
    let ring = HeapRing::new(
        &Config::new(Mode::Unicast)
            .capacity(64)
            .max_message(16)
            .max_subscribers(8),
    )
    .unwrap();
    let rx = ring.receiver().unwrap();
    let per = TOTAL / 4;
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let ring = ring.clone();
            thread::spawn(move || send_all(&ring, p, per, p % 2 == 1))
        })
        .collect();
    let mut next = [0u64; 4];
    let mut buf = [0u8; 16];
    let mut got = 0;
    let mut last_id = None;
    while got < per * 4 {
        match rx.try_recv(&mut buf) {
            Ok(info) => {
                assert_eq!(info.len, 16);
                let (p, seq) = parse(&buf);
                assert_eq!(
                    seq, next[p as usize],
                    "producer {p}: loss, duplicate or reorder"
                );
                next[p as usize] += 1;
                assert!(last_id < Some(info.id), "ids increase");
                last_id = Some(info.id);
                got += 1;
            }
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("recv failed: {e}"),
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(next, [per; 4]);
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
}

#[test]
fn broadcast_spmc_four_receivers() {
    let ring = HeapRing::new(
        &Config::new(Mode::Broadcast)
            .capacity(64)
            .max_message(16)
            .max_subscribers(8),
    )
    .unwrap();
    // Receivers join before the first send, so each must see every message.
    let receivers: Vec<_> = (0..4).map(|_| ring.receiver().unwrap()).collect();
    let handles: Vec<_> = receivers
        .into_iter()
        .map(|rx| {
            thread::spawn(move || {
                let mut buf = [0u8; 16];
                let mut next = 0;
                while next < TOTAL {
                    match rx.try_recv(&mut buf) {
                        Ok(_) => {
                            assert_eq!(parse(&buf), (0, next), "receiver {:?}", rx.id());
                            next += 1;
                        }
                        Err(TryRecvError::Empty) => thread::yield_now(),
                        Err(e) => panic!("recv failed: {e}"),
                    }
                }
                assert_eq!(rx.lagged(), 0);
                next
            })
        })
        .collect();
    send_all(&ring, 0, TOTAL, false);
    for h in handles {
        assert_eq!(h.join().unwrap(), TOTAL);
    }
}

/// `try_recv_batch` with room for up to 7 infos but 100 bytes of buffer
/// (6 whole 16-byte messages): every call delivers 1..=6 messages.
fn recv_batch_all(
    rx: &shmcast_core::Receiver<shmcast_core::HeapRegions>,
    total: u64,
    producers: usize,
) {
    let mut next = vec![0u64; producers];
    let mut buf = [0u8; 100];
    let mut infos = [MessageInfo::default(); 7];
    let mut got = 0;
    let mut last_id = None;
    while got < total {
        match rx.try_recv_batch(&mut buf, &mut infos) {
            Ok(n) => {
                assert!((1..=6).contains(&n), "batch of {n}");
                for (i, info) in infos[..n].iter().enumerate() {
                    assert_eq!(info.len, 16);
                    let (p, seq) = parse(&buf[i * 16..i * 16 + 16]);
                    assert_eq!(
                        seq, next[p as usize],
                        "producer {p}: loss, duplicate or reorder"
                    );
                    next[p as usize] += 1;
                    assert!(last_id < Some(info.id), "ids increase");
                    last_id = Some(info.id);
                }
                got += n as u64;
            }
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("recv failed: {e}"),
        }
    }
    assert_eq!(got, total);
    assert_eq!(rx.lagged(), 0);
    assert_eq!(
        rx.try_recv_batch(&mut buf, &mut infos),
        Err(TryRecvError::Empty)
    );
}

#[test]
fn unicast_mpsc_batch_receive() {
    let ring = HeapRing::new(
        &Config::new(Mode::Unicast)
            .capacity(64)
            .max_message(16)
            .max_subscribers(8),
    )
    .unwrap();
    let rx = ring.receiver().unwrap();
    let per = TOTAL / 4;
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let ring = ring.clone();
            thread::spawn(move || send_all(&ring, p, per, p % 2 == 0))
        })
        .collect();
    recv_batch_all(&rx, per * 4, 4);
    for p in producers {
        p.join().unwrap();
    }
}

#[test]
fn broadcast_spmc_batch_receive() {
    let ring = HeapRing::new(
        &Config::new(Mode::Broadcast)
            .capacity(64)
            .max_message(16)
            .max_subscribers(8),
    )
    .unwrap();
    let receivers: Vec<_> = (0..3).map(|_| ring.receiver().unwrap()).collect();
    let handles: Vec<_> = receivers
        .into_iter()
        .map(|rx| thread::spawn(move || recv_batch_all(&rx, TOTAL, 1)))
        .collect();
    send_all(&ring, 0, TOTAL, true);
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn multicast_mpmc_two_producers_four_receivers() {
    let ring = HeapRing::new(
        &Config::new(Mode::Multicast)
            .capacity(64)
            .max_message(16)
            .max_subscribers(8),
    )
    .unwrap();
    let per = TOTAL / 2;
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(4));
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let ring = ring.clone();
            let done = done.clone();
            let start = start.clone();
            thread::spawn(move || {
                let rx = ring.receiver().unwrap();
                start.wait();
                let mut seen = Vec::new();
                let mut last = [None::<u64>; 2];
                let mut buf = [0u8; 16];
                loop {
                    match rx.try_recv(&mut buf) {
                        Ok(_) => {
                            let (p, seq) = parse(&buf);
                            // One receiver takes positions in increasing order,
                            // so each producer's messages arrive in order.
                            assert!(last[p as usize] < Some(seq), "reordered");
                            last[p as usize] = Some(seq);
                            seen.push((p, seq));
                        }
                        Err(TryRecvError::Empty) => {
                            if done.load(Ordering::Acquire) {
                                // Producers finished before this check: one
                                // last look, then stop.
                                if rx.try_recv(&mut buf).is_err() {
                                    break;
                                }
                                let (p, seq) = parse(&buf);
                                seen.push((p, seq));
                            } else {
                                thread::yield_now();
                            }
                        }
                        Err(e) => panic!("recv failed: {e}"),
                    }
                }
                seen
            })
        })
        .collect();
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let ring = ring.clone();
            thread::spawn(move || send_all(&ring, p, per, p == 1))
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let mut count = [vec![0u8; per as usize], vec![0u8; per as usize]];
    let mut per_receiver = Vec::new();
    for r in receivers {
        let seen = r.join().unwrap();
        per_receiver.push(seen.len());
        for (p, seq) in seen {
            count[p as usize][seq as usize] += 1;
        }
    }
    for (p, c) in count.iter().enumerate() {
        for (seq, &n) in c.iter().enumerate() {
            assert_eq!(n, 1, "producer {p} message {seq} delivered {n} times");
        }
    }
    assert_eq!(per_receiver.iter().sum::<usize>() as u64, TOTAL);
}

#[test]
fn zero_copy_guards_and_abandoned_claims() {
    let ring = HeapRing::new(
        &Config::new(Mode::Unicast)
            .capacity(8)
            .max_message(16)
            .max_subscribers(4),
    )
    .unwrap();
    let rx = ring.receiver().unwrap();
    let n = TOTAL / 10;
    let r2 = ring.clone();
    let producer = thread::spawn(move || {
        let mut tx = r2.producer().unwrap();
        let mut seq = 0u64;
        let mut i = 0u64;
        while seq < n {
            match tx.try_claim() {
                Ok(mut slot) => {
                    i += 1;
                    if i % 3 == 0 {
                        drop(slot); // abandoned: a skip record
                        continue;
                    }
                    slot.append(&msg(7, seq)[..8]).unwrap();
                    slot.append(&msg(7, seq)[8..]).unwrap();
                    slot.commit();
                    seq += 1;
                }
                Err(TrySendError::Full) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut rx = rx;
    let mut next = 0;
    while next < n {
        match rx.try_read() {
            Ok(slot) => {
                let mut buf = [0u8; 16];
                assert_eq!(slot.read_at(0, &mut buf), 16);
                assert_eq!(parse(&buf), (7, next));
                next += 1;
            }
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
}
