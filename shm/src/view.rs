//! A read-only look at a channel's ring, for the handles.

use shmcast_core::HeaderWords;
use shmcast_core::{Counters, Geometry, Mode, Regions, Ring, SubscriberId};

use crate::ShmRegions;

/// What a handle may look at in its channel's ring: geometry, positions,
/// state and the per-entry counters. It cannot change anything: closing
/// the channel is [`Channel::destroy`](crate::Channel::destroy), and
/// joining goes through a handle's role.
///
/// Everything here is read from memory every peer of the channel shares,
/// so it is what the peers wrote, not a promise (the creator's uid, for
/// one, comes from `SO_PEERCRED` in
/// [`Attachment::creator_uid`](crate::Attachment::creator_uid), not from
/// here). `raw_ring` on the handles gives the whole core ring instead.
#[derive(Clone, Copy, Debug)]
pub struct RingView<'a>(pub(crate) &'a Ring<ShmRegions>);

impl<'a> RingView<'a> {
    /// Capacity, slot size, largest message, subscriber entries.
    pub fn geometry(&self) -> &'a Geometry {
        self.0.geometry()
    }

    /// The delivery mode.
    pub fn mode(&self) -> Mode {
        self.0.mode()
    }

    /// The header's geometry words as they are in shared memory.
    pub fn header_words(&self) -> HeaderWords {
        self.0.header_words()
    }

    /// Next position a sender claims.
    pub fn tail(&self) -> u64 {
        self.0.tail()
    }

    /// The shared consumer head (every position below it is free).
    pub fn head(&self) -> u64 {
        self.0.head()
    }

    /// Whether the channel was closed.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Subscriber entries in use (senders and receivers).
    pub fn active_subscribers(&self) -> usize {
        self.0.active_subscribers()
    }

    /// Whether entry `id` is an attached receiver.
    pub fn is_receiver(&self, id: SubscriberId) -> bool {
        self.0.is_receiver(id)
    }

    /// Entry `id`'s counters (sent, received, lagged); they stay readable
    /// after the subscriber leaves, until the entry is reused.
    pub fn counters(&self, id: SubscriberId) -> Option<Counters> {
        self.0.counters(id)
    }

    /// The permission bits the creator wrote into the header (like chmod's;
    /// informational: the creator checks attaches against its own copy).
    pub fn permissions(&self) -> u32 {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed: a value for display, synchronised with nothing.
        self.0.regions().header().geometry.perm_mode.load(Relaxed) & 0o777
    }
}
