//! e. Throughput: P producer processes → 1 receiver on a unicast channel,
//! one message per `try_send` or [`BATCH`] per `try_send_batch` (one claim,
//! one CAS on the tail, for the batch).
//!
//! The producers are workers pinned to the sending CPU (with P > 1 they
//! share it, so the scheduler preempts them, sometimes between a claim and
//! its publish: the receiver then waits for that producer's next slice,
//! which these numbers include). The receiver is this process, on the other
//! CPU, busy-polling `try_recv` and checking each producer's sequence
//! numbers, with a timestamp every 1/32 of the run. Rate = 1 / the median
//! ns/message over those chunks (load outside the bench preempts one side
//! for milliseconds at a time; a preempted chunk is then an outlier, not
//! part of a mean).
//!
//! For scale, one producer also streams through the raw SPSC ring of the
//! same capacity (the floor of section a): same hand-off per message (a
//! `seq` store, a `head` store), none of shmcast's claim CAS, header fields
//! or counters, and plain `memcpy` copies.
//!
//! And through a peer: the `sharedring` of the `shmem-ipc` crate (SPSC, a
//! memfd and two eventfds, as many bytes as the shmcast ring's slots of the
//! same size), used as its API documents. It carries a stream of
//! fixed-size items, not messages, so a message is `size / 8` `u64` items
//! (rounded up); `send_raw` writes them in place and writes the receiver's
//! eventfd when the ring was empty (it cannot know whether the receiver
//! sleeps), `receive_raw` reads them and writes the sender's eventfd when
//! the ring was full. One message per call, or up to [`BATCH`] messages per
//! call on both sides. Its receiver here busy-polls `read_count` (a load)
//! and calls `receive_raw` only when something is there (an empty
//! `receive_raw` would still do its read-modify-write of the shared count,
//! which slows the sender down), and not even that while the last call
//! said more was waiting.

use std::fs::File;
use std::rc::Rc;

use shmem_ipc::sharedring;

use shmcast::{attach, Attachment, ChannelBuilder, Role, TrySendError};
use shmcast_benches::mech::{
    seq_of, stamp, RingLayout, Rx, RxMode, ShmcastRx, SpscRx, SpscTx, Tx, Wait, Waiter,
};
use shmcast_benches::report::Table;
use shmcast_benches::stats;
use shmcast_benches::sys::{self, now_ns, Arena};
use shmcast_benches::worker::{record, Args, Control, Worker};

use crate::{
    channel_name, count_for, med, op, progress, size_label, val, Goal, Plan, Res, Section,
};

/// Messages per batch claim.
pub(crate) const BATCH: usize = 32;

/// Producer index lives in the top bits of a message's sequence number.
const PRODUCER_SHIFT: u32 = 48;

/// Slots for messages of `size` bytes: about 1 MiB, clamped to 64..4096
/// and rounded down to a power of two (so 4096 slots, 256 / 512 KiB, up to
/// 64 B; 128 slots, 520 KiB, at 4 KiB).
fn capacity(size: usize) -> u64 {
    let stride = (32 + size).div_ceil(64) * 64;
    let n = (1024 * 1024 / stride).clamp(64, 4096);
    1 << n.ilog2()
}

/// The raw rings' layouts and offsets in one arena, one ring per size.
fn raw_rings(sizes: &[usize]) -> Vec<(usize, RingLayout)> {
    let mut off = 0;
    sizes
        .iter()
        .map(|&size| {
            let lay = RingLayout::new(capacity(size) as usize, size);
            let at = off;
            off += lay.bytes();
            (at, lay)
        })
        .collect()
}

/// `u64` items in the `shmem-ipc` ring for messages of `size` bytes: as
/// many bytes as the shmcast ring's slots (shmem-ipc rounds its memfd up
/// to whole pages).
fn sipc_items(size: usize) -> usize {
    let stride = (32 + size).div_ceil(64) * 64;
    capacity(size) as usize * stride / 8
}

/// `u64` items per `shmem-ipc` message of `size` bytes.
fn sipc_words(size: usize) -> usize {
    size.div_ceil(8)
}

