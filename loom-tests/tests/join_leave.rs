//! Join and leave racing a producer (broadcast).
//!
//! These models are cheap, so they run with one preemption more than the
//! suite's bound (`model_deep`).

use shmcast_loom_tests::{model_deep, scenarios};

#[test]
fn join_racing_the_reuse_of_its_start_slot() {
    model_deep(scenarios::broadcast_join_races_reuse);
}

#[test]
fn leave_unblocks_a_producer_waiting_on_a_full_ring() {
    model_deep(|| scenarios::broadcast_leave_unblocks_producer(true, true));
}

#[test]
fn leave_unblocks_a_producer_without_reading() {
    model_deep(|| scenarios::broadcast_leave_unblocks_producer(true, false));
}

#[test]
fn leave_unblocks_a_producer_that_first_scans() {
    model_deep(|| scenarios::broadcast_leave_unblocks_producer(false, true));
}

#[test]
fn evicting_a_dead_receiver_unblocks_a_producer() {
    model_deep(scenarios::broadcast_evict_unblocks_producer);
}

#[test]
fn evicting_a_dead_unicast_receiver_hands_over_its_head() {
    model_deep(scenarios::unicast_evict_hands_over_the_head);
}
