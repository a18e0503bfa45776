//! f. Wake-up latency per notify backend, and what a send costs the sender
//! with nobody asleep vs with a sleeping receiver. Measured by [`crate::p2p`]
//! at its first message size:
//!
//! - **wake-up latency**: the ping-pong of section a with both receivers in
//!   `recv` without spin (`Spin::Off`), sleeping in the backend each time:
//!   one-way = RTT / 2 = send + wake + the receiver's return from its sleep;
//! - **send cost**: the duration of each `try_send` call (TSC around it)
//!   in a ping-pong whose far receiver busy-polls (nobody asleep: the
//!   eventcount check, one fence and one bitmap load, no syscall) or sleeps
//!   in the backend (the check finds the waiter bit, so the send also makes
//!   the wake syscall or queues the io_uring wake), with the sender's
//!   counters giving wake syscalls per send.

use shmcast_benches::report::{Table, XAxis};

use crate::p2p::{NotifyData, SendCost};
use crate::{med, size_label, Plan, Section};

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
        &["p50", "p99"],
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
    let mut lines = Vec::new();
    for (i, b) in d.backends.iter().enumerate() {
        let x = (1u64 << i) as f64;
        let name = if b.kind == d.default_backend {
            format!("{} (default)", b.kind)
        } else {
            b.kind.to_string()
        };
        if let Some(why) = &b.unsupported {
            wake.push(&name, x, vec![None, None]);
            send.push(&name, x, vec![awake, None, None]);
            lines.push(format!(
                "- {}: not measured on this machine ({why}).",
                b.kind
            ));
            continue;
        }
        wake.push(&name, x, vec![med(&b.wake_block), p99(&b.wake_all)]);
        send.push(
            &name,
            x,
            vec![awake, med(&b.asleep.block), p99(&b.asleep.all)],
        );
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
                 recv() without spin, so every message wakes a sleeper. Send cost: each \
                 try_send timed on the sender (TSC) while the far receiver busy-polls or \
                 sleeps in the backend; the sender's own receiver busy-polls. Default \
                 backend here: {}.",
                plan.p2p_blocks, plan.round_trips, d.default_backend
            ),
            lines.join("\n"),
        ],
        tables: vec![wake, send],
        goals: Vec::new(),
    }
}
