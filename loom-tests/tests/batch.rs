//! A batch claim racing a single claim.
//!
//! These models are cheap, so they run with one preemption more than the
//! suite's bound (`model_deep`).

use shmcast_loom_tests::{model_deep, scenarios};

#[test]
fn batch_claim_races_a_single_claim() {
    model_deep(scenarios::batch_races_single);
}
