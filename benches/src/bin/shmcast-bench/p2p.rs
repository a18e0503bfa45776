//! a. Point-to-point latency and b. streaming, 1 sender → 1 receiver.
//!
//! One worker process per message size, pinned to the receiving CPU, holds
//! the far end of every mechanism: two pipes, a unix stream socket pair, two
//! shm+eventfd rings, two raw spin rings, two shmcast unicast channels (one
//! each way). Per size, after a warm-up of every mechanism, `blocks` blocks
//! run; in each block every mechanism (rotated order) does
//!
//! - **ping-pong**: `round_trips` round trips, each timed on its own; the
//!   one-way latency is RTT / 2. Per block: the median; overall: the median
//!   of the block medians, the p99 of all samples, and the median over
//!   blocks of `median(mechanism) / median(raw spin)` of the same block;
//! - **streaming**: the parent sends N messages back to back, the worker
//!   receives them (checking their order); ns/message = (worker's last
//!   receive − parent's first send) / N, the RFC's "latency" column.
//!
//! shmcast here is the busy-polling receiver (`try_recv` spin). Rings hold
//! [`capacity`] slots for every ring-based mechanism alike.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use rustix::event::{eventfd, EventfdFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rustix::pipe::{pipe_with, PipeFlags};
use shmcast::{attach, ChannelBuilder, Role};
use shmcast_benches::mech::{
    seq_of, stamp, EfdRx, EfdTx, FdRx, FdTx, RingLayout, Rx, ShmcastRx, ShmcastTx, SpscRx, SpscTx,
    Tx, Wait,
};
use shmcast_benches::report::{Table, XAxis};
use shmcast_benches::sys::{self, now_ns, Arena, Ticks};
use shmcast_benches::worker::{record, Args, Control, Worker};

use crate::{
    channel_name, count_for, med, op, progress, ratio_median, size_label, val, x, Goal, Mech, Plan,
    Res, Section,
};

/// The mechanisms of this section, in table order.
const MECHS: [Mech; 5] = [
    Mech::Pipe,
    Mech::Unix,
    Mech::ShmEventfd,
    Mech::RawSpin,
    Mech::ShmcastBusy,
];

/// Slots per ring for messages of `size` bytes: about 512 KiB of slots,
/// a power of two between 8 and 256.
pub(crate) fn capacity(size: usize) -> usize {
    let stride = (32 + size).div_ceil(64) * 64;
    let n = (512 * 1024 / stride).clamp(8, 256);
    1 << n.ilog2()
}

/// Both ends of every mechanism, as one process holds them.
struct Ends {
    pipe_tx: FdTx,
    pipe_rx: FdRx,
    unix_tx: FdTx,
    unix_rx: FdRx,
    efd_tx: EfdTx,
    efd_rx: EfdRx,
    raw_tx: SpscTx,
    raw_rx: SpscRx,
    shmcast_tx: ShmcastTx,
    shmcast_rx: ShmcastRx,
}

/// Run `$body` with `$tx`/`$rx` bound to the ends of `$mech`, monomorphised
/// per mechanism (no dynamic dispatch inside timed loops).
macro_rules! with_ends {
    ($ends:expr, $mech:expr, |$tx:ident, $rx:ident| $body:expr) => {{
        let e = &mut $ends;
        match $mech {
            Mech::Pipe => {
                let ($tx, $rx) = (&mut e.pipe_tx, &mut e.pipe_rx);
                $body
            }
            Mech::Unix => {
                let ($tx, $rx) = (&mut e.unix_tx, &mut e.unix_rx);
                $body
            }
            Mech::ShmEventfd => {
                let ($tx, $rx) = (&mut e.efd_tx, &mut e.efd_rx);
                $body
            }
            Mech::RawSpin => {
                let ($tx, $rx) = (&mut e.raw_tx, &mut e.raw_rx);
                $body
            }
            Mech::ShmcastBusy | Mech::ShmcastPolling => {
                let ($tx, $rx) = (&mut e.shmcast_tx, &mut e.shmcast_rx);
                $body
            }
        }
    }};
}

/// Offsets of the four rings in the arena: raw forward, raw back, eventfd
/// forward, eventfd back ("forward" = parent → worker).
fn ring_offsets(lay: &RingLayout) -> [usize; 4] {
    let l = lay.bytes();
    [0, l, 2 * l, 3 * l]
}

fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

fn split(fd: OwnedFd) -> std::io::Result<(FdTx, FdRx)> {
    let rx = FdRx::new(fd.try_clone()?);
    Ok((FdTx::new(fd), rx))
}

