//! Batch receive: one head publication per batch, across a lap wrap.

use shmcast_core::Mode;
use shmcast_loom_tests::{model, scenarios};

#[test]
fn unicast_batch_receive_across_a_wrap() {
    model(|| scenarios::batch_receive_wrap(Mode::Unicast));
}

#[test]
fn broadcast_batch_receive_across_a_wrap() {
    model(|| scenarios::batch_receive_wrap(Mode::Broadcast));
}
