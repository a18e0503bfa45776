//! `shmcast-peer`: create, feed, drain or inspect a shmcast channel from the
//! command line. Used by the cross-process tests, and handy for poking at a
//! live channel.
//!
//! ```text
//! shmcast-peer serve NAME [--mode unicast|broadcast|multicast] [--capacity N]
//!                         [--max-message B] [--perm 0600] [--for SECS]
//! shmcast-peer send  NAME --count N [--size B] [--tag T] [--target ID] [--batch K] [--timeout SECS]
//! shmcast-peer recv  NAME --count N [--buf B] [--timeout SECS] [--out FILE] [--until-closed]
//! shmcast-peer info  NAME
//! ```
//!
//! Messages from `send` carry `tag` (u32) and a sequence number (u64) in
//! their first 16 bytes; `recv` checks that each tag's sequence numbers
//! arrive in order without gaps it did not expect, and with `--out` writes
//! one `tag seq` line per message. Every wait is bounded by `--timeout`
//! (default 30 s): on expiry the tool exits with status 2.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmcast::{
    attach, ChannelBuilder, Envelope, Mode, Role, SubscriberId, TryRecvError, TrySendError,
};

struct Args {
    cmd: String,
    name: String,
    opts: HashMap<String, String>,
    flags: Vec<String>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it
        .next()
        .ok_or("missing command (serve | send | recv | info)")?;
    let name = it.next().ok_or("missing channel name")?;
    let mut opts = HashMap::new();
    let mut flags = Vec::new();
    while let Some(a) = it.next() {
        let key = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        if key == "until-closed" {
            flags.push(key.to_owned());
        } else {
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            opts.insert(key.to_owned(), v);
        }
    }
    Ok(Args {
        cmd,
        name,
        opts,
        flags,
    })
}

