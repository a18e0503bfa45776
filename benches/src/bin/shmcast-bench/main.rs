//! `shmcast-bench`: shmcast against pipes, unix sockets, shared memory +
//! eventfd and a raw shared-memory spin, between real processes.
//!
//! ```text
//! cargo run --release -p shmcast-benches --bin shmcast-bench -- [--quick | --smoke]
//!     [--only latency,streaming,broadcast,multicast,throughput,notify] [--out DIR]
//!     [--sizes 64,4096] [--nice -20]
//! ```
//!
//! Every measurement runs between processes: this binary re-executes itself
//! (`current_exe`) with a worker role, hands the worker its fds by
//! inheritance and shmcast channel names to attach to, and drives it over
//! its stdin/stdout. The sending side and the receiving side are pinned to
//! different CPUs (`sched_setaffinity`).
//!
//! **Method.** The host moves the vCPUs, so a floor measured a few seconds
//! apart drifts. Mechanisms are therefore compared in short alternating
//! blocks inside one run (the order rotates from block to block), and
//! comparisons are medians of per-block ratios, never ratios of separately
//! timed points. Each size starts with a warm-up of every mechanism.
//!
//! Sections (see each module): a. latency and b. streaming ([`p2p`]),
//! c. broadcast and d. multicast fan-out ([`fanout`]), e. throughput
//! ([`throughput`]), f. notify backends ([`notify`], measured by [`p2p`]).
//!
//! Output: markdown tables shaped like the RFC's (a column per mechanism),
//! CSV and an SVG plot per table, and `report.md`, in
//! `bench-results/<UTC timestamp>/` (or `--out`). Progress goes to stderr.

mod fanout;
mod notify;
mod p2p;
mod throughput;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shmcast::BackendKind;
use shmcast_benches::report::{fmt_bytes, fmt_value, Table};
use shmcast_benches::sys;
use shmcast_benches::worker::{Args, WORKER_ARG};

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Opcodes of control records, shared by every worker kind.
pub(crate) mod op {
    /// Exit.
    pub(crate) const QUIT: u64 = 0;
    /// Worker → parent: set up and about to receive / send.
    pub(crate) const READY: u64 = 1;
    /// Worker → parent: run finished, results follow in the record.
    pub(crate) const DONE: u64 = 2;
    /// Ping-pong: `[PINGPONG, mech, round trips]`.
    pub(crate) const PINGPONG: u64 = 3;
    /// Receive a stream: `[STREAM, mech, messages]`.
    pub(crate) const STREAM: u64 = 4;
    /// Broadcast receiver: `[BCAST, mech, messages]`.
    pub(crate) const BCAST: u64 = 5;
    /// Competing (multicast) receiver: `[MCAST, mech]`, until an end marker.
    pub(crate) const MCAST: u64 = 6;
    /// Producer: `[PRODUCE, channel, messages, size, batch, producer, yield]`.
    pub(crate) const PRODUCE: u64 = 7;
    /// Producer: start now.
    pub(crate) const GO: u64 = 8;
}

/// The mechanisms, named once for every table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mech {
    Pipe,
    Unix,
    ShmEventfd,
    /// The raw ring plus a shared futex word: `FUTEX_WAKE(1)` per message,
    /// the receiver in `FUTEX_WAIT` every time (the baseline of section f).
    BareFutex,
    RawSpin,
    /// shmcast, `try_recv` busy-poll.
    ShmcastBusy,
    /// iceoryx2 publish-subscribe, busy-polling subscriber.
    Iceoryx2,
    /// shmcast, `try_recv` + `sched_yield` while empty.
    ShmcastPolling,
    /// shmcast, blocking `recv` with the receiver's defaults (`Spin::Auto`,
    /// default backend).
    ShmcastRecv,
    /// shmcast, blocking `recv` without spinning, sleeping in this backend.
    ShmcastSleep(BackendKind),
}