/// What carries a run's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mech {
    /// A shmcast unicast channel.
    Shmcast,
    /// The raw SPSC ring (one producer, no batch).
    Raw,
    /// A `shmem-ipc` sharedring (one producer).
    ShmemIpc,
    /// The same ring through its low-level ends (`sender_mut().send`,
    /// `receiver_mut().recv`): no eventfd write, which a polling receiver
    /// does not need.
    ShmemIpcNoSignal,
}

impl Mech {
    /// Its code in a PRODUCE command.
    fn code(self) -> u64 {
        match self {
            Mech::Shmcast => 0,
            Mech::Raw => 1,
            Mech::ShmemIpc => 2,
            Mech::ShmemIpcNoSignal => 3,
        }
    }
}

/// How a run batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Batch {
    /// One `try_send` and one `try_recv` per message.
    None,
    /// `try_send_batch` of [`BATCH`]; one `try_recv` per message.
    Send,
    /// `try_send_batch` of [`BATCH`]; `try_recv_batch` of up to [`BATCH`].
    SendRecv,
}

impl Batch {
    fn sends_batches(self) -> bool {
        self != Batch::None
    }
}

#[derive(Clone, Copy, Debug)]
struct Config {
    size_idx: usize,
    producers: usize,
    batch: Batch,
    /// What carries the messages.
    mech: Mech,
}