/// Results of one size.
#[derive(Default, Clone)]
struct PerMech {
    /// Per block: median one-way latency (ns).
    lat_block: Vec<f64>,
    /// All one-way samples (ns).
    lat_all: Vec<f64>,
    /// Per block: streaming ns/message.
    stream_block: Vec<f64>,
}

pub(crate) fn run(plan: &Plan, latency: bool, streaming: bool) -> Res<Vec<Section>> {
    sys::pin_to_cpu(plan.cpu_send)?;
    let ticks = Ticks::calibrate(Duration::from_millis(50));
    let mut results: Vec<(usize, Vec<PerMech>)> = Vec::new();
    for &size in &plan.p2p_sizes {
        results.push((size, run_size(plan, &ticks, size, latency, streaming)?));
    }
    let mut out = Vec::new();
    if latency {
        out.push(latency_section(plan, &results));
    }
    if streaming {
        out.push(streaming_section(plan, &results));
    }
    Ok(out)
}

fn run_size(
    plan: &Plan,
    ticks: &Ticks,
    size: usize,
    latency: bool,
    streaming: bool,
) -> Res<Vec<PerMech>> {
    let cap = capacity(size);
    let lay = RingLayout::new(cap, size);
    let offs = ring_offsets(&lay);
    let arena = Rc::new(Arena::create("shmcast-bench-p2p", 4 * lay.bytes())?);
    let (fwd_r, fwd_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (back_r, back_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (sock_here, sock_there) = socket_pair()?;
    let efd_fwd = eventfd(0, EventfdFlags::CLOEXEC)?;
    let efd_back = eventfd(0, EventfdFlags::CLOEXEC)?;
    let (ping_name, pong_name) = (
        channel_name(&format!("ping{size}")),
        channel_name(&format!("pong{size}")),
    );
    let ping = ChannelBuilder::new(&ping_name)
        .capacity(cap as u64)
        .max_message(size as u32)
        .create()?;
    let pong = ChannelBuilder::new(&pong_name)
        .capacity(cap as u64)
        .max_message(size as u32)
        .create()?;

    let fds = vec![
        arena.fd().try_clone_to_owned()?,
        fwd_r,
        back_w,
        sock_there,
        efd_fwd.try_clone()?,
        efd_back.try_clone()?,
    ];
    let args: Vec<String> = vec![
        "p2p".into(),
        format!("cpu={}", plan.cpu_recv),
        format!("size={size}"),
        format!("cap={cap}"),
        format!("arena={}", sys::raw(&fds[0])),
        format!("pipe_rx={}", sys::raw(&fds[1])),
        format!("pipe_tx={}", sys::raw(&fds[2])),
        format!("sock={}", sys::raw(&fds[3])),
        format!("efd_rx={}", sys::raw(&fds[4])),
        format!("efd_tx={}", sys::raw(&fds[5])),
        format!("ping={ping_name}"),
        format!("pong={pong_name}"),
    ];
    let mut worker = Worker::spawn(&format!("p2p {size} B"), &args, fds)?;
    let (unix_tx, unix_rx) = split(sock_here)?;
    let mut ends = Ends {
        pipe_tx: FdTx::new(fwd_w),
        pipe_rx: FdRx::new(back_r),
        unix_tx,
        unix_rx,
        efd_tx: EfdTx::new(
            SpscTx::new(arena.clone(), offs[2], lay, Wait::Spin),
            efd_fwd,
        ),
        efd_rx: EfdRx::new(
            SpscRx::new(arena.clone(), offs[3], lay, Wait::Spin),
            efd_back,
        ),
        raw_tx: SpscTx::new(arena.clone(), offs[0], lay, Wait::Spin),
        raw_rx: SpscRx::new(arena.clone(), offs[1], lay, Wait::Spin),
        shmcast_tx: ShmcastTx {
            tx: ping.sender()?,
            full: Wait::Spin,
        },
        shmcast_rx: ShmcastRx {
            rx: pong.receiver()?,
            empty: Wait::Spin,
        },
    };
    expect(&mut worker, op::READY)?;

    let n_stream = count_for(plan.stream, size);
    let mut msg = vec![0x5au8; size];
    let mut buf = vec![0u8; size];
    let mut samples = Vec::with_capacity(plan.round_trips);
    progress(&format!(
        "p2p {}: warm-up ({cap} slots per ring, {n_stream} messages per stream)",
        size_label(size)
    ));
    // Every slot of every ring is touched (page faults, cache) before timing.
    let warmup = plan.warmup.max(2 * cap);
    for &m in &MECHS {
        if latency {
            let w = &mut worker;
            pingpong(
                w,
                &mut ends,
                ticks,
                m,
                warmup,
                &mut msg,
                &mut buf,
                &mut samples,
            )?;
        }
        if streaming {
            stream(
                &mut worker,
                &mut ends,
                m,
                n_stream.clamp(2 * cap, 2_000),
                &mut msg,
            )?;
        }
    }
    let mut res = vec![PerMech::default(); MECHS.len()];
    for block in 0..plan.p2p_blocks {
        progress(&format!(
            "p2p {}: block {}/{}",
            size_label(size),
            block + 1,
            plan.p2p_blocks
        ));
        let mut order: Vec<usize> = (0..MECHS.len()).collect();
        order.rotate_left(block % MECHS.len());
        for &i in &order {
            if latency {
                pingpong(
                    &mut worker,
                    &mut ends,
                    ticks,
                    MECHS[i],
                    plan.round_trips,
                    &mut msg,
                    &mut buf,
                    &mut samples,
                )?;
                res[i].lat_all.extend_from_slice(&samples);
                res[i].lat_block.push(med(&samples).unwrap_or(f64::NAN));
            }
            if streaming {
                let ns = stream(&mut worker, &mut ends, MECHS[i], n_stream, &mut msg)?;
                res[i].stream_block.push(ns);
            }
        }
    }
    worker.finish(record(&[op::QUIT]))?;
    drop(ends);
    ping.destroy();
    pong.destroy();
    Ok(res)
}

fn expect(worker: &mut Worker, code: u64) -> Res<[u64; 8]> {
    let r = worker.recv()?;
    if r[0] != code {
        return Err(format!("worker answered {} where {code} was expected", r[0]).into());
    }
    Ok(r)
}

/// `n` timed round trips (after one untimed one); one-way samples in `out`.
#[allow(clippy::too_many_arguments)]
fn pingpong(
    worker: &mut Worker,
    ends: &mut Ends,
    ticks: &Ticks,
    m: Mech,
    n: usize,
    msg: &mut [u8],
    buf: &mut [u8],
    out: &mut Vec<f64>,
) -> Res<()> {
    worker.send(record(&[op::PINGPONG, m.code(), n as u64 + 1]))?;
    out.clear();
    with_ends!(*ends, m, |tx, rx| ping_loop(
        tx, rx, ticks, msg, buf, n, out
    ));
    expect(worker, op::DONE)?;
    Ok(())
}

fn ping_loop<T: Tx, R: Rx>(
    tx: &mut T,
    rx: &mut R,
    ticks: &Ticks,
    msg: &mut [u8],
    buf: &mut [u8],
    n: usize,
    out: &mut Vec<f64>,
) {
    // One untimed round trip: the worker may still be reading its command.
    tx.send(msg);
    rx.recv(buf);
    // One timestamp per round trip: the interval between consecutive ones.
    let mut t = Ticks::read();
    for i in 0..n {
        stamp(msg, i as u64);
        tx.send(msg);
        rx.recv(buf);
        let now = Ticks::read();
        out.push(ticks.ns(now.wrapping_sub(t)) / 2.0);
        t = now;
    }
}

/// Stream `n` messages; returns ns/message.
fn stream(worker: &mut Worker, ends: &mut Ends, m: Mech, n: usize, msg: &mut [u8]) -> Res<f64> {
    worker.send(record(&[op::STREAM, m.code(), n as u64]))?;
    expect(worker, op::READY)?;
    let t0 = now_ns();
    with_ends!(*ends, m, |tx, _rx| send_loop(tx, msg, n));
    let r = expect(worker, op::DONE)?;
    let (t_last, bad) = (r[2], r[3]);
    if bad != 0 {
        return Err(format!("{}: {bad} messages out of order", m.name()).into());
    }
    Ok(t_last.saturating_sub(t0) as f64 / n as f64)
}

fn send_loop<T: Tx>(tx: &mut T, msg: &mut [u8], n: usize) {
    for i in 0..n {
        stamp(msg, i as u64);
        tx.send(msg);
    }
}

/// Receive `n` messages stamped 0..n; returns (first receive, last receive,
/// messages out of order).
pub(crate) fn sink<R: Rx>(rx: &mut R, buf: &mut [u8], n: u64) -> (u64, u64, u64) {
    let mut bad = 0;
    let mut first = 0;
    for i in 0..n {
        rx.recv(buf);
        if i == 0 {
            first = now_ns();
        }
        bad += u64::from(seq_of(buf) != i);
    }
    (first, now_ns(), bad)
}

fn pong_loop<T: Tx, R: Rx>(tx: &mut T, rx: &mut R, buf: &mut [u8], n: u64) {
    for _ in 0..n {
        let len = rx.recv(buf);
        tx.send(&buf[..len]);
    }
}

/// The worker: the far end of every mechanism for one message size.
pub(crate) fn worker(args: &Args) -> Res<()> {
    let size = args.num("size")? as usize;
    let lay = RingLayout::new(args.num("cap")? as usize, size);
    let offs = ring_offsets(&lay);
    let arena = Rc::new(Arena::open(args.fd("arena")?)?);
    let (unix_tx, unix_rx) = split(args.fd("sock")?)?;
    let mut ends = Ends {
        pipe_tx: FdTx::new(args.fd("pipe_tx")?),
        pipe_rx: FdRx::new(args.fd("pipe_rx")?),
        unix_tx,
        unix_rx,
        efd_tx: EfdTx::new(
            SpscTx::new(arena.clone(), offs[3], lay, Wait::Spin),
            args.fd("efd_tx")?,
        ),
        efd_rx: EfdRx::new(
            SpscRx::new(arena.clone(), offs[2], lay, Wait::Spin),
            args.fd("efd_rx")?,
        ),
        raw_tx: SpscTx::new(arena.clone(), offs[1], lay, Wait::Spin),
        raw_rx: SpscRx::new(arena.clone(), offs[0], lay, Wait::Spin),
        shmcast_tx: ShmcastTx {
            tx: attach(args.get("pong")?, Role::Send)?.sender()?,
            full: Wait::Spin,
        },
        shmcast_rx: ShmcastRx {
            rx: attach(args.get("ping")?, Role::Recv)?.receiver()?,
            empty: Wait::Spin,
        },
    };
    let mut ctl = Control::new();
    ctl.reply(record(&[op::READY]))?;
    let mut buf = vec![0u8; size];
    while let Some(cmd) = ctl.command()? {
        let mech = Mech::from_code(cmd[1]);
        match (cmd[0], mech) {
            (op::QUIT, _) => break,
            (op::PINGPONG, Some(m)) => {
                with_ends!(ends, m, |tx, rx| pong_loop(tx, rx, &mut buf, cmd[2]));
                ctl.reply(record(&[op::DONE]))?;
            }
            (op::STREAM, Some(m)) => {
                ctl.reply(record(&[op::READY]))?;
                let (first, last, bad) = with_ends!(ends, m, |_tx, rx| sink(rx, &mut buf, cmd[2]));
                ctl.reply(record(&[op::DONE, first, last, bad]))?;
            }
            _ => return Err(format!("p2p worker: bad command {cmd:?}").into()),
        }
    }
    Ok(())
}

fn latency_section(plan: &Plan, results: &[(usize, Vec<PerMech>)]) -> Section {
    let names: Vec<&str> = MECHS.iter().map(|m| m.name()).collect();
    let raw = MECHS.iter().position(|m| *m == Mech::RawSpin).expect("raw");
    let sc = MECHS
        .iter()
        .position(|m| *m == Mech::ShmcastBusy)
        .expect("shmcast");
    let mut p50 = Table::new(
        "latency-p50",
        "Point-to-point one-way latency, median (RTT/2)",
        "ns",
        "size",
        &names,
    );
    let mut p99 = Table::new(
        "latency-p99",
        "Point-to-point one-way latency, p99 (RTT/2)",
        "ns",
        "size",
        &names,
    );
    let ratio_names: Vec<String> = MECHS
        .iter()
        .filter(|m| **m != Mech::RawSpin)
        .map(|m| format!("{} / floor", m.name()))
        .collect();
    let ratio_refs: Vec<&str> = ratio_names.iter().map(String::as_str).collect();
    let mut ratio = Table::new(
        "latency-ratio",
        "One-way latency relative to the raw spin floor (median of per-block ratios)",
        "x",
        "size",
        &ratio_refs,
    );
    let mut goals = Vec::new();
    for (size, per) in results {
        let label = size_label(*size);
        p50.push(
            &label,
            *size as f64,
            per.iter().map(|p| med(&p.lat_block)).collect(),
        );
        p99.push(
            &label,
            *size as f64,
            per.iter()
                .map(|p| {
                    let mut v = p.lat_all.clone();
                    (!v.is_empty()).then(|| shmcast_benches::stats::quantile(&mut v, 0.99))
                })
                .collect(),
        );
        ratio.push(
            &label,
            *size as f64,
            (0..MECHS.len())
                .filter(|&i| i != raw)
                .map(|i| ratio_median(&per[i].lat_block, &per[raw].lat_block))
                .collect(),
        );
        let limit = match *size {
            64 => Some(1.3),
            4096 | 32768 => Some(1.2),
            _ => None,
        };
        if let Some(limit) = limit {
            let r = ratio_median(&per[sc].lat_block, &per[raw].lat_block);
            goals.push(Goal {
                what: format!("busy-poll one-way latency at {label} <= {limit}x raw spin floor"),
                measured: format!(
                    "{} ({} vs floor {})",
                    x(r),
                    val(med(&per[sc].lat_block), "ns"),
                    val(med(&per[raw].lat_block), "ns")
                ),
                met: r.map(|r| r <= limit),
            });
        }
    }
    ratio.log_y = false;
    let pending = "Sleeping-receiver rows (shmcast `recv()` with the futex, uring-futex, msg-ring \
                   and eventfd notify backends): **pending notify backends** — not measured yet.";
    p50.note(pending);
    for t in [&mut p50, &mut p99, &mut ratio] {
        t.x_axis = XAxis::Bytes;
    }
    Section {
        title: "a. Point-to-point latency (ping-pong, one-way = RTT/2)".into(),
        text: vec![format!(
            "Per size and block, each mechanism does {} timed round trips (after a warm-up of \
             at least {} round trips and two laps of every ring per size); the p50 table is the median of the per-block medians, p99 \
             pools all samples, the ratio table is the median over {} blocks of \
             median(mechanism) / median(raw spin) in the same block. Receivers: pipe, unix \
             socket and shm+eventfd block in read(2); raw spin and shmcast busy-poll.",
            plan.round_trips, plan.warmup, plan.p2p_blocks
        )],
        tables: vec![p50, p99, ratio],
        goals,
    }
}

fn streaming_section(plan: &Plan, results: &[(usize, Vec<PerMech>)]) -> Section {
    let names: Vec<&str> = MECHS.iter().map(|m| m.name()).collect();
    let sc = MECHS
        .iter()
        .position(|m| *m == Mech::ShmcastBusy)
        .expect("shmcast");
    let mut t = Table::new(
        "streaming",
        "Streaming, 1 sender -> 1 receiver (the RFC's latency column)",
        "ns/message",
        "size",
        &names,
    );
    let others: Vec<usize> = (0..MECHS.len()).filter(|&i| i != sc).collect();
    let ratio_names: Vec<String> = others
        .iter()
        .map(|&i| format!("shmcast / {}", MECHS[i].name()))
        .collect();
    let ratio_refs: Vec<&str> = ratio_names.iter().map(String::as_str).collect();
    let mut ratio = Table::new(
        "streaming-ratio",
        "Streaming: shmcast relative to each mechanism (median of per-block ratios)",
        "x",
        "size",
        &ratio_refs,
    );
    let mut worst: Option<(f64, String)> = None;
    for (size, per) in results {
        let label = size_label(*size);
        t.push(
            &label,
            *size as f64,
            per.iter().map(|p| med(&p.stream_block)).collect(),
        );
        let rs: Vec<Option<f64>> = others
            .iter()
            .map(|&i| ratio_median(&per[sc].stream_block, &per[i].stream_block))
            .collect();
        for (k, &i) in others.iter().enumerate() {
            if MECHS[i] == Mech::RawSpin {
                continue;
            }
            if let Some(r) = rs[k] {
                let worse = match &worst {
                    Some((w, _)) => r > *w,
                    None => true,
                };
                if worse {
                    worst = Some((r, format!("vs {} at {label}", MECHS[i].name())));
                }
            }
        }
        ratio.push(&label, *size as f64, rs);
    }
    ratio.log_y = false;
    let goals = vec![Goal {
        what: "streaming ns/message below pipe, unix socket and shm+eventfd at every size".into(),
        measured: worst.as_ref().map_or("n/a".into(), |(r, at)| {
            format!("worst shmcast/other ratio {r:.2}x ({at})")
        }),
        met: worst.map(|(r, _)| r < 1.0),
    }];
    Section {
        title: "b. Streaming (one sender streams N messages, total time / N)".into(),
        text: vec![format!(
            "N = {}..{} messages per run depending on size; {} blocks; the time runs from the \
             sender's first send to the receiver's last receive (CLOCK_MONOTONIC in both \
             processes). Receivers check every message's sequence number.",
            plan.stream.1, plan.stream.2, plan.p2p_blocks
        )],
        tables: vec![t, ratio],
        goals,
    }
}