impl Mech {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mech::Pipe => "pipe",
            Mech::Unix => "unix sock",
            Mech::ShmEventfd => "shm+eventfd",
            Mech::BareFutex => "bare futex",
            Mech::RawSpin => "raw spin (floor)",
            Mech::ShmcastBusy => "shmcast (busy-poll)",
            Mech::Iceoryx2 => "iceoryx2 (busy-poll)",
            Mech::ShmcastPolling => "shmcast (polling)",
            Mech::ShmcastRecv => "shmcast recv (default)",
            Mech::ShmcastSleep(BackendKind::Futex) => "shmcast sleep (futex)",
            Mech::ShmcastSleep(BackendKind::UringFutex) => "shmcast sleep (uring-futex)",
            Mech::ShmcastSleep(BackendKind::MsgRing) => "shmcast sleep (msg-ring)",
            Mech::ShmcastSleep(BackendKind::Eventfd) => "shmcast sleep (eventfd)",
        }
    }

    pub(crate) fn code(self) -> u64 {
        match self {
            Mech::Pipe => 0,
            Mech::Unix => 1,
            Mech::ShmEventfd => 2,
            Mech::RawSpin => 3,
            Mech::ShmcastBusy => 4,
            Mech::ShmcastPolling => 5,
            Mech::ShmcastRecv => 6,
            Mech::BareFutex => 7,
            Mech::Iceoryx2 => 8,
            Mech::ShmcastSleep(k) => 16 + u64::from(k.code()),
        }
    }

    pub(crate) fn from_code(c: u64) -> Option<Mech> {
        Some(match c {
            0 => Mech::Pipe,
            1 => Mech::Unix,
            2 => Mech::ShmEventfd,
            3 => Mech::RawSpin,
            4 => Mech::ShmcastBusy,
            5 => Mech::ShmcastPolling,
            6 => Mech::ShmcastRecv,
            7 => Mech::BareFutex,
            8 => Mech::Iceoryx2,
            c => Mech::ShmcastSleep(BackendKind::from_code(
                u32::try_from(c.checked_sub(16)?).ok()?,
            )?),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Smoke,
    Quick,
    Full,
}

/// What a run measures and how much.
#[derive(Debug)]
pub(crate) struct Plan {
    /// CPU of the sending side (and of the parent).
    pub(crate) cpu_send: usize,
    /// CPU of the receiving side.
    pub(crate) cpu_recv: usize,
    pub(crate) p2p_sizes: Vec<usize>,
    pub(crate) p2p_blocks: usize,
    pub(crate) round_trips: usize,
    pub(crate) warmup: usize,
    /// Streaming messages per run: bytes / size, clamped to (min, max).
    pub(crate) stream: (usize, usize, usize),
    pub(crate) fan_sizes: Vec<usize>,
    pub(crate) fan_receivers: Vec<usize>,
    pub(crate) fan_blocks: usize,
    pub(crate) fan_msgs: (usize, usize, usize),
    pub(crate) tp_sizes: Vec<usize>,
    pub(crate) tp_producers: Vec<usize>,
    pub(crate) tp_blocks: usize,
    pub(crate) tp_msgs: (usize, usize, usize),
}

/// `bytes / size` clamped to `[min, max]`.
pub(crate) fn count_for((bytes, min, max): (usize, usize, usize), size: usize) -> usize {
    (bytes / size.max(1)).clamp(min, max)
}

impl Plan {
    fn new(level: Level, cpu_send: usize, cpu_recv: usize) -> Plan {
        const KIB: usize = 1024;
        const MIB: usize = 1024 * 1024;
        let all_sizes = vec![64, 256, KIB, 4 * KIB, 16 * KIB, 32 * KIB];
        let fan_sizes = vec![64, 4 * KIB, 32 * KIB];
        let tp_sizes = vec![8, 64, 4 * KIB];
        match level {
            Level::Smoke => Plan {
                cpu_send,
                cpu_recv,
                p2p_sizes: vec![64, 4 * KIB],
                p2p_blocks: 1,
                round_trips: 50,
                warmup: 10,
                stream: (MIB / 8, 50, 200),
                fan_sizes: vec![64],
                fan_receivers: vec![1, 3],
                fan_blocks: 1,
                fan_msgs: (MIB / 8, 50, 200),
                tp_sizes: vec![64],
                tp_producers: vec![1, 2],
                tp_blocks: 1,
                tp_msgs: (MIB, 2_000, 20_000),
            },
            Level::Quick => Plan {
                cpu_send,
                cpu_recv,
                p2p_sizes: all_sizes,
                p2p_blocks: 5,
                round_trips: 500,
                warmup: 200,
                stream: (2 * MIB, 500, 5_000),
                fan_sizes,
                fan_receivers: vec![1, 2, 4, 8, 16],
                fan_blocks: 2,
                fan_msgs: (2 * MIB, 100, 500),
                tp_sizes,
                tp_producers: vec![1, 2, 4],
                tp_blocks: 1,
                tp_msgs: (16 * MIB, 50_000, 500_000),
            },
            Level::Full => Plan {
                cpu_send,
                cpu_recv,
                p2p_sizes: all_sizes,
                p2p_blocks: 15,
                round_trips: 2_000,
                warmup: 1_000,
                stream: (8 * MIB, 2_000, 20_000),
                fan_sizes,
                fan_receivers: vec![1, 2, 4, 8, 16],
                fan_blocks: 7,
                fan_msgs: (16 * MIB, 500, 2_000),
                tp_sizes,
                tp_producers: vec![1, 2, 4],
                tp_blocks: 3,
                tp_msgs: (256 * MIB, 100_000, 2_000_000),
            },
        }
    }
}

/// A goal from the issue, and where the run puts it.
#[derive(Debug)]
pub(crate) struct Goal {
    pub(crate) what: String,
    pub(crate) measured: String,
    pub(crate) met: Option<bool>,
}

/// A report section: text, tables, goals.
#[derive(Debug, Default)]
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) text: Vec<String>,
    pub(crate) tables: Vec<Table>,
    pub(crate) goals: Vec<Goal>,
}

