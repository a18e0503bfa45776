//! a. Point-to-point latency, b. streaming, and the measurements of f.
//! (notify backends), 1 sender → 1 receiver.
//!
//! One worker process per message size, pinned to the receiving CPU, holds
//! the far end of every mechanism: two pipes, a unix stream socket pair, two
//! shm+eventfd rings, two raw spin rings, two bare-futex rings (a raw ring
//! plus a shared futex word), shmcast unicast channels (one each way per
//! receive mode group, see below). Per size, after a warm-up of every mechanism, `blocks` blocks
//! run; in each block every mechanism (rotated order) does
//!
//! - **ping-pong**: `round_trips` round trips, each timed on its own; the
//!   one-way latency is RTT / 2. Per block: the median; overall: the median
//!   of the block medians, the p99 of all samples, and the median over
//!   blocks of `iqm(mechanism) / iqm(raw spin)` of the same block, where
//!   iqm is the interquartile mean ([`shmcast_benches::stats::interquartile_mean`]:
//!   the TSC of our VM advances in ~10 ns steps, so RTT/2 samples come in
//!   5 ns steps and a median of them moves in 5 ns steps, 6–8 % of the
//!   64-byte floor);
//! - **streaming**: the parent sends N messages back to back, the worker
//!   receives them (checking their order); ns/message = (worker's last
//!   receive − parent's first send) / N, the RFC's "latency" column.
//!
//! shmcast runs in several receive modes: a busy-polling receiver
//! (`try_recv` spin) and the blocking `recv` with the receiver's defaults
//! (`Spin::Auto`, default backend) share one pair of channels; `recv`
//! without spin, sleeping in each notify backend, gets a pair of channels
//! per backend whose receivers are created with that backend (rather than
//! switched with `set_backend`: see [`pair_of`]). A backend that cannot work
//! here is reported, not measured. Senders always use `try_send`, which runs
//! the eventcount check and wakes sleepers.
//!
//! The bare futex mechanism is the baseline of section f: the same
//! ping-pong, each side sleeping in `FUTEX_WAIT` on a 32-bit word in the
//! shared arena every time, woken by the other's store and `FUTEX_WAKE(1)`
//! (the 64-B message itself goes through a raw ring beside the word). It
//! runs in the same blocks as the shmcast sleeping modes, so section f
//! compares them per block.
//!
//! At the first size, each block also measures the **send cost** for
//! section f: the parent times each `try_send` call while the worker's
//! receiver busy-polls (nobody asleep) and while it sleeps in each backend,
//! and reads the sender's wake-syscall counter.
//!
//! Rings hold [`capacity`] slots for every ring-based mechanism alike.
//!
//! A peer library runs alongside: iceoryx2 publish-subscribe with
//! busy-polling subscribers ([`shmcast_benches::iox`]), one service each way
//! per size, subscriber buffers as deep as the rings. If iceoryx2 cannot
//! set up here (the parent's node and ports), it is reported, not
//! measured; the worker then opens what the parent created, and a failure
//! there ends the run with its error.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use rustix::event::{eventfd, EventfdFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rustix::pipe::{pipe_with, PipeFlags};
use shmcast::{attach, BackendKind, ChannelBuilder, Role, Spin};
use shmcast_benches::iox::{self, IoxRx, IoxTx};
use shmcast_benches::mech::{
    seq_of, stamp, EfdRx, EfdTx, FdRx, FdTx, FutexRx, FutexTx, FutexWord, RingLayout, Rx, RxMode,
    ShmcastRx, ShmcastTx, SpscRx, SpscTx, Tx, Wait,
};
use shmcast_benches::report::{Table, XAxis};
use shmcast_benches::stats;
use shmcast_benches::sys::{self, now_ns, Arena, Ticks};
use shmcast_benches::worker::{record, Args, Control, Worker};

use crate::{
    channel_name, count_for, med, op, progress, ratio_median, size_label, val, x, Goal, Mech, Plan,
    Res, Section,
};

/// The mechanisms of this section, in table order.
pub(crate) const MECHS: [Mech; 12] = [
    Mech::Pipe,
    Mech::Unix,
    Mech::ShmEventfd,
    Mech::BareFutex,
    Mech::RawSpin,
    Mech::Iceoryx2,
    Mech::ShmcastBusy,
    Mech::ShmcastRecv,
    Mech::ShmcastSleep(BackendKind::Futex),
    Mech::ShmcastSleep(BackendKind::UringFutex),
    Mech::ShmcastSleep(BackendKind::MsgRing),
    Mech::ShmcastSleep(BackendKind::Eventfd),
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
    futex_tx: FutexTx,
    futex_rx: FutexRx,
    raw_tx: SpscTx,
    raw_rx: SpscRx,
    /// shmcast channel pairs ([`pair_of`]): our sender and our receiver.
    shmcast: Vec<(ShmcastTx, ShmcastRx)>,
    /// iceoryx2 publisher and subscriber, unless it could not set up.
    iox: Option<(IoxTx, IoxRx)>,
    /// Their node (declared after them: dropped after them).
    _iox_node: Option<iox::Node>,
}