pub(crate) fn run(plan: &Plan) -> Res<Section> {
    sys::pin_to_cpu(plan.cpu_recv)?;
    let pmax = plan.tp_producers.iter().copied().max().unwrap_or(1);
    let rings = raw_rings(&plan.tp_sizes);
    let arena_len = rings.last().map_or(4096, |(at, lay)| at + lay.bytes());
    let arena = Rc::new(Arena::create("shmcast-bench-tp", arena_len)?);
    let mut raw_rx: Vec<SpscRx> = rings
        .iter()
        .map(|&(at, lay)| SpscRx::new(arena.clone(), at, lay, Wait::Spin))
        .collect();
    let mut channels = Vec::new();
    let mut receivers = Vec::new();
    let mut names = Vec::new();
    for &size in &plan.tp_sizes {
        let name = channel_name(&format!("tp{size}"));
        let ch = ChannelBuilder::new(&name)
            .capacity(capacity(size))
            .max_message(size as u32)
            .create()?;
        receivers.push(ShmcastRx {
            rx: ch.receiver()?,
            mode: RxMode::Poll(Wait::Spin),
        });
        channels.push(ch);
        names.push(name);
    }
    let mut sipc_rx = Vec::new();
    for &size in &plan.tp_sizes {
        sipc_rx.push(sharedring::Receiver::<u64>::new(sipc_items(size))?);
    }
    let mut workers = Vec::new();
    let sizes: Vec<String> = plan.tp_sizes.iter().map(|s| s.to_string()).collect();
    for i in 0..pmax {
        let fd = arena.fd().try_clone_to_owned()?;
        let mut args = vec![
            "source".to_owned(),
            format!("cpu={}", plan.cpu_send),
            format!("chans={}", names.join(",")),
            format!("sizes={}", sizes.join(",")),
            format!("arena={}", sys::raw(&fd)),
        ];
        let mut fds = vec![fd];
        if i == 0 {
            // The shmem-ipc rings' memfd and eventfds, to worker 0 only
            // (SPSC: it is their one producer).
            let mut rings = Vec::new();
            for rx in &sipc_rx {
                let three = [
                    rx.memfd().as_file().try_clone()?,
                    rx.empty_signal().try_clone()?,
                    rx.full_signal().try_clone()?,
                ];
                let nums: Vec<String> = three.iter().map(|f| sys::raw(f).to_string()).collect();
                rings.push(nums.join(":"));
                fds.extend(three.map(std::os::fd::OwnedFd::from));
            }
            args.push(format!("sipc={}", rings.join(",")));
        }
        workers.push(Worker::spawn(&format!("producer #{i}"), &args, fds)?);
    }
    for w in &mut workers {
        expect(w, op::READY)?;
    }
    let mut configs = Vec::new();
    for size_idx in 0..plan.tp_sizes.len() {
        for &producers in &plan.tp_producers {
            for batch in [Batch::None, Batch::Send, Batch::SendRecv] {
                configs.push(Config {
                    size_idx,
                    producers,
                    batch,
                    mech: Mech::Shmcast,
                });
            }
        }
        configs.push(Config {
            size_idx,
            producers: 1,
            batch: Batch::None,
            mech: Mech::Raw,
        });
        for (batch, mech) in [
            (Batch::None, Mech::ShmemIpc),
            (Batch::SendRecv, Mech::ShmemIpc),
            (Batch::SendRecv, Mech::ShmemIpcNoSignal),
        ] {
            configs.push(Config {
                size_idx,
                producers: 1,
                batch,
                mech,
            });
        }
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    progress("throughput: warm-up");
    for c in &configs {
        let size = plan.tp_sizes[c.size_idx];
        let n = count_for(plan.tp_msgs, size) / 10;
        let mut rx = Receivers {
            raw: &mut raw_rx,
            shmcast: &mut receivers,
            sipc: &mut sipc_rx,
        };
        run_one(&mut workers, &mut rx, *c, size, n.max(1000))?;
    }
    for block in 0..plan.tp_blocks {
        progress(&format!(
            "throughput: block {}/{}",
            block + 1,
            plan.tp_blocks
        ));
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.rotate_left(block % configs.len());
        for i in order {
            let c = configs[i];
            let size = plan.tp_sizes[c.size_idx];
            let n = count_for(plan.tp_msgs, size);
            let mut rx = Receivers {
                raw: &mut raw_rx,
                shmcast: &mut receivers,
                sipc: &mut sipc_rx,
            };
            let rate = run_one(&mut workers, &mut rx, c, size, n)?;
            results[i].push(rate);
        }
    }
    for w in workers {
        w.finish(record(&[op::QUIT]))?;
    }
    drop(receivers);
    drop(raw_rx);
    drop(sipc_rx);
    for ch in channels {
        ch.destroy();
    }
    Ok(section(plan, &configs, &results))
}

fn expect(worker: &mut Worker, code: u64) -> Res<[u64; 8]> {
    let r = worker.recv()?;
    if r[0] != code {
        return Err(format!("worker answered {} where {code} was expected", r[0]).into());
    }
    Ok(r)
}

/// The receiving ends of every mechanism, one per size.
struct Receivers<'a> {
    raw: &'a mut [SpscRx],
    shmcast: &'a mut [ShmcastRx],
    sipc: &'a mut [sharedring::Receiver<u64>],
}

/// One run; returns messages per second. (`rx` is called through `dyn`:
/// one indirect call per message, the same for every configuration.)
fn run_one(
    workers: &mut [Worker],
    rx: &mut Receivers<'_>,
    c: Config,
    size: usize,
    total: usize,
) -> Res<f64> {
    match c.mech {
        Mech::Raw => one(workers, &mut rx.raw[c.size_idx], c, size, total),
        Mech::ShmemIpc | Mech::ShmemIpcNoSignal => {
            one_sipc(workers, &mut rx.sipc[c.size_idx], c, size, total)
        }
        Mech::Shmcast if c.batch == Batch::SendRecv => {
            one_batch_recv(workers, &rx.shmcast[c.size_idx].rx, c, size, total)
        }
        Mech::Shmcast => one(workers, &mut rx.shmcast[c.size_idx], c, size, total),
    }
}

/// Start the producers of a run of `per` messages each; returns once they
/// were told to go.
fn start_producers(workers: &mut [Worker], c: Config, size: usize, per: u64) -> Res<()> {
    let spin_or_yield = u64::from(c.producers > 1);
    for (p, w) in workers[..c.producers].iter_mut().enumerate() {
        w.send(record(&[
            op::PRODUCE,
            c.size_idx as u64,
            per,
            size as u64,
            u64::from(c.batch.sends_batches()),
            p as u64,
            spin_or_yield,
            c.mech.code(),
        ]))?;
    }
    for w in &mut workers[..c.producers] {
        expect(w, op::READY)?;
    }
    for w in &mut workers[..c.producers] {
        w.send(record(&[op::GO]))?;
    }
    Ok(())
}

