//! The send protocol: two producers claim and publish across a lap wrap.

use shmcast_loom_tests::{model, scenarios};

#[test]
fn two_producers_claim_and_publish_across_a_wrap() {
    model(scenarios::two_producers_wrap);
}
