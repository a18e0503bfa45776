//! Micro-benchmarks of the ring's hot paths, in one process over a
//! `shmcast_core::HeapRing` (no shared memory, no second CPU: the cost of
//! the code itself, with warm caches):
//!
//! - `send/try_send/<size>`: claim + copy + publish of one message;
//! - `send/try_claim_commit/<size>`: the zero-copy claim, write, commit;
//! - `send/try_send_batch32/<size>`: 32 messages per claim (per message);
//! - `recv/try_recv/<size>`: one unicast receive (copy out, head store);
//! - `broadcast/recv_with_scan/<N>`: a broadcast receive with N receivers
//!   joined, including the min-head scan every 16 messages (amortised);
//! - `broadcast/full_send_rescan/<N>`: a send into a full broadcast ring
//!   with N receivers: refresh the head, rescan the N receivers, `Full`;
//! - `wake/wake_set_nobody_sleeps/<subscribers>`: the eventcount check after
//!   a publish when no receiver sleeps (one fence, one load per 64 entries).
//!
//! Sends are timed in chunks of at most the ring's capacity and the ring is
//! drained (or filled, for receives) outside the timed region.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmcast_core::{Config, HeapRing, MessageInfo, Mode, TrySendError};

const CAP: u64 = 1024;
const BATCH: usize = 32;
const SIZES: [usize; 3] = [8, 64, 1024];

fn unicast(size: usize) -> HeapRing {
    HeapRing::new(
        &Config::new(Mode::Unicast)
            .capacity(CAP)
            .max_message(size as u32),
    )
    .expect("ring")
}

/// Run `timed(n)` for chunks of `n <= CAP` iterations, `untimed(n)` after
/// each; the sum of the timed parts.
fn chunked(iters: u64, mut timed: impl FnMut(u64), mut untimed: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CAP);
        let t = Instant::now();
        timed(n);
        total += t.elapsed();
        untimed(n);
        left -= n;
    }
    total
}

fn send(c: &mut Criterion) {
    let mut g = c.benchmark_group("send");
    g.throughput(Throughput::Elements(1));
    for size in SIZES {
        let ring = unicast(size);
        let mut tx = ring.producer().expect("producer");
        let rx = ring.receiver().expect("receiver");
        let msg = vec![7u8; size];
        let mut buf = vec![0u8; size];
        let drain = |n: u64, buf: &mut [u8]| {
            for _ in 0..n {
                rx.try_recv(buf).expect("drain");
            }
        };
        g.bench_function(BenchmarkId::new("try_send", size), |b| {
            b.iter_custom(|iters| {
                chunked(
                    iters,
                    |n| {
                        for _ in 0..n {
                            tx.try_send(black_box(&msg)).expect("send");
                        }
                    },
                    |n| drain(n, &mut buf),
                )
            })
        });
        g.bench_function(BenchmarkId::new("try_claim_commit", size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CAP);
                    let t = Instant::now();
                    for _ in 0..n {
                        let mut slot = tx.try_claim().expect("claim");
                        slot.write_at(0, black_box(&msg)).expect("write");
                        black_box(slot.commit());
                    }
                    total += t.elapsed();
                    drain(n, &mut buf);
                    left -= n;
                }
                total
            })
        });
        let batch: Vec<&[u8]> = vec![&msg[..]; BATCH];
        g.bench_function(BenchmarkId::new("try_send_batch32", size), |b| {
            // One iteration = one message (the batch is timed whole and the
            // time split over its messages).
            b.iter_custom(|iters| {
                let calls = iters.div_ceil(BATCH as u64);
                let mut total = Duration::ZERO;
                let mut left = calls;
                while left > 0 {
                    let n = left.min(CAP / BATCH as u64);
                    let t = Instant::now();
                    for _ in 0..n {
                        let k = tx.try_send_batch(black_box(&batch)).expect("batch");
                        debug_assert_eq!(k, BATCH);
                    }
                    total += t.elapsed();
                    drain(n * BATCH as u64, &mut buf);
                    left -= n;
                }
                total.mul_f64(iters as f64 / (calls * BATCH as u64) as f64)
            })
        });
    }
    g.finish();
}