/// Checks every producer's sequence numbers.
struct SeqCheck {
    next: [u64; 64],
    bad: u64,
}

impl SeqCheck {
    fn new() -> SeqCheck {
        SeqCheck {
            next: [0; 64],
            bad: 0,
        }
    }

    #[inline]
    fn check(&mut self, msg: &[u8]) {
        self.check_seq(seq_of(msg));
    }

    #[inline]
    fn check_seq(&mut self, s: u64) {
        let mask = (1u64 << PRODUCER_SHIFT) - 1;
        match self.next.get_mut((s >> PRODUCER_SHIFT) as usize) {
            Some(n) if s & mask == *n => *n += 1,
            _ => self.bad += 1,
        }
    }

    fn finish(self, workers: &mut [Worker], c: Config) -> Res<()> {
        for w in &mut workers[..c.producers] {
            expect(w, op::DONE)?;
        }
        if self.bad != 0 {
            return Err(
                format!("throughput: {} messages out of order or unknown", self.bad).into(),
            );
        }
        Ok(())
    }
}

/// A run's message count and the receiver's timestamps, one every
/// [`stats::chunk_len`] messages.
struct RunClock {
    /// Messages in the run (all producers).
    total: u64,
    chunk: u64,
    /// Received count at which the next stamp is due.
    next: u64,
    stamps: Vec<u64>,
}

impl RunClock {
    /// Start the producers of a run of about `total` messages (a multiple
    /// of the producer count).
    fn start(workers: &mut [Worker], c: Config, size: usize, total: usize) -> Res<RunClock> {
        let per = (total / c.producers) as u64;
        start_producers(workers, c, size, per)?;
        let total = per * c.producers as u64;
        let chunk = stats::chunk_len(total);
        Ok(RunClock {
            total,
            chunk,
            next: 0,
            stamps: Vec::with_capacity((total / chunk) as usize + 2),
        })
    }

    /// Before a receive, with `got` messages received so far.
    #[inline]
    fn tick(&mut self, got: u64) {
        if got >= self.next {
            self.stamps.push(now_ns());
            self.next += self.chunk;
        }
    }

    /// Messages per second: the median chunk.
    fn rate(&self) -> f64 {
        1e9 / stats::chunk_median(&self.stamps, self.chunk)
    }
}

/// A run whose receiver takes up to [`BATCH`] messages per `try_recv_batch`.
fn one_batch_recv(
    workers: &mut [Worker],
    rx: &shmcast::Receiver,
    c: Config,
    size: usize,
    total: usize,
) -> Res<f64> {
    let mut clock = RunClock::start(workers, c, size, total)?;
    let mut buf = vec![0u8; size * BATCH];
    let mut infos = [shmcast::MessageInfo::default(); BATCH];
    let mut seqs = SeqCheck::new();
    let mut got = 0u64;
    let mut w: Option<Waiter> = None;
    while got < clock.total {
        clock.tick(got);
        match rx.try_recv_batch(&mut buf, &mut infos) {
            Ok(n) => {
                let mut off = 0;
                for info in &infos[..n] {
                    seqs.check(&buf[off..off + info.len]);
                    off += info.len;
                }
                got += n as u64;
                w = None;
            }
            Err(shmcast::TryRecvError::Empty) => w
                .get_or_insert_with(|| Waiter::new(Wait::Spin))
                .wait("throughput receiver (batch)"),
            Err(e) => return Err(format!("throughput receiver: {e}").into()),
        }
    }
    seqs.finish(workers, c)?;
    Ok(clock.rate())
}

