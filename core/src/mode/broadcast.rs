//! Broadcast: every receiver reads like a unicast receiver but advances only
//! its own `local_head` (in its table entry). The shared head, which
//! producers check for "full", is raised to the minimum of the live
//! receivers' heads by `Ring::raise_min_head` (`subscribers.rs`): by each
//! receiver every [`SCAN_EVERY`] messages, and by a producer that finds the
//! ring full. Messages addressed to other receivers are stepped over
//! (`SlotSnapshot::is_for`).

use crate::receiver::Receiver;
use crate::storage::Regions;
use crate::sync::atomic::Ordering::Release;

/// A receiver raises the shared head after this many messages.
pub(crate) const SCAN_EVERY: u32 = 16;

/// Publish the receiver's `local_head` after it moved `steps` positions,
/// and raise the shared head every [`SCAN_EVERY`] positions.
pub(crate) fn publish_head<R: Regions>(rx: &Receiver<R>, to: u64, steps: u32) {
    let entry = rx.ring.regions.entry(rx.joined.id.index());
    // ORDERING(local_head): Release; pairs with the Acquire load in
    // raise_min_head, which passes it on to producers through head.
    entry.local_head.store(to, Release);
    let n = rx.since_scan.get().saturating_add(steps);
    if n >= SCAN_EVERY {
        rx.since_scan.set(0);
        rx.ring.raise_min_head();
    } else {
        rx.since_scan.set(n);
    }
}
