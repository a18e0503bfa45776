//! [`Ring`]: the shared view every handle holds.

use core::fmt;

use crate::error::JoinError;
use crate::layout::{
    Geometry, HeaderWords, ENTRY_ACTIVE, ENTRY_STATUS_MASK, ROLE_RECV, ROLE_SEND, STATE_CLOSED,
    STATE_OPEN,
};
use crate::mode::Mode;
use crate::producer::Producer;
use crate::receiver::Receiver;
use crate::storage::Regions;
use crate::sync::atomic::{AtomicU32, Ordering::*};
use crate::wake::WakeSet;

/// Index of a subscriber (sender, receiver, or both) in the ring's table.
/// Carried in every message as its sender, and used to address a message to
/// one receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(pub u32);

impl SubscriberId {
    /// The table index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The roles a subscriber can join with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Send only.
    Send,
    /// Receive only.
    Recv,
    /// Send and receive (one table entry, two handles).
    Both,
}

impl Role {
    pub(crate) fn bits(self) -> u64 {
        match self {
            Role::Send => ROLE_SEND,
            Role::Recv => ROLE_RECV,
            Role::Both => ROLE_SEND | ROLE_RECV,
        }
    }

    /// Whether this role may send.
    pub fn can_send(self) -> bool {
        self.bits() & ROLE_SEND != 0
    }

    /// Whether this role may receive.
    pub fn can_recv(self) -> bool {
        self.bits() & ROLE_RECV != 0
    }
}

/// A ring over some [`Regions`]: the validated [`Geometry`] (process-local)
/// plus the memory. Cloning is cheap when `R` is (it is for
/// [`crate::HeapRegions`], an `Arc`, and for [`crate::RawRegions`], two
/// pointers). Handles ([`Producer`], [`Receiver`]) each hold a clone.
pub struct Ring<R> {
    pub(crate) geo: Geometry,
    pub(crate) regions: R,
}

impl<R: Clone> Clone for Ring<R> {
    fn clone(&self) -> Self {
        Ring {
            geo: self.geo,
            regions: self.regions.clone(),
        }
    }
}

impl<R> fmt::Debug for Ring<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("mode", &self.geo.mode())
            .field("capacity", &self.geo.capacity())
            .field("max_message", &self.geo.max_message())
            .finish_non_exhaustive()
    }
}

/// A ring on the heap, for in-process use, tests and loom models.
#[cfg(feature = "alloc")]
pub type HeapRing = Ring<crate::storage::HeapRegions>;

#[cfg(feature = "alloc")]
impl Ring<crate::storage::HeapRegions> {
    /// A new, open ring on the heap.
    ///
    /// ```
    /// use shmcast_core::{Config, HeapRing, Mode};
    /// let ring = HeapRing::new(&Config::new(Mode::Unicast).capacity(8).max_message(64))?;
    /// let tx = ring.producer()?;
    /// let rx = ring.receiver()?;
    /// tx.try_send(b"hello")?;
    /// let mut buf = [0u8; 64];
    /// let info = rx.try_recv(&mut buf)?;
    /// assert_eq!(&buf[..info.len], b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(config: &crate::Config) -> Result<Self, crate::ConfigError> {
        let geo = config.geometry()?;
        let regions = crate::storage::HeapRegions::new(&geo);
        // SAFETY: the regions were built for this very geometry.
        let ring = unsafe { Ring::from_regions(geo, regions) };
        ring.initialize(0, 0, 0);
        Ok(ring)
    }
}

impl<R: Regions> Ring<R> {
    /// A ring over `regions`, which must already hold a ring of geometry
    /// `geo` (attach) or be zeroed and about to be [`Ring::initialize`]d
    /// (create).
    ///
    /// # Safety
    ///
    /// `regions` was built for `geo` (e.g. [`crate::RawRegions::new`] with
    /// the same geometry); accessors index with `geo`'s counts.
    pub unsafe fn from_regions(geo: Geometry, regions: R) -> Self {
        Ring { geo, regions }
    }

    /// Write the header of a new ring into zeroed regions and open it.
    /// Only the creator calls this, before any other process can see the
    /// memory.
    pub fn initialize(&self, creator_uid: u32, creator_gid: u32, perm_mode: u32) {
        let g = &self.regions.header().geometry;
        let w = self.geo.header_words();
        g.magic.store(w.magic, Relaxed);
        g.version.store(w.version, Relaxed);
        g.mode.store(w.mode, Relaxed);
        g.capacity.store(w.capacity, Relaxed);
        g.slot_stride.store(w.slot_stride, Relaxed);
        g.max_message.store(w.max_message, Relaxed);
        g.max_subscribers.store(w.max_subscribers, Relaxed);
        g.flags.store(w.flags, Relaxed);
        g.control_size.store(w.control_size, Relaxed);
        g.data_size.store(w.data_size, Relaxed);
        g.creator_uid.store(creator_uid, Relaxed);
        g.creator_gid.store(creator_gid, Relaxed);
        g.perm_mode.store(perm_mode, Relaxed);
        // ORDERING(open): Release, so a thread that sees the ring open (an
        // Acquire load in `is_closed`) also sees the geometry words. Across
        // processes the memfds travel by sendmsg, which orders far more.
        g.state.store(STATE_OPEN, Release);
    }

