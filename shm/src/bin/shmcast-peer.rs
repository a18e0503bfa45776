//! `shmcast-peer`: create, feed, drain or inspect a shmcast channel from the
//! command line. Used by the cross-process tests, and handy for poking at a
//! live channel.
//!
//! ```text
//! shmcast-peer serve NAME [--mode unicast|broadcast|multicast] [--capacity N]
//!                         [--max-message B] [--perm 0600] [--for SECS] [--eventfds]
//! shmcast-peer send  NAME [--count N] [--size B] [--tag T] [--target ID] [--batch K] [--timeout SECS]
//!                         [--blocking] [--pause-every N --pause-us U] [--seed S]
//!                         [--sync-every N --receivers R]
//! shmcast-peer recv  NAME [--count N] [--buf B] [--timeout SECS] [--out FILE] [--until-closed]
//!                         [--blocking] [--backend futex|uring-futex|msg-ring|eventfd]
//!                         [--guard-ms MS] [--pause-every N --pause-us U] [--seed S]
//! shmcast-peer info  NAME
//! ```
//!
//! `serve` keeps the channel until its standard input reaches end of file
//! (the parent went away or said so), or for `--for SECS`. `--perm` is
//! octal, with or without a leading `0`; other numbers are decimal.
//! `send --count` defaults to 1; `recv` without `--count` reads until
//! `--timeout` (or, with `--until-closed`, until the channel closes).
//!
//! `send --hang-in-claim` claims one position (zero-copy), prints
//! `claimed ID`, and waits to be killed without publishing it: a sender
//! that dies mid-send, for tests. `send --stay` stays attached after
//! sending (and printing its summary) until it is killed: a sender that
//! dies idle, for tests.
//!
//! `--blocking` uses the sleeping calls (`send_timeout` / `recv_timeout`);
//! `--guard-ms MS` sets the receiver's wake guard (its longest single
//! sleep; the library's default is 100 ms): tests of wake-ups set it far
//! above their timeouts, so that a lost wake fails them instead of being
//! covered up by the guard.
//! `--pause-every N --pause-us U` pauses about every N messages (at random)
//! for up to U µs, so that the other side runs dry and falls asleep.
//! `--sync-every N --receivers R` makes the sender stop, about every N
//! messages (at random), until the R receivers have received everything
//! sent so far (read from their shared counters), for at most 10 s: a
//! receiver asleep through a lost wake-up then fails the run instead of
//! being rescued by the next message.
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

/// The options (and flags) each command takes.
const SERVE_OPTS: &[&str] = &[
    "mode",
    "capacity",
    "max-message",
    "perm",
    "for",
    "eventfds",
    "until-closed",
];
const SEND_OPTS: &[&str] = &[
    "count",
    "size",
    "tag",
    "target",
    "batch",
    "timeout",
    "blocking",
    "pause-every",
    "pause-us",
    "seed",
    "sync-every",
    "receivers",
    "hang-in-claim",
    "stay",
];
const RECV_OPTS: &[&str] = &[
    "count",
    "buf",
    "timeout",
    "out",
    "until-closed",
    "blocking",
    "backend",
    "guard-ms",
    "pause-every",
    "pause-us",
    "seed",
];

/// The largest receive buffer `recv --buf` allocates: 1 GiB.
const MAX_BUF: u64 = 1 << 30;

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it
        .next()
        .ok_or("missing command (serve | send | recv | info)")?;
    if !matches!(cmd.as_str(), "serve" | "send" | "recv" | "info") {
        return Err(format!("unknown command {cmd:?}"));
    }
    let name = it.next().ok_or("missing channel name")?;
    let mut opts = HashMap::new();
    let mut flags = Vec::new();
    while let Some(a) = it.next() {
        let key = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        let known = match cmd.as_str() {
            "serve" => SERVE_OPTS,
            "send" => SEND_OPTS,
            "recv" => RECV_OPTS,
            _ => &[],
        };
        if !known.contains(&key) {
            return Err(format!("{cmd} has no option --{key}"));
        }
        if matches!(
            key,
            "until-closed" | "blocking" | "eventfds" | "hang-in-claim" | "stay"
        ) {
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
    /// A decimal number.
    fn num(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.opts.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| format!("--{key} {v}: {e}")),
        }
    }
    /// An octal number (file mode bits), `640`, `0640` or `0o640`.
    fn octal(&self, key: &str, default: u32) -> Result<u32, String> {
        match self.opts.get(key) {
            None => Ok(default),
            Some(v) => {
                let digits = v.strip_prefix("0o").unwrap_or(v);
                u32::from_str_radix(digits, 8).map_err(|e| format!("--{key} {v} (octal): {e}"))
            }
        }
    }
    fn timeout(&self) -> Result<Duration, String> {
        Ok(Duration::from_secs(self.num("timeout", 30)?))
    }
    fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
    fn pauser(&self) -> Result<Pauser, String> {
        Ok(Pauser {
            every: self.num("pause-every", 0)?,
            max_us: self.num("pause-us", 0)?,
            x: self.num("seed", std::process::id() as u64)? | 1,
        })
    }
}

