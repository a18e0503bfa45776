//! A zero-copy send guard dropped without commit becomes a skip record.
//!
//! These models are cheap, so they run with one preemption more than the
//! suite's bound (`model_deep`).

use shmcast_core::Mode;
use shmcast_loom_tests::{model_deep, scenarios};

#[test]
fn abandoned_guard_is_skipped_unicast() {
    model_deep(|| scenarios::abandoned_send_guard(Mode::Unicast));
}

#[test]
fn abandoned_guard_is_skipped_broadcast() {
    model_deep(|| scenarios::abandoned_send_guard(Mode::Broadcast));
}

#[test]
fn abandoned_guard_is_skipped_multicast() {
    model_deep(|| scenarios::abandoned_send_guard(Mode::Multicast));
}