/// Number of shmcast channel pairs: the default one, then one per backend.
const PAIRS: usize = 1 + BackendKind::ALL.len();

/// The shmcast channel pair of a mechanism: 0 for the busy-poll and default
/// `recv` modes, `1 + i` for sleeping in `BackendKind::ALL[i]`. Receivers
/// keep the backend they were created with, so a run measures one backend
/// and nothing else. (Switching with `set_backend` from msg-ring to futex
/// lost a wake across processes at `534705c`; see `results/README.md`.)
fn pair_of(m: Mech) -> usize {
    match m {
        Mech::ShmcastSleep(k) => {
            1 + BackendKind::ALL
                .iter()
                .position(|b| *b == k)
                .expect("every backend is in ALL")
        }
        _ => 0,
    }
}

/// The backend the receivers of pair `p` are created with (`None`: the
/// default, futex unless `SHMCAST_NOTIFY` says otherwise).
fn pair_backend(p: usize) -> Option<BackendKind> {
    p.checked_sub(1).map(|i| BackendKind::ALL[i])
}

/// Run `$body` with `$tx`/`$rx` bound to the ends of `$mech`, monomorphised
/// per mechanism (no dynamic dispatch inside timed loops). Every shmcast
/// mode uses the same channels (configured by [`configure`] first).
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
            Mech::BareFutex => {
                let ($tx, $rx) = (&mut e.futex_tx, &mut e.futex_rx);
                $body
            }
            Mech::RawSpin => {
                let ($tx, $rx) = (&mut e.raw_tx, &mut e.raw_rx);
                $body
            }
            Mech::Iceoryx2 => {
                let pair = e
                    .iox
                    .as_mut()
                    .expect("iceoryx2 is only run where it set up");
                let ($tx, $rx) = (&mut pair.0, &mut pair.1);
                $body
            }
            m @ (Mech::ShmcastBusy
            | Mech::ShmcastPolling
            | Mech::ShmcastRecv
            | Mech::ShmcastSleep(_)) => {
                let pair = &mut e.shmcast[pair_of(m)];
                let ($tx, $rx) = (&mut pair.0, &mut pair.1);
                $body
            }
        }
    }};
}

/// Put our receiver of `m`'s shmcast pair in the receive mode of `m`, or
/// busy-polling if `busy` (other mechanisms: nothing to do).
fn configure(ends: &mut Ends, m: Mech, busy: bool) {
    let (spin, mode) = match m {
        _ if busy => (Spin::Auto, RxMode::Poll(Wait::Spin)),
        Mech::ShmcastBusy => (Spin::Auto, RxMode::Poll(Wait::Spin)),
        Mech::ShmcastPolling => (Spin::Auto, RxMode::Poll(Wait::Yield)),
        Mech::ShmcastRecv => (Spin::Auto, RxMode::Recv),
        Mech::ShmcastSleep(_) => (Spin::Off, RxMode::Recv),
        _ => return,
    };
    let rx = &mut ends.shmcast[pair_of(m)].1;
    rx.rx.set_spin(spin);
    rx.mode = mode;
}

/// A receiver sleeping in `backend` (`None`: the default); `Err` with the
/// reason if that backend cannot work here.
fn receiver_with(
    make: impl FnOnce(Option<BackendKind>) -> Result<shmcast::Receiver, shmcast::OpenError>,
    backend: Option<BackendKind>,
) -> Res<Result<shmcast::Receiver, String>> {
    let rx = make(backend)?;
    Ok(match rx.backend_fallback() {
        Some(why) => Err(why.to_string()),
        None => Ok(rx),
    })
}

/// Where things sit in the arena ("forward" = parent → worker).
#[derive(Clone, Copy, Debug)]
struct Offsets {
    /// Rings: raw forward, raw back, eventfd forward, eventfd back, bare
    /// futex forward, bare futex back.
    rings: [usize; 6],
    /// The bare futex words: forward, back (each on its own 128-byte line).
    words: [usize; 2],
    /// Arena size.
    total: usize,
}

