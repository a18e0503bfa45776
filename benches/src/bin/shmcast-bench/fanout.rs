//! c. Broadcast fan-out and d. multicast (competing receivers).
//!
//! Per message size, `max(receivers)` worker processes are spawned once,
//! all pinned to the receiving CPU; each holds the read end of its own pipe,
//! unix socket and shm+eventfd ring, and an attachment to a shmcast
//! broadcast and a shmcast multicast channel. A run uses the first N
//! workers; the others sleep in a blocking read of their control pipe. Per
//! block, for every N, every broadcast mechanism runs (rotated order), then
//! multicast:
//!
//! - pipe / unix socket / shm+eventfd: the sender writes each message to
//!   each of the N receivers' own pipe / socket / ring (+ eventfd write);
//! - shmcast broadcast: one `try_send` per message into one ring that all N
//!   receivers read;
//! - shmcast multicast: one `try_send` per message; the N receivers compete,
//!   each message reaches one of them; N end markers (tagged messages) stop
//!   them.
//!
//! Receivers block in `read(2)` for pipes, sockets and eventfds. shmcast
//! receivers run twice: in the blocking `recv` with the receiver's defaults
//! ("recv": default backend; `Spin::Auto`, which spins only while the
//! machine has a CPU per party, so with more than one receiver here they
//! sleep at once) and polling (`try_recv`, `sched_yield` when empty).
//!
//! A sender that finds no room sleeps (blocking write, or 20 µs sleeps for
//! the rings, whose CPU time is subtracted), so its **CPU time** per message
//! is its own cost of sending (failed attempts and wake syscalls included),
//! which is what the RFC's "sender side" measures on a machine with a CPU
//! per receiver; the wall time per message on 2 CPUs is bounded by the
//! receivers sharing one CPU, and is reported next to it. (A blocking
//! `write(2)` that has to wait still counts its scheduling overhead: a pipe
//! or socket sender cannot tell it apart.)

use std::rc::Rc;
use std::time::Duration;

use rustix::event::{eventfd, EventfdFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rustix::pipe::{pipe_with, PipeFlags};
use shmcast::{attach, ChannelBuilder, Envelope, Mode, Role, TrySendError};
use shmcast_benches::mech::{
    seq_of, stamp, take_sleep_cpu_ns, EfdRx, EfdTx, FdRx, FdTx, RingLayout, RxMode, ShmcastRx,
    ShmcastTx, SpscRx, SpscTx, Tx, Wait, Waiter,
};
use shmcast_benches::report::{Table, XAxis};
use shmcast_benches::sys::{self, now_ns, thread_cpu_ns, Arena};
use shmcast_benches::worker::{record, Args, Control, Worker};

use crate::p2p::{capacity, sink, Sunk};
use crate::{
    channel_name, count_for, med, op, progress, ratio_median, size_label, val, x, Goal, Mech, Plan,
    Res, Section,
};

/// The broadcast mechanisms, in table order.
const MECHS: [Mech; 5] = [
    Mech::Pipe,
    Mech::Unix,
    Mech::ShmEventfd,
    Mech::ShmcastRecv,
    Mech::ShmcastPolling,
];

/// The multicast receive modes.
const MCAST: [Mech; 2] = [Mech::ShmcastRecv, Mech::ShmcastPolling];

/// Tag of the multicast end markers.
const END_TAG: u64 = 0xE17D;

/// What a sender does when it finds no room.
const FULL_WAIT: Wait = Wait::Sleep(Duration::from_micros(20));

/// The receive mode of a shmcast mechanism.
fn rx_mode(m: Mech) -> RxMode {
    match m {
        Mech::ShmcastPolling => RxMode::Poll(Wait::Yield),
        _ => RxMode::Recv,
    }
}

/// The column name of a mechanism in these tables.
fn name(m: Mech) -> &'static str {
    match m {
        Mech::ShmcastRecv => "shmcast (recv)",
        other => other.name(),
    }
}

/// One run's numbers.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    /// Sender CPU time per message (ns).
    cpu: f64,
    /// Sender wall time per message (ns).
    wall: f64,
    /// Median over receivers of each one's receive rate (messages/s; each
    /// the median over chunks of its run).
    rate: f64,
    /// shmcast: wake syscalls per message.
    wakes: f64,
}

