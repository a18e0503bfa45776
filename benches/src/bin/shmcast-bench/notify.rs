//! f. Wake-up latency per notify backend, and the sender's cost of a send
//! when nobody sleeps vs when a receiver does.
//!
//! TODO(notify): pending notify backends. This needs the blocking API of
//! the `shmcast` crate (`Receiver::recv` / `recv_timeout`, `Sender::send`,
//! the backend choice through `SHMCAST_NOTIFY=futex|uring-futex|msg-ring|eventfd`
//! and the per-sender wake-syscall counter). Until it lands this section
//! measures nothing and says so; it never prints numbers it did not measure.
//! The plan, for when it lands:
//! - wake-up latency: ping-pong where the receiver sleeps in `recv()`
//!   (one-way = RTT/2), per backend, alternating blocks as in section a;
//! - sender cost: `send` with the receiver spinning (no waiter bit set: the
//!   eventcount check only) vs with the receiver asleep (one wake syscall per
//!   send, read from the stats counter);
//! - the sleeping-receiver rows of section a and sleeping receivers in
//!   sections c and d.

use crate::{progress, Goal, Plan, Section};

/// The notify backends the bench will compare.
const BACKENDS: [&str; 4] = ["futex", "uring-futex", "msg-ring", "eventfd"];

pub(crate) fn run(_plan: &Plan) -> Section {
    progress("notify: pending notify backends (the blocking API has not landed)");
    Section {
        title: "f. Wake-up latency per notify backend — pending notify backends".into(),
        text: vec![format!(
            "**Pending notify backends.** Not measured: the blocking API (`recv`, \
             `recv_timeout`, `send`, backend choice, wake-syscall counter) has not landed in \
             `shmcast` yet. When it does, this section reports, per backend ({}), the wake-up \
             latency of a sleeping receiver and the sender's cost of a send with nobody \
             asleep vs with a sleeping receiver; section a gains a sleeping-receiver row per \
             backend and sections c and d switch their receivers from polling to sleeping.",
            BACKENDS.join(", ")
        )],
        tables: Vec::new(),
        goals: vec![Goal {
            what: "wake-up latency and send cost per notify backend".into(),
            measured: "pending notify backends".into(),
            met: None,
        }],
    }
}