fn offsets(lay: &RingLayout) -> Offsets {
    let l = lay.bytes();
    Offsets {
        rings: [0, l, 2 * l, 3 * l, 4 * l, 5 * l],
        words: [6 * l, 6 * l + 128],
        total: 6 * l + 4096,
    }
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

/// Results of one mechanism at one size.
#[derive(Default, Clone)]
struct PerMech {
    /// Why it was not measured (a notify backend that cannot work here).
    unsupported: Option<String>,
    /// Per block: median one-way latency (ns).
    lat_block: Vec<f64>,
    /// Per block: interquartile mean one-way latency (ns), for ratios.
    lat_block_iqm: Vec<f64>,
    /// All one-way samples (ns).
    lat_all: Vec<f64>,
    /// Per block: streaming ns/message (median over chunks).
    stream_block: Vec<f64>,
    /// Per block: streaming ns/message over the whole run.
    stream_total: Vec<f64>,
}

/// Send-cost measurements of one receive mode (section f).
#[derive(Default, Clone, Debug)]
pub(crate) struct SendCost {
    /// Per block: median `try_send` time (ns).
    pub(crate) block: Vec<f64>,
    /// All samples (ns).
    pub(crate) all: Vec<f64>,
    /// Sends made and wake syscalls / io_uring wakes they caused.
    pub(crate) sends: u64,
    pub(crate) syscalls: u64,
    pub(crate) ring_wakes: u64,
}

/// What section f needs from this module.
#[derive(Debug)]
pub(crate) struct NotifyData {
    /// The message size it was measured at.
    pub(crate) size: usize,
    /// Per backend: why it is unsupported, or its wake-up latency samples
    /// (block medians, all samples) and its send cost with a sleeper.
    pub(crate) backends: Vec<BackendData>,
    /// The bare futex baseline's wake-up latency: per block the median
    /// (aligned with each backend's `wake_block`), and all samples.
    pub(crate) bare_block: Vec<f64>,
    pub(crate) bare_all: Vec<f64>,
    /// Send cost with the receiver busy-polling (nobody asleep).
    pub(crate) awake: SendCost,
    /// The backend receivers get by default.
    pub(crate) default_backend: BackendKind,
}

/// One notify backend's numbers.
#[derive(Debug)]
pub(crate) struct BackendData {
    pub(crate) kind: BackendKind,
    pub(crate) unsupported: Option<String>,
    pub(crate) wake_block: Vec<f64>,
    pub(crate) wake_all: Vec<f64>,
    pub(crate) asleep: SendCost,
}

struct SizeRes {
    size: usize,
    per: Vec<PerMech>,
    awake: SendCost,
    asleep: Vec<SendCost>,
    default_backend: BackendKind,
}

/// Sections a and b (as asked), and the data of section f if `notify`.
pub(crate) fn run(
    plan: &Plan,
    latency: bool,
    streaming: bool,
    notify: bool,
) -> Res<(Vec<Section>, Option<NotifyData>)> {
    sys::pin_to_cpu(plan.cpu_send)?;
    let ticks = Ticks::calibrate(Duration::from_millis(50));
    // Section f alone needs the ping-pong of the first size only.
    let sizes = if latency || streaming {
        plan.p2p_sizes.clone()
    } else {
        plan.p2p_sizes.iter().copied().take(1).collect()
    };
    let mut results = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let what = Runs {
            latency: latency || notify,
            streaming,
            send_cost: notify && i == 0,
        };
        results.push(run_size(plan, &ticks, size, what)?);
    }
    let mut out = Vec::new();
    if latency {
        out.push(latency_section(plan, &results));
    }
    if streaming {
        out.push(streaming_section(plan, &results));
    }
    let notify_data = (notify && !results.is_empty()).then(|| notify_data(&results[0]));
    Ok((out, notify_data))
}

fn notify_data(r: &SizeRes) -> NotifyData {
    let backends = MECHS
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match m {
            Mech::ShmcastSleep(k) => Some(BackendData {
                kind: *k,
                unsupported: r.per[i].unsupported.clone(),
                wake_block: r.per[i].lat_block.clone(),
                wake_all: r.per[i].lat_all.clone(),
                asleep: r.asleep[i].clone(),
            }),
            _ => None,
        })
        .collect();
    let bare = &r.per[MECHS
        .iter()
        .position(|m| *m == Mech::BareFutex)
        .expect("bare futex is in MECHS")];
    NotifyData {
        size: r.size,
        backends,
        bare_block: bare.lat_block.clone(),
        bare_all: bare.lat_all.clone(),
        awake: r.awake.clone(),
        default_backend: r.default_backend,
    }
}

/// Which runs a size gets.
#[derive(Clone, Copy, Debug)]
struct Runs {
    latency: bool,
    streaming: bool,
    send_cost: bool,
}