/// Random pauses: about every `every` messages, sleep up to `max_us` µs.
struct Pauser {
    every: u64,
    max_us: u64,
    x: u64,
}

impl Pauser {
    fn next(&mut self) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x
    }
    fn maybe_pause(&mut self) {
        if self.every == 0 || self.max_us == 0 {
            return;
        }
        if self.next() % self.every == 0 {
            let us = self.next() % self.max_us + 1;
            std::thread::sleep(Duration::from_micros(us));
        }
    }
}

const USAGE: &str = "usage:
  shmcast-peer serve NAME [--mode unicast|broadcast|multicast] [--capacity N] [--max-message B]
                          [--perm 0600] [--for SECS] [--eventfds] [--until-closed]
  shmcast-peer send  NAME [--count N] [--size B] [--tag T] [--target ID] [--batch K] [--timeout SECS]
                          [--blocking] [--pause-every N --pause-us U] [--seed S] [--sync-every N --receivers R]
                          [--hang-in-claim | --stay]
  shmcast-peer recv  NAME [--count N] [--buf B] [--timeout SECS] [--out FILE] [--until-closed]
                          [--blocking] [--backend futex|uring-futex|msg-ring|eventfd] [--guard-ms MS]
                          [--pause-every N --pause-us U] [--seed S]
  shmcast-peer info  NAME

serve keeps the channel until stdin reaches end of file, or for --for SECS.
--perm is octal (640, 0640, 0o640); other numbers are decimal.
send: --count defaults to 1; --size is at least 16 (a tag and a sequence number);
      --hang-in-claim claims a position and waits to be killed without publishing it;
      --stay stays attached after sending, until killed.
recv: without --count, reads until --timeout (default 30 s) or, with --until-closed, the close.";