/// Print progress on stderr, with the time since the start.
pub(crate) fn progress(msg: &str) {
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed();
    eprintln!("[{:>6.1}s] {msg}", t.as_secs_f64());
}

/// A channel name unique to this run.
pub(crate) fn channel_name(what: &str) -> String {
    format!("shmcast-bench-{}-{what}", std::process::id())
}

/// Median of the per-block ratios `a[i] / b[i]`.
pub(crate) fn ratio_median(a: &[f64], b: &[f64]) -> Option<f64> {
    let mut r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite() && **y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    (!r.is_empty()).then(|| shmcast_benches::stats::median(&mut r))
}

/// Median of samples, `None` when there are none.
pub(crate) fn med(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| shmcast_benches::stats::median(&mut v))
}

fn usage() -> &'static str {
    "usage: shmcast-bench [--quick | --smoke] [--only SECTIONS] [--out DIR] [--sizes LIST] [--nice N]\n\
     \n\
     --quick       a short run (under a minute on 2 cores)\n\
     --smoke       a tiny run that only checks every mechanism works\n\
     --only LIST   comma-separated: latency,streaming,broadcast,multicast,throughput,notify\n\
     --out DIR     where to write tables (default bench-results/<UTC timestamp>)\n\
     --sizes LIST  message sizes in bytes for every section (default: each section's own)\n\
     --nice N      run the bench and its workers at this nice value (e.g. -20 on a\n\
     \x20             machine shared with other work; needs privilege below 0)\n"
}

const SECTIONS: [&str; 6] = [
    "latency",
    "streaming",
    "broadcast",
    "multicast",
    "throughput",
    "notify",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).map(String::as_str) == Some(WORKER_ARG) {
        run_worker(&args[2..])
    } else {
        run(&args[1..])
    };
    if let Err(e) = result {
        eprintln!("shmcast-bench: {e}");
        std::process::exit(1);
    }
}

fn run_worker(args: &[String]) -> Res<()> {
    // A worker must not outlive the bench (e.g. after a panic or a kill).
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    let kind = args.first().map(String::as_str).unwrap_or("");
    let parsed = Args::parse(&args[1..]);
    sys::pin_to_cpu(parsed.num("cpu")? as usize)?;
    match kind {
        "p2p" => p2p::worker(&parsed),
        "fan" => fanout::worker(&parsed),
        "source" => throughput::worker(&parsed),
        other => Err(format!("unknown worker kind {other:?}").into()),
    }
}