fn run_size(plan: &Plan, ticks: &Ticks, size: usize, what: Runs) -> Res<SizeRes> {
    let cap = capacity(size);
    let lay = RingLayout::new(cap, size);
    let offs = offsets(&lay);
    let arena = Rc::new(Arena::create("shmcast-bench-p2p", offs.total)?);
    let (fwd_r, fwd_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (back_r, back_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (sock_here, sock_there) = socket_pair()?;
    let efd_fwd = eventfd(0, EventfdFlags::CLOEXEC)?;
    let efd_back = eventfd(0, EventfdFlags::CLOEXEC)?;
    let (ping_name, pong_name) = (
        channel_name(&format!("ping{size}")),
        channel_name(&format!("pong{size}")),
    );
    // eventfds(true): receivers may sleep in the eventfd backend.
    let make = |name: &str| {
        ChannelBuilder::new(name)
            .capacity(cap as u64)
            .max_message(size as u32)
            .eventfds(true)
            .create()
    };
    let mut pings = Vec::new();
    let mut pongs = Vec::new();
    for p in 0..PAIRS {
        pings.push(make(&format!("{ping_name}-{p}"))?);
        pongs.push(make(&format!("{pong_name}-{p}"))?);
    }
    // iceoryx2: our ends first; the worker opens the same services.
    let iox_name = format!("shmcast-bench/{}/p2p{size}", std::process::id());
    let iox_setup = iox::Node::new().and_then(|node| {
        let ends = node.ends(&iox_name, size, cap, true)?;
        Ok((node, ends))
    });

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
        format!("pairs={PAIRS}"),
        format!(
            "iox={}",
            if iox_setup.is_ok() {
                iox_name.as_str()
            } else {
                "-"
            }
        ),
    ];
    let mut worker = Worker::spawn(&format!("p2p {size} B"), &args, fds)?;
    let (unix_tx, unix_rx) = split(sock_here)?;
    // Backends that cannot work here are reported, not measured.
    let mut per = vec![PerMech::default(); MECHS.len()];
    let mut shmcast = Vec::new();
    for p in 0..PAIRS {
        let rx = match receiver_with(|b| pongs[p].receiver_with(b), pair_backend(p))? {
            Ok(rx) => rx,
            Err(why) => {
                for (i, &m) in MECHS.iter().enumerate() {
                    if pair_of(m) == p {
                        progress(&format!("{}: not measured: {why}", m.name()));
                        per[i].unsupported = Some(why.clone());
                    }
                }
                // Keep a receiver so that the worker's sender has a peer.
                pongs[p].receiver()?
            }
        };
        let tx = ShmcastTx {
            tx: pings[p].sender()?,
            full: Wait::Spin,
        };
        let rx = ShmcastRx {
            rx,
            mode: RxMode::Poll(Wait::Spin),
        };
        shmcast.push((tx, rx));
    }
    let default_backend = shmcast[0].1.rx.backend();
    let (iox_node, iox_ends) = match iox_setup {
        Ok((node, ends)) => (Some(node), Some(ends)),
        Err(why) => {
            let i = MECHS
                .iter()
                .position(|m| *m == Mech::Iceoryx2)
                .expect("in MECHS");
            progress(&format!("iceoryx2: not measured: {why}"));
            per[i].unsupported = Some(why.to_string());
            (None, None)
        }
    };
    let mut ends = Ends {
        pipe_tx: FdTx::new(fwd_w),
        pipe_rx: FdRx::new(back_r),
        unix_tx,
        unix_rx,
        efd_tx: EfdTx::new(
            SpscTx::new(arena.clone(), offs.rings[2], lay, Wait::Spin),
            efd_fwd,
        ),
        efd_rx: EfdRx::new(
            SpscRx::new(arena.clone(), offs.rings[3], lay, Wait::Spin),
            efd_back,
        ),
        futex_tx: FutexTx::new(
            SpscTx::new(arena.clone(), offs.rings[4], lay, Wait::Spin),
            FutexWord::new(arena.clone(), offs.words[0]),
        ),
        futex_rx: FutexRx::new(
            SpscRx::new(arena.clone(), offs.rings[5], lay, Wait::Spin),
            FutexWord::new(arena.clone(), offs.words[1]),
        ),
        raw_tx: SpscTx::new(arena.clone(), offs.rings[0], lay, Wait::Spin),
        raw_rx: SpscRx::new(arena.clone(), offs.rings[1], lay, Wait::Spin),
        shmcast,
        iox: iox_ends,
        _iox_node: iox_node,
    };
    expect(&mut worker, op::READY)?;
    let live: Vec<usize> = (0..MECHS.len())
        .filter(|&i| per[i].unsupported.is_none())
        .collect();

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
    let mut io = Io {
        worker: &mut worker,
        ends: &mut ends,
        ticks,
        msg: &mut msg,
        buf: &mut buf,
    };
    for &i in &live {
        let m = MECHS[i];
        if what.latency {
            io.pingpong(m, false, warmup, &mut samples)?;
        }
        if what.streaming {
            io.stream(m, n_stream.clamp(2 * cap, 2_000))?;
        }
    }
    let mut awake = SendCost::default();
    let mut asleep = vec![SendCost::default(); MECHS.len()];
    for block in 0..plan.p2p_blocks {
        progress(&format!(
            "p2p {}: block {}/{}",
            size_label(size),
            block + 1,
            plan.p2p_blocks
        ));
        let mut order = live.clone();
        let turn = block % order.len().max(1);
        order.rotate_left(turn);
        for &i in &order {
            let m = MECHS[i];
            if what.latency {
                io.pingpong(m, false, plan.round_trips, &mut samples)?;
                per[i].lat_all.extend_from_slice(&samples);
                per[i].lat_block.push(med(&samples).unwrap_or(f64::NAN));
                let mut s = samples.clone();
                per[i]
                    .lat_block_iqm
                    .push(shmcast_benches::stats::interquartile_mean(&mut s));
            }
            if what.streaming {
                let (chunked, total) = io.stream(m, n_stream)?;
                per[i].stream_block.push(chunked);
                per[i].stream_total.push(total);
            }
        }
        if what.send_cost {
            // Our receiver busy-polls (so the worker's replies never wake
            // us); the worker's receiver is awake, then asleep per backend.
            let n = plan.round_trips;
            let cost = io.pingpong(Mech::ShmcastBusy, true, n, &mut samples)?;
            awake.add(&samples, cost);
            for &i in &order {
                if let m @ Mech::ShmcastSleep(_) = MECHS[i] {
                    let cost = io.pingpong(m, true, n, &mut samples)?;
                    asleep[i].add(&samples, cost);
                }
            }
        }
    }
    worker.finish(record(&[op::QUIT]))?;
    drop(ends);
    for ch in pings.into_iter().chain(pongs) {
        ch.destroy();
    }
    Ok(SizeRes {
        size,
        per,
        awake,
        asleep,
        default_backend,
    })
}

impl SendCost {
    fn add(&mut self, samples: &[f64], (sends, syscalls, ring_wakes): (u64, u64, u64)) {
        self.block.push(med(samples).unwrap_or(f64::NAN));
        self.all.extend_from_slice(samples);
        self.sends += sends;
        self.syscalls += syscalls;
        self.ring_wakes += ring_wakes;
    }
}

fn expect(worker: &mut Worker, code: u64) -> Res<[u64; 8]> {
    let r = worker.recv()?;
    if r[0] != code {
        return Err(format!("worker answered {} where {code} was expected", r[0]).into());
    }
    Ok(r)
}

/// The parent's side of one size: worker, ends and buffers.
struct Io<'a> {
    worker: &'a mut Worker,
    ends: &'a mut Ends,
    ticks: &'a Ticks,
    msg: &'a mut [u8],
    buf: &'a mut [u8],
}