fn recv(c: &mut Criterion) {
    let mut g = c.benchmark_group("recv");
    g.throughput(Throughput::Elements(1));
    for size in SIZES {
        let ring = unicast(size);
        let tx = ring.producer().expect("producer");
        let rx = ring.receiver().expect("receiver");
        let msg = vec![7u8; size];
        let mut buf = vec![0u8; size];
        // Start with a full ring; each chunk is received (timed), then refilled.
        for _ in 0..CAP {
            tx.try_send(&msg).expect("fill");
        }
        g.bench_function(BenchmarkId::new("try_recv", size), |b| {
            b.iter_custom(|iters| {
                chunked(
                    iters,
                    |n| {
                        for _ in 0..n {
                            black_box(rx.try_recv(black_box(&mut buf)).expect("recv"));
                        }
                    },
                    |n| {
                        for _ in 0..n {
                            tx.try_send(&msg).expect("refill");
                        }
                    },
                )
            })
        });
        // Per message, taking up to BATCH per try_recv_batch call (one head
        // and counter update per call).
        let mut big = vec![0u8; size * BATCH];
        let mut infos = [MessageInfo::default(); BATCH];
        g.bench_function(BenchmarkId::new("try_recv_batch32", size), |b| {
            b.iter_custom(|iters| {
                chunked(
                    iters,
                    |n| {
                        let mut got = 0;
                        while got < n {
                            let want = (n - got).min(BATCH as u64) as usize;
                            let k = rx
                                .try_recv_batch(black_box(&mut big), &mut infos[..want])
                                .expect("recv batch");
                            got += k as u64;
                        }
                    },
                    |n| {
                        for _ in 0..n {
                            tx.try_send(&msg).expect("refill");
                        }
                    },
                )
            })
        });
    }
    g.finish();
}

fn broadcast(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 16, 64] {
        let ring = HeapRing::new(
            &Config::new(Mode::Broadcast)
                .capacity(CAP)
                .max_message(64)
                .max_subscribers(n as u32 + 1),
        )
        .expect("ring");
        let tx = ring.producer().expect("producer");
        let rxs: Vec<_> = (0..n).map(|_| ring.receiver().expect("receiver")).collect();
        let msg = [7u8; 64];
        let mut buf = [0u8; 64];
        g.bench_function(BenchmarkId::new("recv_with_scan", n), |b| {
            // One iteration = one receive by one receiver. Per chunk: fill
            // the ring (untimed), then every receiver drains it (timed).
            b.iter_custom(|iters| {
                let per_chunk = CAP * n as u64;
                let chunks = iters.div_ceil(per_chunk);
                let mut total = Duration::ZERO;
                for _ in 0..chunks {
                    for _ in 0..CAP {
                        tx.try_send(&msg).expect("fill");
                    }
                    let t = Instant::now();
                    for rx in &rxs {
                        for _ in 0..CAP {
                            black_box(rx.try_recv(&mut buf).expect("recv"));
                        }
                    }
                    total += t.elapsed();
                }
                total.mul_f64(iters as f64 / (chunks * per_chunk) as f64)
            })
        });
        // Fill the ring; every send now finds it full.
        while tx.try_send(&msg).is_ok() {}
        // Nobody reads: the receiver that held the head back last time has
        // not moved, so the producer reports Full without a scan.
        g.bench_function(BenchmarkId::new("full_send_laggard_still", n), |b| {
            b.iter(|| {
                let r = tx.try_send(black_box(&msg));
                debug_assert_eq!(r, Err(TrySendError::Full));
                black_box(r)
            })
        });
        // Before each (timed) send, the next receiver in turn reads one
        // message (untimed): the recorded laggard has moved, so every send
        // scans all n receivers (min-head scan), and every n-th one finds
        // room.
        g.bench_function(BenchmarkId::new("full_send_min_head_scan", n), |b| {
            let mut turn = 0;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let _ = rxs[turn % n].try_recv(&mut buf);
                    turn += 1;
                    let t = Instant::now();
                    black_box(tx.try_send(black_box(&msg)).ok());
                    total += t.elapsed();
                }
                total
            })
        });
        drop(rxs);
    }
    g.finish();
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    for subscribers in [64u32, 1024] {
        let ring = HeapRing::new(
            &Config::new(Mode::Broadcast)
                .capacity(64)
                .max_message(64)
                .max_subscribers(subscribers),
        )
        .expect("ring");
        let tx = ring.producer().expect("producer");
        let _rx = ring.receiver().expect("receiver");
        g.bench_function(
            BenchmarkId::new("wake_set_nobody_sleeps", subscribers),
            |b| {
                b.iter(|| {
                    let set = tx.wake_set(black_box(1));
                    debug_assert!(set.is_empty());
                    black_box(set)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, send, recv, broadcast, wake);
criterion_main!(benches);