    /// The header words as they are now in shared memory (for checks and tools).
    pub fn header_words(&self) -> HeaderWords {
        HeaderWords::read(&self.regions.header().geometry)
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The delivery mode.
    pub fn mode(&self) -> Mode {
        self.geo.mode()
    }

    /// The memory this ring runs over.
    pub fn regions(&self) -> &R {
        &self.regions
    }

    /// Close the ring: senders get `Closed` from now on; receivers read what
    /// is left, then get `Closed`. Returns the receivers that sleep and must
    /// be woken so that they notice.
    pub fn close(&self) -> WakeSet {
        // ORDERING(close): Release; pairs with the Acquire load in
        // `is_closed`, so a receiver that sees CLOSED also sees every message
        // whose publish preceded the close in this thread.
        self.regions
            .header()
            .geometry
            .state
            .store(STATE_CLOSED, Release);
        crate::wake::wake_all(self)
    }

    /// After publishing `published` messages (by any producer of this
    /// process), compute and mark the sleepers to wake: see
    /// [`crate::Producer::wake_set`].
    pub fn wake_set(&self, published: u64) -> WakeSet {
        crate::wake::wake_after_publish(self, published, None)
    }

    /// The eventcount check after a publish without building a wake set:
    /// one fence and one load per 64 table entries. `false`: nobody sleeps,
    /// nothing to do. `true`: call [`Ring::wake_set`].
    #[inline]
    pub fn sleepers_after_publish(&self) -> bool {
        crate::wake::any_sleepers_after_publish(self)
    }

    /// [`Ring::wake_set`] for a message addressed to `target`.
    pub fn wake_set_for(&self, target: SubscriberId) -> WakeSet {
        crate::wake::wake_after_publish(self, 1, Some(target))
    }

    /// Attached subscribers (senders and receivers), by a scan of the table.
    pub fn active_subscribers(&self) -> usize {
        let hdr = self.regions.header();
        let high =
            (hdr.wake.table_high_water.load(Relaxed) as usize).min(self.geo.max_subscribers());
        (0..high)
            .filter(|&i| {
                self.regions.entry(i).state.load(Relaxed) & ENTRY_STATUS_MASK == ENTRY_ACTIVE
            })
            .count()
    }

    /// Mark every sleeping receiver for waking (e.g. after the last sender
    /// left a unicast ring) and return them.
    pub fn wake_all(&self) -> WakeSet {
        crate::wake::wake_all(self)
    }

    /// Whether [`Ring::close`] was called (by anyone).
    #[inline]
    pub fn is_closed(&self) -> bool {
        // ORDERING(close): Acquire; see `close`. A peer may write any value:
        // anything but OPEN counts as closed.
        self.regions.header().geometry.state.load(Acquire) != STATE_OPEN
    }

    /// Positions claimed so far (the shared tail).
    pub fn tail(&self) -> u64 {
        self.regions.header().tail.load(Relaxed)
    }

    /// The shared consumer head.
    pub fn head(&self) -> u64 {
        self.regions.header().head.load(Relaxed)
    }

    /// The futex word broadcast receivers sleep on.
    pub fn broadcast_wake_word(&self) -> &AtomicU32 {
        &self.regions.header().wake.broadcast
    }

    /// The broadcast wake relay word: futex bitsets of broadcast sleepers
    /// still to be woken on [`Ring::broadcast_wake_word`] by whichever
    /// sleeper returns first (see [`WakeWords::relay`](crate::layout::WakeWords::relay)).
    pub fn broadcast_relay_word(&self) -> &AtomicU32 {
        &self.regions.header().wake.relay
    }

    /// Hand the wake of the broadcast sleepers whose futex bitsets are
    /// `bitsets` to a relay. Call after [`Producer::wake_set`] (which bumped
    /// the broadcast word) and before waking one of them; whichever
    /// broadcast sleeper returns first then [takes](Ring::take_relay) it.
    pub fn offer_relay(&self, bitsets: u32) {
        // ORDERING(relay): Release; pairs with the Acquire swap in
        // `take_relay`, so the bump of the broadcast word (in `wake_set`,
        // before this) happens before the relay's futex wake: a sleeper the
        // relay's wake misses took the futex lock after it, and then sees
        // the bumped word and does not sleep.
        self.broadcast_relay_word().fetch_or(bitsets, Release);
    }

    /// Whether a broadcast wake may be handed to a relay at all: every
    /// receiver index ever joined is below 32, so each has a futex bitset
    /// (`1 << index`) of its own and a single `FUTEX_WAKE_BITSET` with the
    /// sleepers' bitsets can only reach one of those sleepers (or a waiter
    /// a hostile peer queued, which the producer's relay watch covers).
    /// With more, bitsets are shared (`index % 32`) and a single wake could
    /// land on a receiver that is not asleep in a relaying sleeper.
    pub fn relay_bitsets_unique(&self) -> bool {
        self.regions.header().wake.table_high_water.load(Relaxed) <= 32
    }

    /// Whether receiver `id` is asleep in a sleeper that performs broadcast
    /// wake relays (its entry's `sleeping` word). Call after `wake_set`
    /// took its waiter bit.
    pub fn sleeps_relaying(&self, id: SubscriberId) -> bool {
        // ORDERING(relay): Relaxed; `wake_set` took the receiver's waiter
        // bit with an Acquire RMW that read its Release `fetch_or` in
        // `prepare_wait`, and the receiver cleared `sleeping` after its
        // previous sleep, before that: this load sees that 0 or the 1 of
        // the sleep the bit announced, never a 1 left from an earlier one.
        id.index() < self.geo.max_subscribers()
            && self.regions.entry(id.index()).sleeping.load(Relaxed)
                == crate::layout::SLEEPING_RELAYS
    }

    /// Take a pending broadcast wake relay: the futex bitsets to wake on
    /// the broadcast word (all waiters of those bitsets), or 0 when none is
    /// pending. Each offer is taken once. A broadcast sleeper calls this
    /// whenever its sleep ends, however it ended.
    pub fn take_relay(&self) -> u32 {
        let word = self.broadcast_relay_word();
        // Relaxed: a plain look first, so the common case (nothing
        // pending) does not take the line exclusively; the swap below is
        // what synchronises.
        if word.load(Relaxed) == 0 {
            return 0;
        }
        // ORDERING(relay): Acquire; pairs with the Release in `offer_relay`.
        word.swap(0, Acquire)
    }

    /// The futex word a unicast or multicast receiver sleeps on. `None` for
    /// an index outside the table.
    pub fn wake_word(&self, id: SubscriberId) -> Option<&AtomicU32> {
        (id.index() < self.geo.max_subscribers()).then(|| &self.regions.entry(id.index()).wake)
    }

    /// Whether `id` is an attached subscriber with a receive role.
    pub fn is_receiver(&self, id: SubscriberId) -> bool {
        if id.index() >= self.geo.max_subscribers() {
            return false;
        }
        let s = self.regions.entry(id.index()).state.load(Relaxed);
        s & ENTRY_STATUS_MASK == ENTRY_ACTIVE && s & ROLE_RECV != 0
    }

    /// Per-subscriber counters (sent, received, lagged) of entry `id`, as
    /// the subscriber last stored them. `None` outside the table.
    pub fn counters(&self, id: SubscriberId) -> Option<Counters> {
        if id.index() >= self.geo.max_subscribers() {
            return None;
        }
        let e = self.regions.entry(id.index());
        Some(Counters {
            sent: e.sent.load(Relaxed),
            received: e.received.load(Relaxed),
            lagged: e.lagged.load(Relaxed),
        })
    }
}

/// Message counters of one subscriber entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Messages lost by lagging.
    pub lagged: u64,
}

impl<R: Regions + Clone> Ring<R> {
    /// Join as a sender.
    pub fn producer(&self) -> Result<Producer<R>, JoinError> {
        let joined = self.join(Role::Send)?;
        Ok(Producer::new(self.clone(), joined))
    }

    /// Join as a receiver. Unicast rings refuse a second receiver with
    /// [`JoinError::ReceiverTaken`].
    pub fn receiver(&self) -> Result<Receiver<R>, JoinError> {
        let joined = self.join(Role::Recv)?;
        Ok(Receiver::new(self.clone(), joined))
    }

    /// Join as a sender and receiver sharing one table entry: the entry is
    /// released when both handles are dropped.
    pub fn duplex(&self) -> Result<(Producer<R>, Receiver<R>), JoinError> {
        let joined = self.join(Role::Both)?;
        Ok((
            Producer::new(self.clone(), joined),
            Receiver::new(self.clone(), joined),
        ))
    }
}