fn run(args: &[String]) -> Res<()> {
    let mut level = Level::Full;
    let mut only: Vec<String> = SECTIONS.iter().map(|s| (*s).to_owned()).collect();
    let mut out: Option<PathBuf> = None;
    let mut sizes: Option<Vec<usize>> = None;
    let mut nice: Option<i32> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                if level != Level::Smoke {
                    level = Level::Quick;
                }
            }
            "--smoke" => level = Level::Smoke,
            "--only" => {
                let list = it.next().ok_or("--only needs a list")?;
                only = list.split(',').map(|s| s.trim().to_owned()).collect();
                if let Some(bad) = only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!("unknown section {bad:?}\n{}", usage()).into());
                }
            }
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a directory")?)),
            "--sizes" => {
                let list = it.next().ok_or("--sizes needs a list")?;
                let parsed: Result<Vec<usize>, _> =
                    list.split(',').map(|s| s.trim().parse::<usize>()).collect();
                match parsed {
                    Ok(v) if !v.is_empty() && v.iter().all(|&s| s >= 8) => sizes = Some(v),
                    _ => return Err("--sizes: sizes in bytes, at least 8 each".into()),
                }
            }
            "--nice" => {
                let n = it.next().ok_or("--nice needs a value")?;
                nice = Some(n.parse().map_err(|_| "--nice: an integer")?);
            }
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage()).into()),
        }
    }
    let want = |s: &str| only.iter().any(|o| o == s);

    let cpus = sys::allowed_cpus();
    let (cpu_send, cpu_recv) = match cpus.as_slice() {
        [a, b, ..] => (*a, *b),
        [a] => {
            eprintln!("warning: only CPU {a} is available; both sides share it");
            (*a, *a)
        }
        [] => (0, 0),
    };
    let mut plan = Plan::new(level, cpu_send, cpu_recv);
    if let Some(sizes) = sizes {
        plan.p2p_sizes = sizes.clone();
        plan.fan_sizes = sizes.clone();
        plan.tp_sizes = sizes;
    }
    if let Some(n) = nice {
        // Workers inherit the nice value through fork and exec.
        rustix::process::setpriority_process(None, n)
            .map_err(|e| format!("--nice {n}: setpriority: {e}"))?;
    }
    let nice_now = rustix::process::getpriority_process(None).unwrap_or(0);
    let limit = match level {
        Level::Smoke => Duration::from_secs(120),
        Level::Quick => Duration::from_secs(300),
        Level::Full => Duration::from_secs(900),
    };
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("shmcast-bench: watchdog: still running after {limit:?}, giving up");
        std::process::exit(3);
    });
    progress(&format!(
        "shmcast-bench {:?}: sender side on CPU {cpu_send}, receivers on CPU {cpu_recv}",
        level
    ));
    let load_before = sys::loadavg();
    let timer_ns = timer_overhead_ns();
    let started = Instant::now();

    let mut sections = Vec::new();
    let mut notify_data = None;
    if want("latency") || want("streaming") || want("notify") {
        let (secs, data) = p2p::run(&plan, want("latency"), want("streaming"), want("notify"))?;
        sections.extend(secs);
        notify_data = data;
    }
    if want("broadcast") || want("multicast") {
        sections.extend(fanout::run(&plan, want("broadcast"), want("multicast"))?);
    }
    if want("throughput") {
        sections.push(throughput::run(&plan)?);
    }
    if let Some(data) = &notify_data {
        sections.push(notify::section(&plan, data));
    }
    let elapsed = started.elapsed();
    let load_after = sys::loadavg();

    let dir = out.unwrap_or_else(|| Path::new("bench-results").join(timestamp()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for s in &sections {
        for t in &s.tables {
            t.write_all(&dir)?;
        }
    }
    let header = Header {
        level,
        args: args.join(" "),
        cpu_send,
        cpu_recv,
        cpus: cpus.len(),
        nice: nice_now,
        load_before,
        load_after,
        timer_ns,
        elapsed,
    };
    let report = render(&header, &plan, &sections);
    std::fs::write(dir.join("report.md"), &report)?;
    println!("{report}");
    let failed: Vec<&Goal> = sections
        .iter()
        .flat_map(|s| &s.goals)
        .filter(|g| g.met == Some(false))
        .collect();
    progress(&format!(
        "done in {:.1}s; {} goal(s) missed; results in {}",
        elapsed.as_secs_f64(),
        failed.len(),
        dir.display()
    ));
    Ok(())
}

/// Cost of one round-trip timestamp ([`sys::Ticks::read`]), in ns.
fn timer_overhead_ns() -> f64 {
    let n = 200_000;
    let t = Instant::now();
    let mut acc = 0u64;
    for _ in 0..n {
        acc = acc.wrapping_add(std::hint::black_box(sys::Ticks::read()));
    }
    std::hint::black_box(acc);
    t.elapsed().as_nanos() as f64 / n as f64
}

#[derive(Debug)]
struct Header {
    level: Level,
    args: String,
    cpu_send: usize,
    cpu_recv: usize,
    cpus: usize,
    nice: i32,
    load_before: String,
    load_after: String,
    timer_ns: f64,
    elapsed: Duration,
}

fn render(h: &Header, plan: &Plan, sections: &[Section]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# shmcast-bench results ({:?} run)\n", h.level);
    let _ = writeln!(s, "- date (UTC): {}", timestamp());
    let _ = writeln!(s, "- commit: {}", git_rev());
    let _ = writeln!(s, "- command: `shmcast-bench {}`", h.args);
    let _ = writeln!(s, "- kernel: {}", read_trim("/proc/sys/kernel/osrelease"));
    let _ = writeln!(s, "- CPU: {} ({} CPUs allowed)", cpu_model(), h.cpus);
    let _ = writeln!(
        s,
        "- pinning: sending side on CPU {}, receiving side on CPU {}",
        h.cpu_send, h.cpu_recv
    );
    let _ = writeln!(s, "- nice value of the bench processes: {}", h.nice);
    let _ = writeln!(
        s,
        "- load average (1/5/15 min): {} before, {} after",
        h.load_before, h.load_after
    );
    let _ = writeln!(
        s,
        "- timer: one round-trip timestamp (TSC on x86-64) costs {:.1} ns",
        h.timer_ns
    );
    let _ = writeln!(s, "- duration: {:.1} s", h.elapsed.as_secs_f64());
    let _ = writeln!(
        s,
        "- plan: latency {} blocks x {} round trips per mechanism and size (warm-up: {} or \
         twice the ring capacity); broadcast/multicast {} blocks; throughput {} blocks",
        plan.p2p_blocks, plan.round_trips, plan.warmup, plan.fan_blocks, plan.tp_blocks
    );
    s.push_str(
        "\nMethod: every number comes from real processes (this binary re-executed with a \
         worker role), the two sides pinned to different CPUs. Mechanisms are compared in short \
         alternating blocks within one run (order rotated per block); ratios are medians of \
         per-block ratios, so drift of the host between blocks cancels.\n",
    );
    let goals: Vec<&Goal> = sections.iter().flat_map(|s| &s.goals).collect();
    if !goals.is_empty() {
        s.push_str("\n## Goals\n\n| goal | measured | status |\n|---|---|---|\n");
        for g in goals {
            let status = match g.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "pending",
            };
            let _ = writeln!(s, "| {} | {} | {} |", g.what, g.measured, status);
        }
    }
    for sec in sections {
        let _ = writeln!(s, "\n## {}\n", sec.title);
        for t in &sec.text {
            let _ = writeln!(s, "{t}\n");
        }
        for t in &sec.tables {
            s.push_str(&t.markdown());
            let _ = writeln!(s, "\n(plot: `{}.svg`, data: `{}.csv`)\n", t.name, t.name);
        }
    }
    s
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    read_trim("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn git_rev() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// UTC time as `YYYYmmdd-HHMMSS`.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// "64 B" etc. for row labels.
pub(crate) fn size_label(size: usize) -> String {
    fmt_bytes(size as f64)
}

/// A ratio for goal lines ("1.23x").
pub(crate) fn x(v: Option<f64>) -> String {
    v.map_or("n/a".to_owned(), |v| format!("{v:.2}x"))
}

/// A value for goal lines.
pub(crate) fn val(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".to_owned(), |v| format!("{} {unit}", fmt_value(v)))
}
