//! The sleep / wake eventcount: no lost wake-up, no wake when nobody sleeps.
//!
//! These models are cheap, so they run with one preemption more than the
//! suite's bound (`model_deep`).

use shmcast_core::Mode;
use shmcast_loom_tests::{model, model_deep, scenarios};

#[test]
fn no_lost_wakeup_unicast() {
    model_deep(|| scenarios::wake_no_lost_wakeup(Mode::Unicast));
}

#[test]
fn no_lost_wakeup_broadcast() {
    model_deep(|| scenarios::wake_no_lost_wakeup(Mode::Broadcast));
}

#[test]
fn no_lost_wakeup_multicast() {
    model_deep(|| scenarios::wake_no_lost_wakeup(Mode::Multicast));
}

#[test]
fn no_wake_when_nobody_sleeps_unicast() {
    model_deep(|| scenarios::wake_none_when_awake(Mode::Unicast));
}

#[test]
fn no_wake_when_nobody_sleeps_broadcast() {
    model_deep(|| scenarios::wake_none_when_awake(Mode::Broadcast));
}

#[test]
fn no_wake_when_nobody_sleeps_multicast() {
    model_deep(|| scenarios::wake_none_when_awake(Mode::Multicast));
}

#[test]
fn one_broadcast_bump_wakes_every_sleeper() {
    model_deep(scenarios::wake_broadcast_one_bump);
}

#[test]
fn broadcast_relay_wakes_every_sleeper() {
    model(|| scenarios::wake_broadcast_relay(2));
}