/// The sending side of one size.
struct Senders {
    workers: Vec<Worker>,
    pipes: Vec<FdTx>,
    socks: Vec<FdTx>,
    efds: Vec<EfdTx>,
    bcast: ShmcastTx,
    mcast: ShmcastTx,
}

/// Per size: `bcast[n][mech]` and `mcast[n][mode]`, a run per block.
struct SizeResult {
    size: usize,
    bcast: Vec<Vec<Vec<Run>>>,
    mcast: Vec<Vec<Vec<Run>>>,
}

pub(crate) fn run(plan: &Plan, broadcast: bool, multicast: bool) -> Res<Vec<Section>> {
    sys::pin_to_cpu(plan.cpu_send)?;
    let mut results = Vec::new();
    for &size in &plan.fan_sizes {
        results.push(run_size(plan, size, broadcast, multicast)?);
    }
    let mut out = Vec::new();
    if broadcast {
        out.push(broadcast_section(plan, &results));
    }
    if multicast {
        out.push(multicast_section(plan, &results));
    }
    Ok(out)
}

fn run_size(plan: &Plan, size: usize, broadcast: bool, multicast: bool) -> Res<SizeResult> {
    let nmax = plan.fan_receivers.iter().copied().max().unwrap_or(1);
    let cap = capacity(size);
    let lay = RingLayout::new(cap, size);
    let arena = Rc::new(Arena::create("shmcast-bench-fan", nmax * lay.bytes())?);
    let bname = channel_name(&format!("bcast{size}"));
    let mname = channel_name(&format!("mcast{size}"));
    let bcast = ChannelBuilder::new(&bname)
        .mode(Mode::Broadcast)
        .capacity(cap as u64)
        .max_message(size as u32)
        .eventfds(true)
        .create()?;
    let mcast = ChannelBuilder::new(&mname)
        .mode(Mode::Multicast)
        .capacity(cap as u64)
        .max_message(size as u32)
        .eventfds(true)
        .create()?;
    let mut s = Senders {
        workers: Vec::new(),
        pipes: Vec::new(),
        socks: Vec::new(),
        efds: Vec::new(),
        bcast: ShmcastTx {
            tx: bcast.sender()?,
            full: FULL_WAIT,
        },
        mcast: ShmcastTx {
            tx: mcast.sender()?,
            full: FULL_WAIT,
        },
    };
    progress(&format!(
        "fan-out {}: spawning {nmax} receiver processes ({cap} slots per ring)",
        size_label(size)
    ));
    for i in 0..nmax {
        let (pr, pw) = pipe_with(PipeFlags::CLOEXEC)?;
        let (sa, sb) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let efd = eventfd(0, EventfdFlags::CLOEXEC)?;
        let fds = vec![arena.fd().try_clone_to_owned()?, pr, sb, efd.try_clone()?];
        let args = vec![
            "fan".to_owned(),
            format!("cpu={}", plan.cpu_recv),
            format!("size={size}"),
            format!("cap={cap}"),
            format!("idx={i}"),
            format!("arena={}", sys::raw(&fds[0])),
            format!("pipe={}", sys::raw(&fds[1])),
            format!("sock={}", sys::raw(&fds[2])),
            format!("efd={}", sys::raw(&fds[3])),
            format!("bcast={bname}"),
            format!("mcast={mname}"),
        ];
        s.workers
            .push(Worker::spawn(&format!("fan {size} B #{i}"), &args, fds)?);
        s.pipes.push(FdTx::new(pw));
        s.socks.push(FdTx::new(sa));
        s.efds.push(EfdTx::new(
            SpscTx::new(arena.clone(), i * lay.bytes(), lay, FULL_WAIT),
            efd,
        ));
    }
    for w in &mut s.workers {
        expect(w, op::READY)?;
    }
    let msgs = count_for(plan.fan_msgs, size);
    let mut msg = vec![0xa5u8; size];
    progress(&format!(
        "fan-out {}: warm-up ({msgs} messages per run)",
        size_label(size)
    ));
    // Touch every slot of every ring once before timing.
    let warm = msgs.clamp(2 * cap, 2_000);
    if broadcast {
        for &m in &MECHS {
            bcast_run(&mut s, m, nmax, warm, &mut msg)?;
        }
    }
    if multicast {
        for &m in &MCAST {
            mcast_run(&mut s, m, nmax, warm, &mut msg)?;
        }
    }
    let ns = &plan.fan_receivers;
    let mut res = SizeResult {
        size,
        bcast: vec![vec![Vec::new(); MECHS.len()]; ns.len()],
        mcast: vec![vec![Vec::new(); MCAST.len()]; ns.len()],
    };
    for block in 0..plan.fan_blocks {
        progress(&format!(
            "fan-out {}: block {}/{}",
            size_label(size),
            block + 1,
            plan.fan_blocks
        ));
        for (ni, &n) in ns.iter().enumerate() {
            if broadcast {
                let mut order: Vec<usize> = (0..MECHS.len()).collect();
                order.rotate_left(block % MECHS.len());
                for i in order {
                    let r = bcast_run(&mut s, MECHS[i], n, msgs, &mut msg)?;
                    res.bcast[ni][i].push(r);
                }
            }
            if multicast {
                for (k, &m) in MCAST.iter().enumerate() {
                    let r = mcast_run(&mut s, m, n, msgs, &mut msg)?;
                    res.mcast[ni][k].push(r);
                }
            }
        }
    }
    for w in s.workers.drain(..) {
        w.finish(record(&[op::QUIT]))?;
    }
    drop(s);
    bcast.destroy();
    mcast.destroy();
    Ok(res)
}