impl Io<'_> {
    /// `n` timed round trips (after one untimed one) through `m`, the
    /// worker's receiver in `m`'s mode, ours too or, with `time_send`,
    /// busy-polling. Samples in `out`: one-way latencies, or with
    /// `time_send` the duration of each send call (shmcast only). Returns
    /// (sends, wake syscalls, io_uring wakes) of our shmcast sender of `m`'s
    /// pair during the run.
    fn pingpong(
        &mut self,
        m: Mech,
        time_send: bool,
        n: usize,
        out: &mut Vec<f64>,
    ) -> Res<(u64, u64, u64)> {
        configure(self.ends, m, time_send);
        if std::env::var_os("SHMCAST_BENCH_TRACE").is_some() {
            progress(&format!(
                "ping-pong {} x{n} (time sends: {time_send})",
                m.name()
            ));
        }
        self.worker
            .send(record(&[op::PINGPONG, m.code(), n as u64 + 1]))?;
        expect(self.worker, op::READY)?;
        out.clear();
        let pair = pair_of(m);
        let before = self.ends.shmcast[pair].0.tx.stats();
        let (ticks, msg, buf) = (self.ticks, &mut *self.msg, &mut *self.buf);
        if time_send {
            let (tx, rx) = &mut self.ends.shmcast[pair];
            send_timed_loop(tx, rx, ticks, msg, buf, n, out);
        } else {
            with_ends!(*self.ends, m, |tx, rx| ping_loop(
                tx, rx, ticks, msg, buf, n, out
            ));
        }
        let after = self.ends.shmcast[pair].0.tx.stats();
        expect(self.worker, op::DONE)?;
        Ok((
            n as u64 + 1,
            after.syscalls - before.syscalls,
            after.ring_wakes - before.ring_wakes,
        ))
    }

    /// Stream `n` messages; returns ns/message: the receiver's median over
    /// chunks, and the whole run's (first send to last receive) / n.
    fn stream(&mut self, m: Mech, n: usize) -> Res<(f64, f64)> {
        configure(self.ends, m, false);
        if std::env::var_os("SHMCAST_BENCH_TRACE").is_some() {
            progress(&format!("stream {} x{n}", m.name()));
        }
        self.worker
            .send(record(&[op::STREAM, m.code(), n as u64]))?;
        expect(self.worker, op::READY)?;
        let t0 = now_ns();
        let msg = &mut *self.msg;
        with_ends!(*self.ends, m, |tx, _rx| send_loop(tx, msg, n));
        let s = Sunk::from_record(&expect(self.worker, op::DONE)?);
        if s.bad != 0 {
            return Err(format!("{}: {} messages out of order", m.name(), s.bad).into());
        }
        Ok((s.chunk_ns, s.last.saturating_sub(t0) as f64 / n as f64))
    }
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
    // One untimed round trip: the worker may still be settling.
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

