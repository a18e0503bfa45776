//! Unicast: one producer against the single receiver, reading in place.
//!
//! These models are cheap, so they run with one preemption more than the
//! suite's bound (`model_deep`).

use shmcast_loom_tests::{model_deep, scenarios};

#[test]
fn zero_copy_read_holds_its_slot_across_a_wrap() {
    model_deep(scenarios::unicast_zero_copy_wrap);
}