fn expect(worker: &mut Worker, code: u64) -> Res<[u64; 8]> {
    let r = worker.recv()?;
    if r[0] != code {
        return Err(format!("worker answered {} where {code} was expected", r[0]).into());
    }
    Ok(r)
}

/// Send `n` messages stamped 0..n, each to every one of `txs`.
fn fan_send<T: Tx>(txs: &mut [T], msg: &mut [u8], n: usize) {
    for i in 0..n {
        stamp(msg, i as u64);
        for t in txs.iter_mut() {
            t.send(msg);
        }
    }
}

/// The sender's clocks around a run: CPU time without sleeps, wall time,
/// wake syscalls of a shmcast sender.
struct Clocks {
    cpu: u64,
    wall: u64,
    wakes: u64,
}

impl Clocks {
    fn now(tx: &ShmcastTx) -> Clocks {
        Clocks {
            cpu: thread_cpu_ns() - take_sleep_cpu_ns(),
            wall: now_ns(),
            wakes: tx.tx.stats().syscalls,
        }
    }

    fn run_since(start: &Clocks, end: &Clocks, msgs: usize, rate: f64) -> Run {
        let n = msgs as f64;
        Run {
            cpu: end.cpu.saturating_sub(start.cpu) as f64 / n,
            wall: end.wall.saturating_sub(start.wall) as f64 / n,
            rate,
            wakes: end.wakes.saturating_sub(start.wakes) as f64 / n,
        }
    }
}

/// Broadcast `msgs` messages to the first `n` workers through `m`.
fn bcast_run(s: &mut Senders, m: Mech, n: usize, msgs: usize, msg: &mut [u8]) -> Res<Run> {
    for w in &mut s.workers[..n] {
        w.send(record(&[op::BCAST, m.code(), msgs as u64]))?;
    }
    for w in &mut s.workers[..n] {
        expect(w, op::READY)?;
    }
    take_sleep_cpu_ns();
    let start = Clocks::now(&s.bcast);
    match m {
        Mech::Pipe => fan_send(&mut s.pipes[..n], msg, msgs),
        Mech::Unix => fan_send(&mut s.socks[..n], msg, msgs),
        Mech::ShmEventfd => fan_send(&mut s.efds[..n], msg, msgs),
        _ => fan_send(std::slice::from_mut(&mut s.bcast), msg, msgs),
    }
    let end = Clocks::now(&s.bcast);
    let mut rates = Vec::with_capacity(n);
    for w in &mut s.workers[..n] {
        let r = expect(w, op::DONE)?;
        let (sunk, count) = (Sunk::from_record(&r), r[5]);
        if sunk.bad != 0 || count != msgs as u64 {
            return Err(format!(
                "{}: a receiver got {count} of {msgs} messages, {} out of order",
                m.name(),
                sunk.bad
            )
            .into());
        }
        rates.push(1e9 / sunk.chunk_ns);
    }
    let rate = med(&rates).unwrap_or(f64::NAN);
    Ok(Clocks::run_since(&start, &end, msgs, rate))
}