/// A run through a `shmem-ipc` ring: one message per `receive_raw`, or up
/// to [`BATCH`] when the run batches.
fn one_sipc(
    workers: &mut [Worker],
    rx: &mut sharedring::Receiver<u64>,
    c: Config,
    size: usize,
    total: usize,
) -> Res<f64> {
    let mut clock = RunClock::start(workers, c, size, total)?;
    let total = clock.total;
    let words = sipc_words(size);
    let per_call = if c.batch == Batch::None { 1 } else { BATCH };
    let mut seqs = SeqCheck::new();
    let mut got = 0u64;
    // The message being read, and how many of its items are in (a call may
    // end inside a message where the ring wraps).
    let mut msg = vec![0u64; words];
    let mut at = 0usize;
    let mut w: Option<Waiter> = None;
    // The last call's word that more items were waiting.
    let mut more = false;
    while got < total {
        clock.tick(got);
        if !more && rx.receiver_mut().read_count()? == 0 {
            w.get_or_insert_with(|| Waiter::new(Wait::Spin))
                .wait("throughput receiver (shmem-ipc)");
            continue;
        }
        w = None;
        let left = (total - got) as usize;
        let limit = per_call.min(left) * words - at;
        let read = |p: *const u64, count: usize| {
            let take = count.min(limit);
            let mut j = 0;
            while j < take {
                let n = (words - at).min(take - j);
                // The slice lives for this one copy: how the raw ring of
                // section a reads, and what shmem-ipc's `receive_trusted` does.
                // SAFETY: `count` readable aligned items at `p` (shmem-ipc's contract); j + n <= count.
                let src = unsafe { std::slice::from_raw_parts(p.add(j), n) };
                msg[at..at + n].copy_from_slice(src);
                at += n;
                j += n;
                if at == words {
                    seqs.check_seq(u64::from_le(msg[0]));
                    at = 0;
                    got += 1;
                }
            }
            take
        };
        let status = if c.mech == Mech::ShmemIpc {
            rx.receive_raw(read)?
        } else {
            rx.receiver_mut().recv(read)?
        };
        more = status.remaining > 0;
    }
    seqs.finish(workers, c)?;
    Ok(clock.rate())
}

/// A run whose receiver takes one message per call.
fn one(workers: &mut [Worker], rx: &mut dyn Rx, c: Config, size: usize, total: usize) -> Res<f64> {
    let mut clock = RunClock::start(workers, c, size, total)?;
    let mut buf = vec![0u8; size];
    let mut seqs = SeqCheck::new();
    for i in 0..clock.total {
        clock.tick(i);
        rx.recv(&mut buf);
        seqs.check(&buf);
    }
    seqs.finish(workers, c)?;
    Ok(clock.rate())
}