impl Args {
    fn num(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.opts.get(key) {
            None => Ok(default),
            Some(v) => {
                let (digits, radix) = match v.strip_prefix("0o") {
                    Some(d) => (d, 8),
                    None if v.len() > 1 && v.starts_with('0') => (&v[1..], 8),
                    None => (v.as_str(), 10),
                };
                u64::from_str_radix(digits, radix).map_err(|e| format!("--{key} {v}: {e}"))
            }
        }
    }
    fn timeout(&self) -> Result<Duration, String> {
        Ok(Duration::from_secs(self.num("timeout", 30)?))
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shmcast-peer: {e}");
            return ExitCode::from(64);
        }
    };
    let r = match args.cmd.as_str() {
        "serve" => serve(&args),
        "send" => send(&args),
        "recv" => recv(&args),
        "info" => info(&args),
        c => Err(format!("unknown command {c:?}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.starts_with("timeout") => {
            eprintln!("shmcast-peer: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("shmcast-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(a: &Args) -> Result<(), String> {
    let mode = match a.opts.get("mode").map(String::as_str).unwrap_or("unicast") {
        "unicast" => Mode::Unicast,
        "broadcast" => Mode::Broadcast,
        "multicast" => Mode::Multicast,
        m => return Err(format!("unknown mode {m:?}")),
    };
    let channel = ChannelBuilder::new(&a.name)
        .mode(mode)
        .capacity(a.num("capacity", 256)?)
        .max_message(a.num("max-message", 4096)? as u32)
        .permissions(a.num("perm", 0o600)? as u32)
        .create()
        .map_err(|e| e.to_string())?;
    println!("ready");
    std::io::stdout().flush().ok();
    match a.opts.get("for") {
        Some(_) => std::thread::sleep(Duration::from_secs(a.num("for", 0)?)),
        // Serve until stdin closes (the parent went away or said so).
        None => for _ in std::io::stdin().lock().lines() {},
    }
    if a.flags.iter().any(|f| f == "until-closed") {
        channel.destroy();
    }
    Ok(())
}

fn send(a: &Args) -> Result<(), String> {
    let count = a.num("count", 1)?;
    let size = a.num("size", 16)?.max(16) as usize;
    let tag = a.num("tag", std::process::id() as u64)? as u32;
    let batch = a.num("batch", 1)?.max(1) as usize;
    let target = a
        .opts
        .get("target")
        .map(|_| a.num("target", 0))
        .transpose()?
        .map(|t| SubscriberId(t as u32));
    let deadline = Instant::now() + a.timeout()?;
    let peer = attach(&a.name, Role::Send).map_err(|e| e.to_string())?;
    let tx = peer.sender().map_err(|e| e.to_string())?;
    let mut msgs = vec![vec![0u8; size]; batch];
    let mut seq = 0u64;
    let mut full = 0u64;
    while seq < count {
        let k = batch.min((count - seq) as usize);
        for (i, m) in msgs[..k].iter_mut().enumerate() {
            m[..4].copy_from_slice(&tag.to_le_bytes());
            m[8..16].copy_from_slice(&(seq + i as u64).to_le_bytes());
        }
        let r = if k > 1 {
            let refs: Vec<&[u8]> = msgs[..k].iter().map(|m| &m[..]).collect();
            tx.try_send_batch(&refs).map(|n| n as u64)
        } else {
            tx.try_send_with(Envelope { target, tag: seq }, &msgs[0])
                .map(|_| 1)
        };
        match r {
            Ok(n) => seq += n,
            Err(TrySendError::Full) => {
                full += 1;
                if Instant::now() > deadline {
                    return Err(format!("timeout: sent {seq} of {count} (ring full)"));
                }
                std::thread::yield_now();
            }
            Err(e) => return Err(format!("send {seq}: {e}")),
        }
    }
    println!("sent {count} full {full}");
    Ok(())
}

fn recv(a: &Args) -> Result<(), String> {
    let count = a.num("count", u64::MAX)?;
    let until_closed = a.flags.iter().any(|f| f == "until-closed");
    let deadline = Instant::now() + a.timeout()?;
    let peer = attach(&a.name, Role::Recv).map_err(|e| e.to_string())?;
    let rx = peer.receiver().map_err(|e| e.to_string())?;
    println!("joined {}", rx.id().0);
    std::io::stdout().flush().ok();
    let mut buf = vec![0u8; a.num("buf", 65536)? as usize];
    let mut last: HashMap<u32, u64> = HashMap::new();
    let mut out = match a.opts.get("out") {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let (mut got, mut truncated, mut bytes) = (0u64, 0u64, 0u64);
    while got < count {
        match rx.try_recv(&mut buf) {
            Ok(info) => {
                got += 1;
                bytes += info.len as u64;
                truncated += info.truncated() as u64;
                if info.len >= 16 {
                    let tag = u32::from_le_bytes(buf[..4].try_into().unwrap());
                    let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap());
                    if let Some(&prev) = last.get(&tag) {
                        if seq <= prev {
                            return Err(format!(
                                "tag {tag}: seq {seq} after {prev} (reordered or duplicated)"
                            ));
                        }
                    }
                    last.insert(tag, seq);
                    if let Some(o) = out.as_mut() {
                        writeln!(o, "{tag} {seq}").map_err(|e| e.to_string())?;
                    }
                }
            }
            Err(TryRecvError::Empty) => {
                if Instant::now() > deadline {
                    if until_closed {
                        return Err(format!("timeout: channel not closed after {got} messages"));
                    }
                    return Err(format!("timeout: received {got} of {count}"));
                }
                std::thread::yield_now();
            }
            Err(TryRecvError::Closed) if until_closed => break,
            Err(e) => return Err(format!("receive after {got}: {e}")),
        }
    }
    if let Some(mut o) = out {
        o.flush().map_err(|e| e.to_string())?;
    }
    println!(
        "received {got} bytes {bytes} truncated {truncated} lagged {}",
        rx.lagged()
    );
    Ok(())
}

fn info(a: &Args) -> Result<(), String> {
    let peer = attach(&a.name, Role::Recv).map_err(|e| e.to_string())?;
    let ring = peer.ring();
    let g = ring.geometry();
    println!("name          {}", a.name);
    println!("mode          {}", g.mode());
    println!(
        "capacity      {} slots of {} B (max message {} B)",
        g.capacity(),
        g.slot_stride(),
        g.max_message()
    );
    println!("subscribers   {} entries", g.max_subscribers());
    println!("creator uid   {}", peer.creator_uid());
    println!("tail / head   {} / {}", ring.tail(), ring.head());
    println!("closed        {}", ring.is_closed());
    for i in 0..g.max_subscribers() as u32 {
        let id = SubscriberId(i);
        if let Some(c) = ring.counters(id) {
            if c.sent + c.received + c.lagged > 0 || ring.is_receiver(id) {
                println!(
                    "entry {i:4}    sent {} received {} lagged {}",
                    c.sent, c.received, c.lagged
                );
            }
        }
    }
    Ok(())
}