/// Send `msgs` messages to the first `n` workers as competing receivers in
/// receive mode `m`.
fn mcast_run(s: &mut Senders, m: Mech, n: usize, msgs: usize, msg: &mut [u8]) -> Res<Run> {
    for w in &mut s.workers[..n] {
        w.send(record(&[op::MCAST, m.code()]))?;
    }
    for w in &mut s.workers[..n] {
        expect(w, op::READY)?;
    }
    take_sleep_cpu_ns();
    let start = Clocks::now(&s.mcast);
    fan_send(std::slice::from_mut(&mut s.mcast), msg, msgs);
    let end = Clocks::now(&s.mcast);
    for _ in 0..n {
        let mut w = Waiter::new(FULL_WAIT);
        loop {
            match s.mcast.tx.try_send_with(Envelope::tagged(END_TAG), msg) {
                Ok(_) => break,
                Err(TrySendError::Full) => w.wait("multicast end marker"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut total = 0;
    for w in &mut s.workers[..n] {
        let r = expect(w, op::DONE)?;
        if r[2] != 0 {
            return Err(format!("multicast: a receiver saw {} messages out of order", r[2]).into());
        }
        total += r[1];
    }
    if total != msgs as u64 {
        return Err(format!("multicast: receivers got {total} of {msgs} messages").into());
    }
    Ok(Clocks::run_since(&start, &end, msgs, f64::NAN))
}

/// The worker: one receiver of every mechanism.
pub(crate) fn worker(args: &Args) -> Res<()> {
    let size = args.num("size")? as usize;
    let lay = RingLayout::new(args.num("cap")? as usize, size);
    let idx = args.num("idx")? as usize;
    let arena = Rc::new(Arena::open(args.fd("arena")?)?);
    let mut pipe = FdRx::new(args.fd("pipe")?);
    let mut sock = FdRx::new(args.fd("sock")?);
    let mut efd = EfdRx::new(
        SpscRx::new(arena, idx * lay.bytes(), lay, Wait::Spin),
        args.fd("efd")?,
    );
    let bcast = attach(args.get("bcast")?, Role::Recv)?;
    let mcast = attach(args.get("mcast")?, Role::Recv)?;
    let mut ctl = Control::new();
    ctl.reply(record(&[op::READY]))?;
    let mut buf = vec![0u8; size];
    while let Some(cmd) = ctl.command()? {
        let mech = Mech::from_code(cmd[1]);
        match (cmd[0], mech) {
            (op::QUIT, _) => break,
            (op::BCAST, Some(m)) => {
                let n = cmd[2];
                let sunk = match m {
                    Mech::Pipe => {
                        ctl.reply(record(&[op::READY]))?;
                        sink(&mut pipe, &mut buf, n)
                    }
                    Mech::Unix => {
                        ctl.reply(record(&[op::READY]))?;
                        sink(&mut sock, &mut buf, n)
                    }
                    Mech::ShmEventfd => {
                        ctl.reply(record(&[op::READY]))?;
                        sink(&mut efd, &mut buf, n)
                    }
                    Mech::ShmcastRecv | Mech::ShmcastPolling => {
                        // Join (at the current tail) before telling the
                        // sender to start; leave after the run.
                        let mut rx = ShmcastRx {
                            rx: bcast.receiver()?,
                            mode: rx_mode(m),
                        };
                        ctl.reply(record(&[op::READY]))?;
                        sink(&mut rx, &mut buf, n)
                    }
                    _ => return Err(format!("fan worker: bad mechanism {}", cmd[1]).into()),
                };
                ctl.reply(sunk.record(n))?;
            }
            (op::MCAST, Some(m)) => {
                let mut rx = ShmcastRx {
                    rx: mcast.receiver()?,
                    mode: rx_mode(m),
                };
                ctl.reply(record(&[op::READY]))?;
                let (count, bad) = compete(&mut rx, &mut buf);
                ctl.reply(record(&[op::DONE, count, bad]))?;
            }
            _ => return Err(format!("fan worker: bad command {cmd:?}").into()),
        }
    }
    Ok(())
}

/// Receive as a competing consumer until an end marker; returns (messages,
/// messages whose sequence number did not increase).
fn compete(rx: &mut ShmcastRx, buf: &mut [u8]) -> (u64, u64) {
    let (mut count, mut bad) = (0u64, 0u64);
    let mut prev: Option<u64> = None;
    loop {
        let info = rx.recv_info(buf);
        if info.tag == END_TAG {
            return (count, bad);
        }
        let s = seq_of(buf);
        bad += u64::from(prev.is_some_and(|p| s <= p));
        prev = Some(s);
        count += 1;
    }
}

/// Which number of a [`Run`] a table shows.
type Metric = fn(&Run) -> f64;

/// A per-size table: file stem, what, unit, metric.
type MetricTable = (&'static str, &'static str, &'static str, Metric);

fn pick(runs: &[Run], f: Metric) -> Vec<f64> {
    runs.iter().map(f).collect()
}

fn cpu(r: &Run) -> f64 {
    r.cpu
}

fn broadcast_section(plan: &Plan, results: &[SizeResult]) -> Section {
    let names: Vec<&str> = MECHS.iter().map(|m| name(*m)).collect();
    let ns = &plan.fan_receivers;
    let (lo, hi) = (0, ns.len() - 1);
    let (nlo, nhi) = (ns[lo], ns[hi]);
    let pos = |m: Mech| MECHS.iter().position(|x| *x == m).expect("mechanism");
    let (sc, poll, pipe) = (
        pos(Mech::ShmcastRecv),
        pos(Mech::ShmcastPolling),
        pos(Mech::Pipe),
    );
    let mut tables = Vec::new();
    let mut summary = Table::new(
        &format!("broadcast-{nhi}-sender"),
        &format!("Broadcast to {nhi} receivers, sender side (CPU time)"),
        "ns/message",
        "size",
        &names,
    );
    let mut scaling = Table::new(
        "broadcast-scaling",
        &format!(
            "Broadcast sender CPU cost, {nhi} receivers relative to {nlo} (median of per-block ratios)"
        ),
        "x",
        "size",
        &names,
    );
    scaling.log_y = false;
    let size_cols: Vec<String> = results.iter().map(|r| size_label(r.size)).collect();
    let size_refs: Vec<&str> = size_cols.iter().map(String::as_str).collect();
    let mut wakes = Table::new(
        "broadcast-wake-syscalls",
        "Broadcast, shmcast (recv): the sender's wake syscalls per message",
        "syscalls/message",
        "receivers",
        &size_refs,
    );
    wakes.x_axis = XAxis::Count;
    wakes.log_y = false;
    for (ni, &n) in ns.iter().enumerate() {
        wakes.push(
            n.to_string(),
            n as f64,
            results
                .iter()
                .map(|r| med(&pick(&r.bcast[ni][sc], |r| r.wakes)))
                .collect(),
        );
    }
    let mut goals = Vec::new();
    for r in results {
        let label = size_label(r.size);
        let metric_tables: [MetricTable; 3] = [
            ("sender-cpu", "sender CPU time", "ns/message", cpu),
            ("sender-wall", "sender wall time", "ns/message", |r| r.wall),
            (
                "receiver-rate",
                "per-receiver rate (median over receivers)",
                "M msg/s",
                |r| r.rate / 1e6,
            ),
        ];
        for (stem, what, unit, f) in metric_tables {
            let mut t = Table::new(
                &format!("broadcast-{}-{stem}", r.size),
                &format!("Broadcast {label}, {what}"),
                unit,
                "receivers",
                &names,
            );
            t.x_axis = XAxis::Count;
            for (ni, &n) in ns.iter().enumerate() {
                t.push(
                    n.to_string(),
                    n as f64,
                    r.bcast[ni].iter().map(|runs| med(&pick(runs, f))).collect(),
                );
            }
            tables.push(t);
        }
        summary.push(
            &label,
            r.size as f64,
            r.bcast[hi]
                .iter()
                .map(|runs| med(&pick(runs, cpu)))
                .collect(),
        );
        scaling.push(
            &label,
            r.size as f64,
            (0..MECHS.len())
                .map(|i| ratio_median(&pick(&r.bcast[hi][i], cpu), &pick(&r.bcast[lo][i], cpu)))
                .collect(),
        );
        let grow =
            |i: usize| ratio_median(&pick(&r.bcast[hi][i], cpu), &pick(&r.bcast[lo][i], cpu));
        let g = grow(sc);
        goals.push(Goal {
            what: format!("broadcast sender cost at {nhi} receivers <= 2x at {nlo} ({label})"),
            measured: format!(
                "recv: {} ({} vs {}); polling: {}",
                x(g),
                val(med(&pick(&r.bcast[hi][sc], cpu)), "ns"),
                val(med(&pick(&r.bcast[lo][sc], cpu)), "ns"),
                x(grow(poll))
            ),
            met: g.map(|g| g <= 2.0),
        });
        let below =
            |i: usize| ratio_median(&pick(&r.bcast[hi][pipe], cpu), &pick(&r.bcast[hi][i], cpu));
        let b = below(sc);
        goals.push(Goal {
            what: format!("broadcast sender cost >= 10x below pipe at {nhi} receivers ({label})"),
            measured: format!("pipe / shmcast: recv {}, polling {}", x(b), x(below(poll))),
            met: b.map(|b| b >= 10.0),
        });
    }
    summary.note(
        "shmcast (recv): receivers in the blocking recv (default backend; Spin::Auto, so they \
         sleep at once when the parties outnumber the CPUs); the sender's try_send wakes them \
         (one wake syscall per publish at most, however many sleep). shmcast (polling): \
         try_recv + sched_yield.",
    );
    let mut all = vec![summary, scaling, wakes];
    all.extend(tables);
    Section {
        title: "c. Broadcast fan-out".into(),
        text: vec![format!(
            "{} blocks; per run {}..{} messages depending on size; receivers {:?}, all on CPU {} \
             (the sender alone on CPU {}). Sender CPU time is the RFC's sender-side cost: a \
             sender that finds no room sleeps (ring senders: 20 us sleeps whose CPU time is \
             subtracted; pipe and socket senders block in write(2)); wall time and \
             per-receiver rates show what 2 CPUs sustain with every receiver sharing one CPU. \
             pipe / unix sock / shm+eventfd: one per receiver, the sender writes each. shmcast: \
             one broadcast ring. Goals are judged on shmcast (recv).",
            plan.fan_blocks,
            plan.fan_msgs.1,
            plan.fan_msgs.2,
            plan.fan_receivers,
            plan.cpu_recv,
            plan.cpu_send
        )],
        tables: all,
        goals,
    }
}

fn multicast_section(plan: &Plan, results: &[SizeResult]) -> Section {
    let ns = &plan.fan_receivers;
    let mut cols = Vec::new();
    for r in results {
        for m in MCAST {
            cols.push(format!("{} {}", size_label(r.size), name(m)));
        }
    }
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let (lo, hi) = (0, ns.len() - 1);
    let mut tables = Vec::new();
    let metric_tables: [MetricTable; 3] = [
        ("sender-cpu", "sender CPU time", "ns/message", cpu),
        ("sender-wall", "sender wall time", "ns/message", |r| r.wall),
        (
            "wake-syscalls",
            "sender's wake syscalls",
            "syscalls/message",
            |r| r.wakes,
        ),
    ];
    for (stem, what, unit, f) in metric_tables {
        let mut t = Table::new(
            &format!("multicast-{stem}"),
            &format!("Multicast to N competing receivers, {what}"),
            unit,
            "receivers",
            &col_refs,
        );
        t.x_axis = XAxis::Count;
        t.log_y = stem != "wake-syscalls";
        for (ni, &n) in ns.iter().enumerate() {
            t.push(
                n.to_string(),
                n as f64,
                results
                    .iter()
                    .flat_map(|r| r.mcast[ni].iter().map(|runs| med(&pick(runs, f))))
                    .collect(),
            );
        }
        tables.push(t);
    }
    let mut goals = Vec::new();
    for r in results {
        let grow =
            |k: usize| ratio_median(&pick(&r.mcast[hi][k], cpu), &pick(&r.mcast[lo][k], cpu));
        let g = grow(0);
        goals.push(Goal {
            what: format!(
                "multicast sender cost at {} receivers <= 1.5x at {} ({})",
                ns[hi],
                ns[lo],
                size_label(r.size)
            ),
            measured: format!(
                "recv: {} ({} vs {}); polling: {}",
                x(g),
                val(med(&pick(&r.mcast[hi][0], cpu)), "ns"),
                val(med(&pick(&r.mcast[lo][0], cpu)), "ns"),
                x(grow(1))
            ),
            met: g.map(|g| g <= 1.5),
        });
    }
    Section {
        title: "d. Multicast (competing receivers)".into(),
        text: vec![format!(
            "shmcast multicast ring; the same worker processes as section c, {} blocks, \
             receivers {:?} in recv (default backend and spin; a publish wakes one sleeper, \
             round-robin) or polling (try_recv + sched_yield); every message reaches exactly \
             one receiver (checked: counts add up, each receiver sees increasing sequence \
             numbers). Goals are judged on recv.",
            plan.fan_blocks, plan.fan_receivers
        )],
        tables,
        goals,
    }
}