/// The worker: a producer attached to every throughput channel (and the
/// producer of every raw ring, which only worker 0 uses).
pub(crate) fn worker(args: &Args) -> Res<()> {
    let chans: Vec<Attachment> = args
        .get("chans")?
        .split(',')
        .map(|n| attach(n, Role::Send))
        .collect::<Result<_, _>>()?;
    let sizes: Vec<usize> = args
        .get("sizes")?
        .split(',')
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let arena = Rc::new(Arena::open(args.fd("arena")?)?);
    let mut raw_tx: Vec<SpscTx> = raw_rings(&sizes)
        .into_iter()
        .map(|(at, lay)| SpscTx::new(arena.clone(), at, lay, Wait::Spin))
        .collect();
    // Worker 0 only: the producer ends of the shmem-ipc rings.
    let mut sipc_tx = Vec::new();
    if let Ok(rings) = args.get("sipc") {
        for (ring, &size) in rings.split(',').zip(&sizes) {
            let fds: Vec<File> = ring
                .split(':')
                .map(|n| {
                    let n = n.parse::<i32>().map_err(|_| format!("bad sipc fd {n:?}"))?;
                    Ok(File::from(sys::take_inherited_fd(n)?))
                })
                .collect::<Res<_>>()?;
            let [memfd, empty, full]: [File; 3] =
                fds.try_into().map_err(|_| "sipc: three fds per ring")?;
            sipc_tx.push(sharedring::Sender::<u64>::open(
                sipc_items(size),
                memfd,
                empty,
                full,
            )?);
        }
    }
    let mut ctl = Control::new();
    ctl.reply(record(&[op::READY]))?;
    while let Some(cmd) = ctl.command()? {
        match cmd[0] {
            op::QUIT => break,
            op::PRODUCE => {
                let idx = cmd[1] as usize;
                let att = chans.get(idx).ok_or("producer: bad channel index")?;
                let (n, size, batch, pid) = (cmd[2], cmd[3] as usize, cmd[4] != 0, cmd[5]);
                let wait = if cmd[6] != 0 { Wait::Yield } else { Wait::Spin };
                let mech = cmd[7];
                let tx = if mech == Mech::Shmcast.code() {
                    Some(att.sender()?)
                } else {
                    None
                };
                ctl.reply(record(&[op::READY]))?;
                match ctl.command()? {
                    Some(r) if r[0] == op::GO => {}
                    other => return Err(format!("producer: expected GO, got {other:?}").into()),
                }
                let t0 = now_ns();
                let tag = pid << PRODUCER_SHIFT;
                match tx {
                    Some(tx) if batch => produce_batch(&tx, n, size, tag, wait)?,
                    Some(tx) => produce(&tx, n, size, tag, wait)?,
                    None if mech == Mech::Raw.code() => produce_raw(&mut raw_tx[idx], n, size, tag),
                    None => {
                        let tx = sipc_tx.get_mut(idx).ok_or("producer: no shmem-ipc ring")?;
                        let signal = mech == Mech::ShmemIpc.code();
                        produce_sipc(tx, n, size, tag, batch, signal)?
                    }
                }
                ctl.reply(record(&[op::DONE, t0, now_ns()]))?;
            }
            _ => return Err(format!("producer: bad command {cmd:?}").into()),
        }
    }
    Ok(())
}

fn produce_raw(tx: &mut SpscTx, n: u64, size: usize, tag: u64) {
    let mut msg = vec![0u8; size];
    for i in 0..n {
        stamp(&mut msg, tag | i);
        tx.send(&msg);
    }
}

/// Stream `n` messages of `size` bytes through a shmem-ipc ring, one per
/// call or up to [`BATCH`]; through `send_raw` (which signals an empty
/// ring's receiver) or, without `signal`, the low-level `send`.
fn produce_sipc(
    tx: &mut sharedring::Sender<u64>,
    n: u64,
    size: usize,
    tag: u64,
    batch: bool,
    signal: bool,
) -> Res<()> {
    let words = sipc_words(size) as u64;
    let per_call = if batch { BATCH as u64 } else { 1 };
    // One call's worth of messages, staged: each its sequence number, then
    // zeros, as the other mechanisms send.
    let mut staged = vec![0u64; per_call as usize * words as usize];
    let mut m = 0u64;
    while m < n {
        let k_msgs = (n - m).min(per_call);
        for i in 0..k_msgs {
            staged[(i * words) as usize] = (tag | (m + i)).to_le();
        }
        let end = (k_msgs * words) as usize;
        let mut k = 0usize;
        let mut w: Option<Waiter> = None;
        while k < end {
            let mut put = 0usize;
            let write = |p: *mut u64, count: usize| {
                put = count.min(end - k);
                // The slice lives for this one copy, as in shmem-ipc's own
                // `send_trusted`.
                // SAFETY: `count` writable aligned items at `p` (shmem-ipc's contract); put <= count.
                let dst = unsafe { std::slice::from_raw_parts_mut(p, put) };
                dst.copy_from_slice(&staged[k..k + put]);
                put
            };
            if signal {
                tx.send_raw(write)?;
            } else {
                tx.sender_mut().send(write)?;
            }
            if put == 0 {
                // Full: the closure was not called.
                w.get_or_insert_with(|| Waiter::new(Wait::Spin))
                    .wait("throughput producer (shmem-ipc)");
            } else {
                k += put;
                w = None;
            }
        }
        m += k_msgs;
    }
    Ok(())
}

