//! Broadcast: the slower receiver holds the producer back until the min-head
//! rescan of a full ring finds it moved.

use shmcast_loom_tests::{model, scenarios};

#[test]
fn slow_receiver_holds_back_the_producer() {
    model(scenarios::broadcast_slow_receiver);
}
