//! In-process demo: one producer thread broadcasts to three receiver threads
//! through a `shmcast` ring on the heap, then prints what it measured.
//! (The cross-process demo replaces this once the shared-memory layer lands.)

use std::thread;
use std::time::{Duration, Instant};

use shmcast::{Config, HeapRing, Mode, TryRecvError, TrySendError};

const MESSAGES: u64 = 2_000_000;
const RECEIVERS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ring = HeapRing::new(&Config::new(Mode::Broadcast).capacity(1024).max_message(64))?;
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|_| ring.receiver())
        .collect::<Result<_, _>>()?;
    let epoch = Instant::now();
    let handles: Vec<_> = receivers
        .into_iter()
        .map(|rx| {
            thread::spawn(move || {
                let mut buf = [0u8; 64];
                let mut latencies = Vec::with_capacity(MESSAGES as usize / 64 + 1);
                let mut next = 0u64;
                while next < MESSAGES {
                    match rx.try_recv(&mut buf) {
                        Ok(info) => {
                            let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                            assert_eq!(seq, next, "lost or reordered message");
                            if seq % 64 == 0 {
                                let sent = u64::from_le_bytes(buf[8..16].try_into().unwrap());
                                let now = epoch.elapsed().as_nanos() as u64;
                                latencies.push(now.saturating_sub(sent));
                            }
                            debug_assert_eq!(info.len, 64);
                            next += 1;
                        }
                        Err(TryRecvError::Empty) => thread::yield_now(),
                        Err(e) => panic!("receive failed: {e}"),
                    }
                }
                latencies
            })
        })
        .collect();

    let tx = ring.producer()?;
    let start = Instant::now();
    let mut msg = [0u8; 64];
    let mut full = 0u64;
    for seq in 0..MESSAGES {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        loop {
            msg[8..16].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
            match tx.try_send(&msg) {
                Ok(_) => break,
                Err(TrySendError::Full) => {
                    full += 1;
                    thread::yield_now()
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("receiver thread panicked"));
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let pct = |p: f64| Duration::from_nanos(all[((all.len() - 1) as f64 * p) as usize]);
    println!("shmcast demo (in-process, broadcast, {RECEIVERS} receivers, 64 B messages)");
    println!("  messages sent      {MESSAGES}");
    println!(
        "  messages received  {} ({} per receiver, none lost)",
        MESSAGES * RECEIVERS as u64,
        MESSAGES
    );
    println!("  elapsed            {elapsed:.2?}");
    println!(
        "  send rate          {:.2} M msg/s",
        MESSAGES as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "  delivered rate     {:.2} M msg/s",
        (MESSAGES * RECEIVERS as u64) as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "  send→receive       p50 {:.2?}  p99 {:.2?}  (sampled 1/64, ring full {full} times)",
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