fn produce(tx: &shmcast::Sender, n: u64, size: usize, tag: u64, wait: Wait) -> Res<()> {
    let mut msg = vec![0u8; size];
    for i in 0..n {
        stamp(&mut msg, tag | i);
        let mut w: Option<Waiter> = None;
        loop {
            match tx.try_send(&msg) {
                Ok(_) => break,
                Err(TrySendError::Full) => w
                    .get_or_insert_with(|| Waiter::new(wait))
                    .wait("throughput producer"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn produce_batch(tx: &shmcast::Sender, n: u64, size: usize, tag: u64, wait: Wait) -> Res<()> {
    let mut store = vec![0u8; size * BATCH];
    let mut i = 0u64;
    while i < n {
        let k = (n - i).min(BATCH as u64) as usize;
        for (j, m) in store.chunks_exact_mut(size).take(k).enumerate() {
            stamp(m, tag | (i + j as u64));
        }
        let mut refs: [&[u8]; BATCH] = [&[]; BATCH];
        for (r, m) in refs.iter_mut().zip(store.chunks_exact(size)) {
            *r = m;
        }
        let mut sent = 0;
        let mut w: Option<Waiter> = None;
        while sent < k {
            match tx.try_send_batch(&refs[sent..k]) {
                Ok(m) => {
                    sent += m;
                    w = None;
                }
                Err(TrySendError::Full) => w
                    .get_or_insert_with(|| Waiter::new(wait))
                    .wait("throughput producer (batch)"),
                Err(e) => return Err(e.into()),
            }
        }
        i += k as u64;
    }
    Ok(())
}

fn section(plan: &Plan, configs: &[Config], results: &[Vec<f64>]) -> Section {
    let mut cols: Vec<String> = plan
        .tp_producers
        .iter()
        .flat_map(|p| {
            [
                format!("{p}P"),
                format!("{p}P batch send"),
                format!("{p}P batch send+recv"),
            ]
        })
        .collect();
    cols.push("raw ring 1P (floor)".into());
    cols.push("shmem-ipc 1P".into());
    cols.push("shmem-ipc 1P batch send+recv".into());
    cols.push("shmem-ipc 1P batch, no eventfd".into());
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut msgs = Table::new(
        "throughput-msgs",
        "Throughput, P producers -> 1 receiver (unicast)",
        "M msg/s",
        "size",
        &col_refs,
    );
    let mut gbs = Table::new(
        "throughput-gbs",
        "Throughput, P producers -> 1 receiver (unicast)",
        "GB/s",
        "size",
        &col_refs,
    );
    let index = |size_idx: usize, producers: usize, batch: Batch, mech: Mech| {
        configs.iter().position(|c| {
            c.size_idx == size_idx && c.producers == producers && c.batch == batch && c.mech == mech
        })
    };
    let find = |size_idx: usize, producers: usize, batch: Batch, mech: Mech| {
        index(size_idx, producers, batch, mech).and_then(|i| med(&results[i]))
    };
    let mut goals = Vec::new();
    for (si, &size) in plan.tp_sizes.iter().enumerate() {
        let mut rates: Vec<Option<f64>> = plan
            .tp_producers
            .iter()
            .flat_map(|&p| {
                [Batch::None, Batch::Send, Batch::SendRecv].map(|b| find(si, p, b, Mech::Shmcast))
            })
            .collect();
        rates.push(find(si, 1, Batch::None, Mech::Raw));
        rates.push(find(si, 1, Batch::None, Mech::ShmemIpc));
        rates.push(find(si, 1, Batch::SendRecv, Mech::ShmemIpc));
        rates.push(find(si, 1, Batch::SendRecv, Mech::ShmemIpcNoSignal));
        msgs.push(
            size_label(size),
            size as f64,
            rates.iter().map(|r| r.map(|r| r / 1e6)).collect(),
        );
        gbs.push(
            size_label(size),
            size as f64,
            rates
                .iter()
                .map(|r| r.map(|r| r * size as f64 / 1e9))
                .collect(),
        );
        let one_batch = find(si, 1, Batch::SendRecv, Mech::Shmcast);
        let send_only = find(si, 1, Batch::Send, Mech::Shmcast);
        let both = |unit: f64, label: &str| {
            format!(
                "{} (batch send + batch receive; batch send alone: {})",
                val(one_batch.map(|r| r * unit), label),
                val(send_only.map(|r| r * unit), label)
            )
        };
        // Against shmem-ipc, block by block (the same block ran both).
        let ratio = |a: Batch, b: Batch, peer: Mech| {
            let (a, b) = (index(si, 1, a, Mech::Shmcast)?, index(si, 1, b, peer)?);
            let per_block: Vec<f64> = results[a]
                .iter()
                .zip(&results[b])
                .map(|(x, y)| x / y)
                .collect();
            med(&per_block)
        };
        if size == 8 {
            let batched = ratio(Batch::SendRecv, Batch::SendRecv, Mech::ShmemIpc);
            let single = ratio(Batch::None, Batch::None, Mech::ShmemIpc);
            let quiet = ratio(Batch::SendRecv, Batch::SendRecv, Mech::ShmemIpcNoSignal);
            let vs_single = ratio(Batch::SendRecv, Batch::None, Mech::ShmemIpc);
            goals.push(Goal {
                what: "streaming 1->1 with batch claim >= 4x shmem-ipc's rate at 8 B".into(),
                measured: format!(
                    "{} against its batched sharedring ({BATCH} messages per call on each \
                     side, like ours); {} against one message per call; {} against its ring \
                     without eventfd writes; one message per call on both sides: {}",
                    val(batched, "x"),
                    val(vs_single, "x"),
                    val(quiet, "x"),
                    val(single, "x")
                ),
                met: batched.map(|r| r >= 4.0),
            });
        }
        match size {
            8 | 64 => {
                let want = if size == 8 { 100.0 } else { 50.0 };
                goals.push(Goal {
                    what: format!(
                        "streaming 1->1 with batch claim >= {want} M msg/s at {}",
                        size_label(size)
                    ),
                    measured: both(1e-6, "M msg/s"),
                    met: one_batch.map(|r| r / 1e6 >= want),
                });
            }
            4096 => goals.push(Goal {
                what: "streaming 1->1 with batch claim >= 15 GB/s at 4 KiB".into(),
                measured: both(4096.0 / 1e9, "GB/s"),
                met: one_batch.map(|r| r * 4096.0 / 1e9 >= 15.0),
            }),
            _ => {}
        }
    }
    Section {
        title: "e. Throughput".into(),
        text: vec![format!(
            "{} blocks; {}..{} messages per run depending on size; producers on CPU {} (sharing \
             it when P > 1), the receiver on CPU {} busy-polling. \"batch send\": \
             try_send_batch of {BATCH} messages (one claim), the receiver calling try_recv once \
             per message; \"batch send+recv\": the receiver takes up to {BATCH} messages per \
             try_recv_batch (one head and counter update per batch). The goals are judged on \
             batch send+recv. Ring: 4096 slots up to 64 B (256 KiB at 8 B, 512 KiB at 64 B), \
             128 at 4 KiB (520 KiB). Rate: the receiver timestamps every 1/32 of \
             the run; the median chunk, then the median over blocks. shmem-ipc: the \
             sharedring of crates.io shmem-ipc 0.3 (SPSC, memfd + two eventfds, as many bytes as \
             the shmcast ring), a message being size/8 u64 items of its stream; send_raw writes \
             them in place and writes the receiver's eventfd whenever the ring was empty (its \
             API cannot know the receiver is polling), receive_raw the sender's whenever it was \
             full; its receiver polls read_count and takes one message, or up to \
             {BATCH} (\"batch send+recv\", and the sender writes up to {BATCH} per send_raw), per \
             receive_raw. \"no eventfd\": the same ring through its low-level ends (send / recv), \
             which never write an eventfd: a polling receiver does not need them.",
            plan.tp_blocks, plan.tp_msgs.1, plan.tp_msgs.2, plan.cpu_send, plan.cpu_recv
        )],
        tables: vec![msgs, gbs],
        goals,
    }
}
