//! A sender that dies mid-send (claimed, never published): receivers step
//! over its position once it is gone, and never over a live one's.

use shmcast_core::Mode;
use shmcast_loom_tests::scenarios::Fate;
use shmcast_loom_tests::{model, scenarios};

#[test]
fn dead_sender_is_stepped_over_unicast() {
    model(|| scenarios::dead_sender_is_stepped_over(Mode::Unicast, Fate::Dies));
}

#[test]
fn dead_sender_is_stepped_over_broadcast() {
    model(|| scenarios::dead_sender_is_stepped_over(Mode::Broadcast, Fate::Dies));
}

#[test]
fn dead_sender_is_stepped_over_multicast() {
    model(|| scenarios::dead_sender_is_stepped_over(Mode::Multicast, Fate::Dies));
}

#[test]
fn live_sender_is_waited_for() {
    model(|| scenarios::dead_sender_is_stepped_over(Mode::Unicast, Fate::Lives));
}

#[test]
fn what_a_dead_sender_published_arrives() {
    model(|| scenarios::dead_sender_is_stepped_over(Mode::Unicast, Fate::PublishesThenDies));
}