fn main() -> ExitCode {
    if matches!(
        std::env::args().nth(1).as_deref(),
        None | Some("help" | "--help" | "-h")
    ) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shmcast-peer: {e}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let r = match args.cmd.as_str() {
        "serve" => serve(&args),
        "send" => send(&args),
        "recv" => recv(&args),
        "info" => info(&args),
        _ => unreachable!("parse accepts the four commands only"),
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
        .eventfds(a.flag("eventfds"))
        .capacity(a.num("capacity", 256)?)
        .max_message(a.num("max-message", 4096)? as u32)
        .permissions(a.octal("perm", 0o600)?)
        .create()
        .map_err(|e| e.to_string())?;
    println!("ready");
    std::io::stdout().flush().ok();
    match a.opts.get("for") {
        Some(_) => std::thread::sleep(Duration::from_secs(a.num("for", 0)?)),
        // Serve until stdin closes (the parent went away or said so).
        None => {
            let started = Instant::now();
            for _ in std::io::stdin().lock().lines() {}
            if started.elapsed() < Duration::from_millis(10) {
                eprintln!(
                    "shmcast-peer: standard input is at end of file, so serving stops now \
                     (run with --for SECS to serve for a set time)"
                );
            }
        }
    }
    if a.flags.iter().any(|f| f == "until-closed") {
        channel.destroy();
    }
    Ok(())
}

fn send(a: &Args) -> Result<(), String> {
    let count = a.num("count", 1)?;
    let size = a.num("size", 16)?;
    if size < 16 {
        return Err(format!(
            "--size {size}: messages carry a tag and a sequence number, so at least 16 B"
        ));
    }
    let size = size as usize;
    let tag = a.num("tag", std::process::id() as u64)? as u32;
    let batch = a.num("batch", 1)?.max(1) as usize;
    let target = a
        .opts
        .get("target")
        .map(|_| a.num("target", 0))
        .transpose()?
        .map(|t| SubscriberId(t as u32));
    let deadline = Instant::now() + a.timeout()?;
    let blocking = a.flag("blocking");
    let mut pauser = a.pauser()?;
    let peer = attach(&a.name, Role::Send).map_err(|e| e.to_string())?;
    let mut tx = peer.sender().map_err(|e| e.to_string())?;
    if a.flag("hang-in-claim") {
        // A sender that dies mid-send, for tests: claim a position, write
        // into it, say so, and never publish (wait to be killed).
        let mut slot = tx.try_claim().map_err(|e| format!("claim: {e}"))?;
        slot.append(b"never published").map_err(|e| e.to_string())?;
        println!("claimed {}", slot.id());
        std::io::stdout().flush().ok();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let mut msgs = vec![vec![0u8; size]; batch];
    let mut seq = 0u64;
    let mut full = 0u64;
    let sync_every = a.num("sync-every", 0)?;
    let receivers = a.num("receivers", 1)?;
    let mut syncs = 0u64;
    // The receivers to wait for: those attached now (their counters stay
    // readable after they leave).
    let ids: Vec<SubscriberId> = (0..tx.ring().geometry().max_subscribers() as u32)
        .map(SubscriberId)
        .filter(|&id| tx.ring().is_receiver(id))
        .collect();
    if sync_every > 0 && ids.len() as u64 != receivers {
        return Err(format!(
            "expected {receivers} receivers attached, found {}",
            ids.len()
        ));
    }
    while seq < count {
        if sync_every > 0 && seq > 0 && pauser.next() % sync_every == 0 {
            syncs += 1;
            wait_for_receivers(tx.ring(), &ids, seq)?;
        }
        let k = batch.min((count - seq) as usize);
        for (i, m) in msgs[..k].iter_mut().enumerate() {
            m[..4].copy_from_slice(&tag.to_le_bytes());
            m[8..16].copy_from_slice(&(seq + i as u64).to_le_bytes());
        }
        pauser.maybe_pause();
        if blocking && k == 1 {
            tx.send_with(Envelope { target, tag: seq }, &msgs[0], Some(deadline))
                .map_err(|e| match e {
                    shmcast::SendError::Timeout => {
                        format!("timeout: sent {seq} of {count} (ring full)")
                    }
                    e => format!("send {seq}: {e}"),
                })?;
            seq += 1;
            continue;
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
    if sync_every > 0 {
        wait_for_receivers(tx.ring(), &ids, seq)?;
    }
    let st = tx.stats();
    println!(
        "sent {count} full {full} wake_checks {} skipped {} wake_syscalls {} woken {} ring_wakes {} syncs {syncs}",
        st.checks, st.skipped, st.syscalls, st.woken, st.ring_wakes
    );
    if a.flag("stay") {
        std::io::stdout().flush().ok();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    Ok(())
}

/// Wait (at most 10 s) until the receivers `ids` have received all `sent`
/// messages: each of them in broadcast, together otherwise.
fn wait_for_receivers(
    ring: shmcast::RingView<'_>,
    ids: &[SubscriberId],
    sent: u64,
) -> Result<(), String> {
    let want = if ring.mode() == Mode::Broadcast {
        sent * ids.len() as u64
    } else {
        sent
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: u64 = ids
            .iter()
            .filter_map(|&id| ring.counters(id))
            .map(|c| c.received)
            .sum();
        if got >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timeout: receivers stalled at {got} of {want} received (a lost wake-up?)"
            ));
        }
        std::thread::yield_now();
    }
}

fn recv(a: &Args) -> Result<(), String> {
    let count = a.num("count", u64::MAX)?;
    let until_closed = a.flags.iter().any(|f| f == "until-closed");
    let deadline = Instant::now() + a.timeout()?;
    let blocking = a.flag("blocking");
    let mut pauser = a.pauser()?;
    let backend = match a.opts.get("backend") {
        Some(b) => Some(
            b.parse::<shmcast::BackendKind>()
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let peer = attach(&a.name, Role::Recv).map_err(|e| e.to_string())?;
    let mut rx = peer.receiver_with(backend).map_err(|e| e.to_string())?;
    if let Some(ms) = a.opts.get("guard-ms") {
        let ms: u64 = ms.parse().map_err(|e| format!("--guard-ms: {e}"))?;
        rx.set_wake_guard(Duration::from_millis(ms));
    }
    if let Some(why) = rx.backend_fallback() {
        eprintln!("shmcast-peer: {why}; using {}", rx.backend());
    }
    println!("joined {} backend {}", rx.id().0, rx.backend());
    std::io::stdout().flush().ok();
    let buf_len = a.num("buf", 65536)?;
    if buf_len > MAX_BUF {
        return Err(format!("--buf {buf_len}: at most {MAX_BUF} B"));
    }
    let mut buf = vec![0u8; buf_len as usize];
    let mut last: HashMap<u32, u64> = HashMap::new();
    let mut out = match a.opts.get("out") {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let (mut got, mut truncated, mut bytes) = (0u64, 0u64, 0u64);
    while got < count {
        pauser.maybe_pause();
        let r = if blocking {
            match rx.recv_deadline(&mut buf, deadline) {
                Ok(info) => Ok(info),
                Err(shmcast::RecvError::Timeout) => Err(TryRecvError::Empty),
                // Unicast: the senders left; for --until-closed, the end.
                Err(shmcast::RecvError::Closed | shmcast::RecvError::NoSenders) => {
                    Err(TryRecvError::Closed)
                }
                Err(shmcast::RecvError::Lagged(n)) => Err(TryRecvError::Lagged(n)),
                Err(e) => return Err(format!("receive after {got}: {e}")),
            }
        } else {
            rx.try_recv(&mut buf)
        };
        match r {
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
    println!("permissions   {:04o}", ring.permissions());
    println!("tail / head   {} / {}", ring.tail(), ring.head());
    println!("closed        {}", ring.is_closed());
    for i in 0..g.max_subscribers() as u32 {
        let id = SubscriberId(i);
        if let Some(c) = ring.counters(id) {
            if c.sent + c.received + c.lagged > 0 || ring.is_receiver(id) {
                let role = if ring.is_receiver(id) {
                    "receiver"
                } else {
                    "sender or left"
                };
                println!(
                    "entry {i:4}    {role:14} sent {} received {} lagged {}",
                    c.sent, c.received, c.lagged
                );
            }
        }
    }
    Ok(())
}