/// Ping-pong timing only the send calls.
fn send_timed_loop(
    tx: &mut ShmcastTx,
    rx: &mut ShmcastRx,
    ticks: &Ticks,
    msg: &mut [u8],
    buf: &mut [u8],
    n: usize,
    out: &mut Vec<f64>,
) {
    tx.send(msg);
    rx.recv(buf);
    for i in 0..n {
        stamp(msg, i as u64);
        let t0 = Ticks::read();
        tx.send(msg);
        let t1 = Ticks::read();
        rx.recv(buf);
        out.push(ticks.ns(t1.wrapping_sub(t0)));
    }
}

fn send_loop<T: Tx>(tx: &mut T, msg: &mut [u8], n: usize) {
    for i in 0..n {
        stamp(msg, i as u64);
        tx.send(msg);
    }
}

/// What a receiver measured over a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sunk {
    /// Time of the first and the last receive (CLOCK_MONOTONIC ns).
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// Messages out of order.
    pub(crate) bad: u64,
    /// Median ns/message over chunks of the run ([`stats::chunk_median`]).
    pub(crate) chunk_ns: f64,
}

impl Sunk {
    /// The reply record: `[DONE, first, last, bad, chunk_ns bits, extra]`.
    pub(crate) fn record(&self, extra: u64) -> [u64; 8] {
        record(&[
            op::DONE,
            self.first,
            self.last,
            self.bad,
            self.chunk_ns.to_bits(),
            extra,
        ])
    }

    /// Decode [`Sunk::record`].
    pub(crate) fn from_record(r: &[u64; 8]) -> Sunk {
        Sunk {
            first: r[1],
            last: r[2],
            bad: r[3],
            chunk_ns: f64::from_bits(r[4]),
        }
    }
}

/// Receive `n` messages stamped 0..n, checking their order and taking a
/// timestamp every [`stats::chunk_len`] messages.
pub(crate) fn sink<R: Rx>(rx: &mut R, buf: &mut [u8], n: u64) -> Sunk {
    let chunk = stats::chunk_len(n);
    let mut stamps = Vec::with_capacity((n / chunk) as usize + 2);
    let mut bad = 0;
    for i in 0..n {
        rx.recv(buf);
        if i % chunk == 0 {
            stamps.push(now_ns());
        }
        bad += u64::from(seq_of(buf) != i);
    }
    let last = now_ns();
    Sunk {
        first: stamps.first().copied().unwrap_or(last),
        last,
        bad,
        chunk_ns: stats::chunk_median(&stamps, chunk),
    }
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
    let offs = offsets(&lay);
    let arena = Rc::new(Arena::open(args.fd("arena")?)?);
    let (unix_tx, unix_rx) = split(args.fd("sock")?)?;
    let mut shmcast = Vec::new();
    for p in 0..args.num("pairs")? as usize {
        let ping = attach(&format!("{}-{p}", args.get("ping")?), Role::Recv)?;
        let pong = attach(&format!("{}-{p}", args.get("pong")?), Role::Send)?;
        // A backend that cannot work here falls back to futex; the parent
        // found the same and does not run it.
        let rx = ping.receiver_with(pair_backend(p))?;
        shmcast.push((
            ShmcastTx {
                tx: pong.sender()?,
                full: Wait::Spin,
            },
            ShmcastRx {
                rx,
                mode: RxMode::Poll(Wait::Spin),
            },
        ));
    }
    let mut ends = Ends {
        pipe_tx: FdTx::new(args.fd("pipe_tx")?),
        pipe_rx: FdRx::new(args.fd("pipe_rx")?),
        unix_tx,
        unix_rx,
        efd_tx: EfdTx::new(
            SpscTx::new(arena.clone(), offs.rings[3], lay, Wait::Spin),
            args.fd("efd_tx")?,
        ),
        efd_rx: EfdRx::new(
            SpscRx::new(arena.clone(), offs.rings[2], lay, Wait::Spin),
            args.fd("efd_rx")?,
        ),
        futex_tx: FutexTx::new(
            SpscTx::new(arena.clone(), offs.rings[5], lay, Wait::Spin),
            FutexWord::new(arena.clone(), offs.words[1]),
        ),
        futex_rx: FutexRx::new(
            SpscRx::new(arena.clone(), offs.rings[4], lay, Wait::Spin),
            FutexWord::new(arena.clone(), offs.words[0]),
        ),
        raw_tx: SpscTx::new(arena.clone(), offs.rings[1], lay, Wait::Spin),
        raw_rx: SpscRx::new(arena.clone(), offs.rings[0], lay, Wait::Spin),
        shmcast,
        iox: None,
        _iox_node: None,
    };
    // iceoryx2, where the parent could set it up.
    match args.get("iox")? {
        "-" => {}
        name => {
            let node = iox::Node::new()?;
            ends.iox = Some(node.ends(name, size, lay.capacity, false)?);
            ends._iox_node = Some(node);
        }
    }
    let mut ctl = Control::new();
    ctl.reply(record(&[op::READY]))?;
    let mut buf = vec![0u8; size];
    while let Some(cmd) = ctl.command()? {
        let mech = Mech::from_code(cmd[1]);
        match (cmd[0], mech) {
            (op::QUIT, _) => break,
            (op::PINGPONG | op::STREAM, Some(m)) => {
                configure(&mut ends, m, false);
                ctl.reply(record(&[op::READY]))?;
                if cmd[0] == op::PINGPONG {
                    with_ends!(ends, m, |tx, rx| pong_loop(tx, rx, &mut buf, cmd[2]));
                    ctl.reply(record(&[op::DONE]))?;
                } else {
                    let sunk = with_ends!(ends, m, |_tx, rx| sink(rx, &mut buf, cmd[2]));
                    ctl.reply(sunk.record(0))?;
                }
            }
            _ => return Err(format!("p2p worker: bad command {cmd:?}").into()),
        }
    }
    Ok(())
}

