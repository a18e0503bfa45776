//! Measures what the receiver's spin-before-sleep buys: one-way latency and
//! CPU time per message of a blocking ping-pong between two processes
//! (pinned to CPUs 0 and 1), for several spin budgets and gaps between
//! messages. This is the measurement behind `Spin::AUTO_DURATION`.
//!
//! `cargo run --release -p shmcast --example spin_tuning`

use std::time::{Duration, Instant};

use rustix::thread::{sched_setaffinity, CpuSet};
use rustix::time::{clock_gettime, ClockId};
use shmcast::{attach, ChannelBuilder, Role, Spin};

const ROUNDS: usize = 3000;
const SPINS_US: [u64; 6] = [0, 2, 5, 10, 20, 50];
const GAPS_US: [u64; 4] = [0, 5, 20, 100];

fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    let _ = sched_setaffinity(None, &set);
}

/// CPU time of this process (the measuring side; the echo side is symmetric).
fn cpu_time() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("echo") {
        pin(1);
        let spin = Duration::from_micros(args[4].parse()?);
        let mut rx = attach(&args[2], Role::Recv)?.receiver()?;
        rx.set_spin(if spin.is_zero() {
            Spin::Off
        } else {
            Spin::For(spin)
        });
        let tx = attach(&args[3], Role::Send)?.sender()?;
        let mut buf = [0u8; 64];
        for _ in 0..ROUNDS {
            let info = rx.recv_timeout(&mut buf, Duration::from_secs(10))?;
            tx.send(&buf[..info.len])?;
        }
        return Ok(());
    }
    pin(0);
    println!(
        "blocking ping-pong, 64 B, {ROUNDS} round trips per cell, sides pinned to CPUs 0 and 1"
    );
    println!("| spin | gap | one-way p50 | one-way p99 | CPU µs / round trip |");
    println!("|---|---|---|---|---|");
    for spin_us in SPINS_US {
        for gap_us in GAPS_US {
            let pid = std::process::id();
            let (a, b) = (
                format!("spin-{pid}-{spin_us}-{gap_us}-a"),
                format!("spin-{pid}-{spin_us}-{gap_us}-b"),
            );
            let ping = ChannelBuilder::new(&a)
                .capacity(16)
                .max_message(64)
                .create()?;
            let pong = ChannelBuilder::new(&b)
                .capacity(16)
                .max_message(64)
                .create()?;
            let tx = ping.sender()?;
            let mut rx = pong.receiver()?;
            let spin = Duration::from_micros(spin_us);
            rx.set_spin(if spin.is_zero() {
                Spin::Off
            } else {
                Spin::For(spin)
            });
            let mut child = std::process::Command::new(std::env::current_exe()?)
                .args(["echo", &a, &b, &spin_us.to_string()])
                .spawn()?;
            let before = cpu_time();
            let mut rtts = Vec::with_capacity(ROUNDS);
            let mut buf = [0u8; 64];
            let gap = Duration::from_micros(gap_us);
            for _ in 0..ROUNDS {
                let until = Instant::now() + gap;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                let t0 = Instant::now();
                tx.send(&[7u8; 64])?;
                rx.recv_timeout(&mut buf, Duration::from_secs(10))?;
                rtts.push(t0.elapsed());
            }
            child.wait()?;
            let after = cpu_time();
            rtts.sort_unstable();
            let p = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize] / 2;
            // Our own CPU time, minus the gap we burned on purpose.
            let ours = after
                .saturating_sub(before)
                .saturating_sub(gap * ROUNDS as u32);
            println!(
                "| {spin_us} µs | {gap_us} µs | {:.2?} | {:.2?} | {:.1} |",
                p(0.5),
                p(0.99),
                ours.as_secs_f64() * 1e6 / ROUNDS as f64
            );
        }
    }
    Ok(())
}
