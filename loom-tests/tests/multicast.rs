//! Multicast: competing receivers copy, then CAS the head; losers discard.

use shmcast_loom_tests::{model, scenarios};

#[test]
fn competing_receivers_get_each_message_once() {
    model(scenarios::multicast_competing);
}