fn latency_section(plan: &Plan, results: &[SizeRes]) -> Section {
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
        "One-way latency relative to the raw spin floor (median of per-block ratios of interquartile means)",
        "x",
        "size",
        &ratio_refs,
    );
    let mut goals = Vec::new();
    let iox = MECHS
        .iter()
        .position(|m| *m == Mech::Iceoryx2)
        .expect("iceoryx2");
    // Worst (largest) shmcast busy-poll / iceoryx2 latency over the sizes.
    let mut vs_iox: Option<(f64, String)> = None;
    for SizeRes { size, per, .. } in results {
        let label = size_label(*size);
        if let Some(r) = ratio_median(&per[sc].lat_block_iqm, &per[iox].lat_block_iqm) {
            if vs_iox.as_ref().is_none_or(|(w, _)| r > *w) {
                vs_iox = Some((r, label.clone()));
            }
        }
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
                .map(|i| ratio_median(&per[i].lat_block_iqm, &per[raw].lat_block_iqm))
                .collect(),
        );
        let limit = match *size {
            64 => Some(1.3),
            4096 | 32768 => Some(1.2),
            _ => None,
        };
        if let Some(limit) = limit {
            let r = ratio_median(&per[sc].lat_block_iqm, &per[raw].lat_block_iqm);
            goals.push(Goal {
                what: format!("busy-poll one-way latency at {label} <= {limit}x raw spin floor"),
                measured: format!(
                    "{} ({} vs floor {}, interquartile means)",
                    x(r),
                    val(med(&per[sc].lat_block_iqm), "ns"),
                    val(med(&per[raw].lat_block_iqm), "ns")
                ),
                met: r.map(|r| r <= limit),
            });
        }
    }
    goals.push(iox_goal("busy-poll one-way latency", vs_iox));
    ratio.log_y = false;
    p50.note(
        "shmcast modes: busy-poll = try_recv spin; recv (default) = the blocking recv with the \
         receiver's defaults (Spin::Auto: spins ~10 us before sleeping when the machine has a \
         CPU per party, as here); sleep (backend) = recv with Spin::Off, sleeping in that \
         notify backend every time (the wake-up path). bare futex = the raw ring plus a \
         shared 32-bit futex word, FUTEX_WAKE(1) on every send and FUTEX_WAIT on every \
         receive (no spinning): the baseline of section f.",
    );
    for note in unsupported_notes(results) {
        p50.note(note);
    }
    for t in [&mut p50, &mut p99, &mut ratio] {
        t.x_axis = XAxis::Bytes;
    }
    Section {
        title: "a. Point-to-point latency (ping-pong, one-way = RTT/2)".into(),
        text: vec![format!(
            "Per size and block, each mechanism does {} timed round trips (after a warm-up of \
             at least {} round trips and two laps of every ring per size); the p50 table is the median of the per-block medians, p99 \
             pools all samples, the ratio table is the median over {} blocks of \
             iqm(mechanism) / iqm(raw spin) in the same block, iqm being the interquartile \
             mean (the mean of a block's samples between its 25th and 75th percentile; \
             medians move in whole timer steps, and the TSC here advances in ~10 ns steps, \
             5 ns of RTT/2). Receivers: pipe, unix \
             socket and shm+eventfd block in read(2); bare futex sleeps in FUTEX_WAIT; raw \
             spin busy-polls; shmcast in each receive mode (see the note under the first \
             table). Senders: write(2), the raw ring (then write(eventfd) or FUTEX_WAKE for \
             the sleeping ones), and shmcast try_send (which wakes a sleeping receiver).",
            plan.round_trips, plan.warmup, plan.p2p_blocks
        )],
        tables: vec![p50, p99, ratio],
        goals,
    }
}

