//! The quick-start demo: real processes moving messages through shmcast
//! channels, and what it measured.
//!
//! 1. **ping-pong**: this process and a child process bounce a 64-byte
//!    message over two unicast channels; one-way latency = round trip / 2.
//! 2. **broadcast**: this process streams 64-byte messages to three child
//!    receiver processes; every receiver checks it got every message in
//!    order, and reports its rate and the send-to-receive latency.
//!
//! Receivers poll (`try_recv` + yield), which is what a latency-bound
//! receiver on a spare CPU does; `Receiver::recv` sleeps instead (see the
//! README's "Sleeping receivers", and `shmcast-bench` for the wake-up
//! costs). Run with `cargo run --release -p shmcast --example demo`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::time::{clock_gettime, ClockId};
use shmcast::{attach, ChannelBuilder, Mode, Role, TryRecvError, TrySendError};

const PINGS: u64 = 20_000;
const MESSAGES: u64 = 2_000_000;
const RECEIVERS: usize = 3;
const DEADLINE: Duration = Duration::from_secs(60);

fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("pong") => pong(&args[2], &args[3]),
        Some("receiver") => receiver(&args[2]),
        _ => parent(),
    }
}

fn spawn(args: &[&str]) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
}

fn read_line(child: &mut Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut reader = std::io::BufReader::new(out);
    reader.read_line(&mut line).ok();
    line.trim().to_owned()
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let pid = std::process::id();
    println!("shmcast demo: real processes, shared memory, polling receivers");

    // 1. Ping-pong over two unicast channels.
    let (ping_name, pong_name) = (format!("demo-{pid}-ping"), format!("demo-{pid}-pong"));
    let ping = ChannelBuilder::new(&ping_name)
        .capacity(64)
        .max_message(64)
        .create()?;
    let pong = ChannelBuilder::new(&pong_name)
        .capacity(64)
        .max_message(64)
        .create()?;
    let tx = ping.sender()?;
    let rx = pong.receiver()?;
    let mut child = spawn(&["pong", &ping_name, &pong_name])?;
    assert_eq!(read_line(&mut child), "ready");
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(PINGS as usize);
    let deadline = Instant::now() + DEADLINE;
    for i in 0..PINGS {
        let t0 = Instant::now();
        while tx.try_send(&[i as u8; 64]) == Err(TrySendError::Full) {}
        loop {
            match rx.try_recv(&mut buf) {
                Ok(_) => break,
                Err(TryRecvError::Empty) if Instant::now() < deadline => std::hint::spin_loop(),
                Err(e) => return Err(format!("ping-pong: {e}").into()),
            }
        }
        rtts.push(t0.elapsed());
    }
    child.wait()?;
    rtts.sort_unstable();
    let pct = |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!("\nping-pong, 2 processes, 64 B, {PINGS} round trips");
    println!(
        "  one-way latency    p50 {:>9.2?}   p99 {:>9.2?}",
        pct(&rtts, 0.5) / 2,
        pct(&rtts, 0.99) / 2
    );
    drop((tx, rx, ping, pong));

    // 2. Broadcast to receiver processes.
    let name = format!("demo-{pid}-bcast");
    let channel = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(1024)
        .max_message(64)
        .create()?;
    let mut children = Vec::new();
    for _ in 0..RECEIVERS {
        let mut c = spawn(&["receiver", &name])?;
        assert!(read_line(&mut c).starts_with("joined"));
        children.push(c);
    }
    let tx = channel.sender()?;
    let mut msg = [0u8; 64];
    let start = Instant::now();
    let mut full = 0u64;
    for seq in 0..MESSAGES {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        loop {
            msg[8..16].copy_from_slice(&now_ns().to_le_bytes());
            match tx.try_send(&msg) {
                Ok(_) => break,
                Err(TrySendError::Full) if start.elapsed() < DEADLINE => {
                    full += 1;
                    std::thread::yield_now();
                }
                Err(e) => return Err(format!("broadcast: {e}").into()),
            }
        }
    }
    let send_time = start.elapsed();
    println!("\nbroadcast, 1 sender -> {RECEIVERS} receiver processes, 64 B, {MESSAGES} messages");
    println!(
        "  sender             {:>7.2} M msg/s ({send_time:.2?}; ring full {full} times)",
        MESSAGES as f64 / send_time.as_secs_f64() / 1e6
    );
    for (i, mut c) in children.into_iter().enumerate() {
        let report = read_line(&mut c);
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("receiver {i} failed: {report}").into());
        }
        println!("  receiver {i}         {report}");
    }
    channel.destroy();
    Ok(())
}

fn pong(ping: &str, pong: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rx = attach(ping, Role::Recv)?.receiver()?;
    let tx = attach(pong, Role::Send)?.sender()?;
    println!("ready");
    use std::io::Write;
    std::io::stdout().flush()?;
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + DEADLINE;
    for _ in 0..PINGS {
        loop {
            match rx.try_recv(&mut buf) {
                Ok(info) => {
                    while tx.try_send(&buf[..info.len]) == Err(TrySendError::Full) {}
                    break;
                }
                Err(TryRecvError::Empty) if Instant::now() < deadline => std::hint::spin_loop(),
                Err(e) => return Err(format!("pong: {e}").into()),
            }
        }
    }
    Ok(())
}

fn receiver(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let rx = attach(name, Role::Recv)?.receiver()?;
    println!("joined {}", rx.id().0);
    std::io::stdout().flush()?;
    let mut buf = [0u8; 64];
    let mut lat = Vec::with_capacity((MESSAGES / 16) as usize);
    let mut next = 0u64;
    let deadline = Instant::now() + DEADLINE;
    let mut start = None;
    while next < MESSAGES {
        match rx.try_recv(&mut buf) {
            Ok(_) => {
                let seq = u64::from_le_bytes(buf[..8].try_into()?);
                if seq != next {
                    println!("FAILED: expected message {next}, got {seq}");
                    std::process::exit(1);
                }
                start.get_or_insert_with(Instant::now);
                if seq % 16 == 0 {
                    let sent = u64::from_le_bytes(buf[8..16].try_into()?);
                    lat.push(now_ns().saturating_sub(sent));
                }
                next += 1;
            }
            Err(TryRecvError::Empty) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => {
                println!("FAILED after {next} messages: {e}");
                std::process::exit(1);
            }
        }
    }
    let elapsed = start.map(|s| s.elapsed()).unwrap_or_default();
    lat.sort_unstable();
    let p = |q: f64| Duration::from_nanos(lat[((lat.len() - 1) as f64 * q) as usize]);
    println!(
        "{next} in order, {:>6.2} M msg/s, send->recv p50 {:>9.2?} p99 {:>9.2?}",
        next as f64 / elapsed.as_secs_f64() / 1e6,
        p(0.5),
        p(0.99)
    );
    Ok(())
}
