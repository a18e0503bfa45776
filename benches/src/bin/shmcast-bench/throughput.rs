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

use std::rc::Rc;

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

/// Slots for messages of `size` bytes: about 1 MiB, 64..4096.
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
    /// The raw SPSC ring instead of shmcast (one producer, no batch).
    raw: bool,
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
    let mut workers = Vec::new();
    let sizes: Vec<String> = plan.tp_sizes.iter().map(|s| s.to_string()).collect();
    for i in 0..pmax {
        let fd = arena.fd().try_clone_to_owned()?;
        let args = vec![
            "source".to_owned(),
            format!("cpu={}", plan.cpu_send),
            format!("chans={}", names.join(",")),
            format!("sizes={}", sizes.join(",")),
            format!("arena={}", sys::raw(&fd)),
        ];
        workers.push(Worker::spawn(&format!("producer #{i}"), &args, vec![fd])?);
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
                    raw: false,
                });
            }
        }
        configs.push(Config {
            size_idx,
            producers: 1,
            batch: Batch::None,
            raw: true,
        });
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    progress("throughput: warm-up");
    for c in &configs {
        let size = plan.tp_sizes[c.size_idx];
        let n = count_for(plan.tp_msgs, size) / 10;
        run_one(
            &mut workers,
            &mut raw_rx,
            &mut receivers,
            *c,
            size,
            n.max(1000),
        )?;
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
            let rate = run_one(&mut workers, &mut raw_rx, &mut receivers, c, size, n)?;
            results[i].push(rate);
        }
    }
    for w in workers {
        w.finish(record(&[op::QUIT]))?;
    }
    drop(receivers);
    drop(raw_rx);
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

/// One run; returns messages per second. (`rx` is called through `dyn`:
/// one indirect call per message, the same for every configuration.)
fn run_one(
    workers: &mut [Worker],
    raw_rx: &mut [SpscRx],
    receivers: &mut [ShmcastRx],
    c: Config,
    size: usize,
    total: usize,
) -> Res<f64> {
    if c.raw {
        one(workers, &mut raw_rx[c.size_idx], c, size, total)
    } else if c.batch == Batch::SendRecv {
        one_batch_recv(workers, &receivers[c.size_idx].rx, c, size, total)
    } else {
        one(workers, &mut receivers[c.size_idx], c, size, total)
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
            u64::from(c.raw),
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
        let mask = (1u64 << PRODUCER_SHIFT) - 1;
        let s = seq_of(msg);
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

/// A run whose receiver takes up to [`BATCH`] messages per `try_recv_batch`.
fn one_batch_recv(
    workers: &mut [Worker],
    rx: &shmcast::Receiver,
    c: Config,
    size: usize,
    total: usize,
) -> Res<f64> {
    let per = (total / c.producers) as u64;
    start_producers(workers, c, size, per)?;
    let mut buf = vec![0u8; size * BATCH];
    let mut infos = [shmcast::MessageInfo::default(); BATCH];
    let mut seqs = SeqCheck::new();
    let total = per * c.producers as u64;
    let chunk = stats::chunk_len(total);
    let mut stamps = Vec::with_capacity((total / chunk) as usize + 2);
    let (mut got, mut next_stamp) = (0u64, 0u64);
    let mut w: Option<Waiter> = None;
    while got < total {
        if got >= next_stamp {
            stamps.push(now_ns());
            next_stamp += chunk;
        }
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
    Ok(1e9 / stats::chunk_median(&stamps, chunk))
}

/// A run whose receiver takes one message per call.
fn one(workers: &mut [Worker], rx: &mut dyn Rx, c: Config, size: usize, total: usize) -> Res<f64> {
    let per = (total / c.producers) as u64;
    start_producers(workers, c, size, per)?;
    let mut buf = vec![0u8; size];
    let mut seqs = SeqCheck::new();
    let total = per * c.producers as u64;
    let chunk = stats::chunk_len(total);
    let mut stamps = Vec::with_capacity((total / chunk) as usize + 2);
    for i in 0..total {
        if i % chunk == 0 {
            stamps.push(now_ns());
        }
        rx.recv(&mut buf);
        seqs.check(&buf);
    }
    seqs.finish(workers, c)?;
    Ok(1e9 / stats::chunk_median(&stamps, chunk))
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
                let raw = cmd[7] != 0;
                let tx = if raw { None } else { Some(att.sender()?) };
                ctl.reply(record(&[op::READY]))?;
                match ctl.command()? {
                    Some(r) if r[0] == op::GO => {}
                    other => return Err(format!("producer: expected GO, got {other:?}").into()),
                }
                let t0 = now_ns();
                let tag = pid << PRODUCER_SHIFT;
                match tx {
                    None => produce_raw(&mut raw_tx[idx], n, size, tag),
                    Some(tx) if batch => produce_batch(&tx, n, size, tag, wait)?,
                    Some(tx) => produce(&tx, n, size, tag, wait)?,
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
    let find = |size_idx: usize, producers: usize, batch: Batch, raw: bool| {
        configs
            .iter()
            .position(|c| {
                c.size_idx == size_idx
                    && c.producers == producers
                    && c.batch == batch
                    && c.raw == raw
            })
            .and_then(|i| med(&results[i]))
    };
    let mut goals = Vec::new();
    for (si, &size) in plan.tp_sizes.iter().enumerate() {
        let mut rates: Vec<Option<f64>> = plan
            .tp_producers
            .iter()
            .flat_map(|&p| {
                [Batch::None, Batch::Send, Batch::SendRecv].map(|b| find(si, p, b, false))
            })
            .collect();
        rates.push(find(si, 1, Batch::None, true));
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
        let one_batch = find(si, 1, Batch::SendRecv, false);
        let send_only = find(si, 1, Batch::Send, false);
        let both = |unit: f64, label: &str| {
            format!(
                "{} (batch send + batch receive; batch send alone: {})",
                val(one_batch.map(|r| r * unit), label),
                val(send_only.map(|r| r * unit), label)
            )
        };
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
             batch send+recv. Ring: ~1 MiB of slots. Rate: the receiver timestamps every 1/32 of \
             the run; the median chunk, then the median over blocks.",
            plan.tp_blocks, plan.tp_msgs.1, plan.tp_msgs.2, plan.cpu_send, plan.cpu_recv
        )],
        tables: vec![msgs, gbs],
        goals,
    }
}