/// The goal row "shmcast at least as fast as iceoryx2" (from the project
/// brief, not the benchmark issue) for `what`, given the worst shmcast /
/// iceoryx2 ratio over the sizes and where it was.
fn iox_goal(what: &str, worst: Option<(f64, String)>) -> Goal {
    Goal {
        what: format!("{what} at least as fast as iceoryx2 at every size (project brief)"),
        measured: worst
            .as_ref()
            .map_or("n/a (iceoryx2 not measured)".into(), |(r, at)| {
                format!("worst shmcast / iceoryx2 {r:.2}x (at {at}; median of per-block ratios)")
            }),
        met: worst.map(|(r, _)| r <= 1.0),
    }
}

/// "X: not measured (why)" for every mechanism some size could not run.
fn unsupported_notes(results: &[SizeRes]) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    for r in results {
        for (i, p) in r.per.iter().enumerate() {
            if let Some(why) = &p.unsupported {
                let n = format!("{}: not measured on this machine ({why}).", MECHS[i].name());
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
        }
    }
    notes
}

fn streaming_section(plan: &Plan, results: &[SizeRes]) -> Section {
    let names: Vec<&str> = MECHS.iter().map(|m| m.name()).collect();
    let sc = MECHS
        .iter()
        .position(|m| *m == Mech::ShmcastBusy)
        .expect("shmcast");
    let mut t = Table::new(
        "streaming",
        "Streaming, 1 sender -> 1 receiver (the RFC's latency column; median over chunks)",
        "ns/message",
        "size",
        &names,
    );
    let mut total = Table::new(
        "streaming-whole-run",
        "Streaming, 1 sender -> 1 receiver, whole run (first send to last receive) / N",
        "ns/message",
        "size",
        &names,
    );
    let others: Vec<usize> = (0..MECHS.len())
        .filter(|&i| {
            matches!(
                MECHS[i],
                Mech::Pipe | Mech::Unix | Mech::ShmEventfd | Mech::RawSpin | Mech::Iceoryx2
            )
        })
        .collect();
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
    let mut vs_iox: Option<(f64, String)> = None;
    for SizeRes { size, per, .. } in results {
        let label = size_label(*size);
        t.push(
            &label,
            *size as f64,
            per.iter().map(|p| med(&p.stream_block)).collect(),
        );
        total.push(
            &label,
            *size as f64,
            per.iter().map(|p| med(&p.stream_total)).collect(),
        );
        let rs: Vec<Option<f64>> = others
            .iter()
            .map(|&i| ratio_median(&per[sc].stream_block, &per[i].stream_block))
            .collect();
        for (k, &i) in others.iter().enumerate() {
            if MECHS[i] == Mech::Iceoryx2 {
                if let Some(r) = rs[k] {
                    if vs_iox.as_ref().is_none_or(|(w, _)| r > *w) {
                        vs_iox = Some((r, label.clone()));
                    }
                }
                continue;
            }
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
    for note in unsupported_notes(results) {
        t.note(note);
    }
    let goals = vec![
        Goal {
            what: "streaming ns/message below pipe, unix socket and shm+eventfd at every size"
                .into(),
            measured: worst.as_ref().map_or("n/a".into(), |(r, at)| {
                format!("worst shmcast/other ratio {r:.2}x ({at})")
            }),
            met: worst.map(|(r, _)| r < 1.0),
        },
        iox_goal("streaming ns/message", vs_iox),
    ];
    Section {
        title: "b. Streaming (one sender streams N messages, total time / N)".into(),
        text: vec![format!(
            "N = {}..{} messages per run depending on size; {} blocks. The receiver takes a \
             timestamp every N/32 messages; a run's ns/message is the median over those \
             chunks, so a chunk in which either process was preempted by load outside the \
             bench is an outlier rather than part of a mean (the whole-run table, first send \
             to last receive over CLOCK_MONOTONIC in both processes, is given too). Per size \
             the value is the median over blocks. Receivers check every message's sequence \
             number. The goal is judged on shmcast busy-poll; the recv / sleep columns show \
             what sleeping receivers cost while streaming.",
            plan.stream.1, plan.stream.2, plan.p2p_blocks
        )],
        tables: vec![t, ratio, total],
        goals,
    }
}
