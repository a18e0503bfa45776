//! Unicast: one receiver. At head `h` the slot is ready when
//! `seq == h + 1` (Acquire, in `Receiver::next_ready`); after copying out the
//! receiver stores `head = h + 1` (Release, here).

use crate::receiver::Receiver;
use crate::storage::Regions;
use crate::sync::atomic::Ordering::Release;

/// Publish the receiver's head after it finished reading everything below `to`.
pub(crate) fn publish_head<R: Regions>(rx: &Receiver<R>, to: u64) {
    // ORDERING(head): Release; pairs with the Acquire load of head in
    // Producer::claim_inner: our reads of the slots below `to` happen before
    // any producer reuses them.
    rx.ring.regions.header().head.store(to, Release);
}
