//! f. Wake-up latency per notify backend, and what a send costs the sender
//! with nobody asleep vs with a sleeping receiver. Measured by [`crate::p2p`]
//! at its first message size:
//!
//! - **wake-up latency**: the ping-pong of section a with both receivers in
//!   `recv` without spin (`Spin::Off`), sleeping in the backend each time:
//!   one-way = RTT / 2 = send + wake + the receiver's return from its sleep;
//! - **the baseline**: a bare futex ping-pong in the same blocks (section
//!   a's "bare futex" mechanism): each side sleeps in `FUTEX_WAIT` (shared,
//!   not private: two processes) on a 32-bit word in the shared arena while
//!   it holds the old value, and the other stores the new value and calls
//!   `FUTEX_WAKE(1)`, every message, no spinning; the message goes through
//!   a raw ring beside the word. Each backend is judged by the median over
//!   blocks of (its median / the bare futex median of the same block);
//! - **send cost**: the duration of each `try_send` call (TSC around it)
//!   in a ping-pong whose far receiver busy-polls (nobody asleep: the
//!   eventcount check, one fence and one bitmap load, no syscall) or sleeps
//!   in the backend (the check finds the waiter bit, so the send also makes
//!   the wake syscall or queues the io_uring wake), with the sender's
//!   counters giving wake syscalls per send.

use shmcast_benches::report::{Table, XAxis};

use crate::p2p::{NotifyData, SendCost};
use crate::{med, ratio_median, size_label, val, x, Goal, Plan, Section};

/// Issue 6: a sleeping receiver's wake-up within this factor of a bare
/// futex wake measured in the same run.
const WAKE_LIMIT: f64 = 1.1;

fn p99(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| shmcast_benches::stats::quantile(&mut v, 0.99))
}

fn per_send(n: u64, c: &SendCost) -> String {
    if c.sends == 0 {
        "n/a".into()
    } else {
        format!("{:.2}", n as f64 / c.sends as f64)
    }
}

pub(crate) fn section(plan: &Plan, d: &NotifyData) -> Section {
    let label = size_label(d.size);
    let mut wake = Table::new(
        "notify-wakeup",
        &format!("Wake-up latency of a sleeping receiver, one-way (RTT/2), {label}"),
        "ns",
        "backend",
        &["p50", "p99", "vs bare futex (x)"],
    );
    let mut send = Table::new(
        "notify-send-cost",
        &format!("Sender's cost of one try_send, {label}"),
        "ns",
        "backend",
        &[
            "receiver awake (p50)",
            "receiver asleep (p50)",
            "receiver asleep (p99)",
        ],
    );
    for t in [&mut wake, &mut send] {
        t.x_axis = XAxis::Categories;
    }
    let awake = med(&d.awake.block);
    let bare = med(&d.bare_block);
    wake.push(
        "bare futex (baseline)",
        1.0,
        vec![bare, p99(&d.bare_all), bare.map(|_| 1.0)],
    );
    let mut lines = Vec::new();
    let mut goals = Vec::new();
    for (i, b) in d.backends.iter().enumerate() {
        let at = (1u64 << i) as f64;
        let name = if b.kind == d.default_backend {
            format!("{} (default)", b.kind)
        } else {
            b.kind.to_string()
        };
        let what = format!(
            "wake-up of a sleeping receiver ({}) <= {WAKE_LIMIT}x a bare futex wake",
            b.kind
        );
        if let Some(why) = &b.unsupported {
            wake.push(&name, 2.0 * at, vec![None, None, None]);
            send.push(&name, at, vec![awake, None, None]);
            lines.push(format!(
                "- {}: not measured on this machine ({why}).",
                b.kind
            ));
            goals.push(Goal {
                what,
                measured: format!("not measured on this machine ({why})"),
                met: None,
            });
            continue;
        }
        let ratio = ratio_median(&b.wake_block, &d.bare_block);
        wake.push(
            &name,
            2.0 * at,
            vec![med(&b.wake_block), p99(&b.wake_all), ratio],
        );
        send.push(
            &name,
            at,
            vec![awake, med(&b.asleep.block), p99(&b.asleep.all)],
        );
        goals.push(Goal {
            what,
            measured: format!(
                "{} ({} vs bare futex {}; median of per-block ratios)",
                x(ratio),
                val(med(&b.wake_block), "ns"),
                val(bare, "ns")
            ),
            met: ratio.map(|r| r <= WAKE_LIMIT),
        });
        lines.push(format!(
            "- {}: {} wake syscalls and {} io_uring-queued wakes per send with the receiver asleep.",
            b.kind,
            per_send(b.asleep.syscalls, &b.asleep),
            per_send(b.asleep.ring_wakes, &b.asleep),
        ));
    }
    lines.push(format!(
        "- receiver awake: {} wake syscalls per send (the eventcount check only).",
        per_send(d.awake.syscalls, &d.awake)
    ));
    goals.push(Goal {
        what: "zero wake syscalls per send while the receiver is awake".into(),
        measured: format!(
            "{} wake syscalls ({} io_uring-queued wakes) in {} sends",
            d.awake.syscalls, d.awake.ring_wakes, d.awake.sends
        ),
        met: (d.awake.sends > 0).then_some(d.awake.syscalls == 0),
    });
    wake.note(format!(
        "bare futex: the baseline, a ping-pong through a raw ring plus one shared 32-bit \
         futex word per direction (FUTEX_WAKE(1) on every send, FUTEX_WAIT whenever the \
         word still holds the old value, never spinning). \"vs bare futex\": the median \
         over blocks of (backend median / bare futex median in the same block); the goal \
         is <= {WAKE_LIMIT}x."
    ));
    send.note(
        "\"receiver awake\" does not depend on the backend (the sender only checks the \
         waiter bitmap); it is measured once per block and repeated on each row.",
    );
    Section {
        title: "f. Notify backends: wake-up latency and send cost".into(),
        text: vec![
            format!(
                "At {label}, {} blocks of {} round trips per backend, alternating with the \
                 mechanisms of section a. Wake-up latency: ping-pong with both receivers in \
                 recv() without spin, so every message wakes a sleeper. Baseline: the same \
                 ping-pong over a bare futex (section a's \"bare futex\": each side stores a \
                 new value in a shared 32-bit word and calls FUTEX_WAKE(1); the other sleeps \
                 in FUTEX_WAIT on it every time, no spinning), in the same blocks; each \
                 backend's ratio to it is the median of per-block ratios. Send cost: each \
                 try_send timed on the sender (TSC) while the far receiver busy-polls or \
                 sleeps in the backend; the sender's own receiver busy-polls. Default \
                 backend here: {}.",
                plan.p2p_blocks, plan.round_trips, d.default_backend
            ),
            lines.join("\n"),
        ],
        tables: vec![wake, send],
        goals,
    }
}
