//! Where a ring's memory comes from.
//!
//! The algorithm (in `ring.rs`, `producer.rs`, `receiver.rs`) never touches
//! memory directly: it goes through a [`Regions`] implementation. There are
//! two:
//!
//! - [`RawRegions`]: base pointers to a control region and a data region laid
//!   out as in [`crate::layout`]. This is what `shmcast` uses over `mmap`ed
//!   memfds, and what [`HeapRegions`] uses over a heap allocation, so the
//!   in-process rings of unit tests and stress tests exercise the very same
//!   address arithmetic as shared memory.
//! - under `cfg(loom)`, [`HeapRegions`] is instead a set of heap vectors of
//!   loom atomics, and each slot carries a loom `UnsafeCell<()>` that writers
//!   and exclusive readers touch, so a read that is not ordered after its
//!   write is reported by loom as a race.

use crate::layout::{ControlHeader, Geometry, SlotHeader, SubscriberEntry};
use crate::sync::atomic::AtomicU64;

/// Memory a ring runs over.
///
/// # Safety
///
/// Implementors promise, for the [`Geometry`] they were built with:
/// - every accessor returns a reference to memory that stays valid and is
///   only ever accessed atomically (by anyone) for as long as `self` lives;
/// - `waiter_word(i)` for `i < bitmap_words`, `entry(i)` for
///   `i < max_subscribers` and `slot(i)` for `i < capacity` never alias each
///   other and never panic; out-of-range indices panic (they are bugs in this
///   crate, never the result of peer data, which is validated first);
/// - `write_payload` / `read_payload` clamp nothing themselves but touch
///   exactly `offset .. offset + len` of slot `i`'s payload, which the caller
///   keeps within [`Geometry::payload_room`].
pub unsafe trait Regions {
    /// The control header.
    fn header(&self) -> &ControlHeader;
    /// Word `i` of the waiter bitmap.
    fn waiter_word(&self, i: usize) -> &AtomicU64;
    /// Subscriber entry `i`.
    fn entry(&self, i: usize) -> &SubscriberEntry;
    /// Header of slot `i`.
    fn slot(&self, i: usize) -> &SlotHeader;
    /// Copy `src` into the payload of slot `i` at `offset`.
    ///
    /// # Safety
    ///
    /// `offset + src.len() <= payload_room`, and the caller owns slot `i`
    /// (it claimed the position and has not published it).
    unsafe fn write_payload(&self, i: usize, offset: usize, src: &[u8]);
    /// Copy payload bytes of slot `i` from `offset` into `dst`, atomically
    /// (racy-safe). `exclusive` says the protocol guarantees no concurrent
    /// writer (unicast, broadcast); under loom that claim is checked.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= payload_room`.
    unsafe fn read_payload(&self, i: usize, offset: usize, dst: &mut [u8], exclusive: bool);
    /// Raw pointer to the payload of slot `i`, for callers that read in place
    /// (`ReadSlot::as_slice`). Not available under loom.
    #[cfg(not(loom))]
    fn payload_ptr(&self, i: usize) -> *const u8;
    /// Whether the data region may be written through these regions. A
    /// receive-only process maps it read-only and says `false` here; the
    /// ring then refuses to create producers on it.
    fn data_writable(&self) -> bool {
        true
    }
}

#[cfg(not(loom))]
pub use raw::RawRegions;

#[cfg(not(loom))]
mod raw {
    use super::*;
    use crate::layout::SLOT_HEADER_SIZE;

    /// [`Regions`] over two raw memory ranges laid out as in
    /// [`crate::layout`]: a mapped memfd pair, or a heap allocation.
    #[derive(Debug, Clone, Copy)]
    pub struct RawRegions {
        control: *mut u8,
        data: *mut u8,
        bitmap_offset: usize,
        bitmap_words: usize,
        subscribers_offset: usize,
        max_subscribers: usize,
        capacity: usize,
        stride: usize,
    }

    // SAFETY: RawRegions only hands out references to atomics (and copies
    // through atomics), which are Sync; the pointers themselves are plain
    // addresses. Whoever built it vouched for the memory's lifetime.
    unsafe impl Send for RawRegions {}
    // SAFETY: as above.
    unsafe impl Sync for RawRegions {}

    impl RawRegions {
        /// View two memory ranges as the regions of a ring with geometry `geo`.
        ///
        /// # Safety
        ///
        /// - `control` is valid for reads and writes of `geo.control_size()`
        ///   bytes, `data` of `geo.data_size()` bytes, both 128-byte aligned
        ///   (a page-aligned mapping is), for as long as the returned value or
        ///   any copy of it is used;
        /// - nobody accesses those bytes non-atomically in that time (other
        ///   processes are outside our memory model and may do what they like;
        ///   we only ever read what they wrote through atomics and validate it);
        /// - a data region mapped read-only must only be used by receivers
        ///   (the `shmcast` crate guarantees this by role).
        pub unsafe fn new(control: *mut u8, data: *mut u8, geo: &Geometry) -> Self {
            debug_assert_eq!(control as usize % 128, 0);
            debug_assert_eq!(data as usize % 128, 0);
            RawRegions {
                control,
                data,
                bitmap_offset: geo.bitmap_offset(),
                bitmap_words: geo.bitmap_words(),
                subscribers_offset: geo.subscribers_offset(),
                max_subscribers: geo.max_subscribers(),
                capacity: geo.capacity() as usize,
                stride: geo.slot_stride(),
            }
        }

        #[inline]
        fn payload(&self, i: usize) -> *mut u8 {
            assert!(i < self.capacity, "slot index out of range");
            // SAFETY: i < capacity, so the slot's bytes lie within the data
            // region of capacity * stride bytes (new's contract).
            unsafe { self.data.add(i * self.stride + SLOT_HEADER_SIZE) }
        }
    }

    // SAFETY: offsets come from a validated Geometry whose sizes match the
    // ranges `new`'s caller vouched for; every index is bounds-checked with
    // an assert; header/bitmap/table/slots occupy disjoint ranges by
    // construction of Geometry; all types handed out are atomics (or structs
    // of atomics) whose every bit pattern is valid, and whose alignment (128
    // at most) is met by the 128-aligned bases and 128/64/8-multiple offsets.
    unsafe impl Regions for RawRegions {
        #[inline]
        fn header(&self) -> &ControlHeader {
            // SAFETY: see the impl's SAFETY comment; offset 0, 512 bytes.
            unsafe { &*self.control.cast::<ControlHeader>() }
        }

        #[inline]
        fn waiter_word(&self, i: usize) -> &AtomicU64 {
            assert!(i < self.bitmap_words, "waiter word out of range");
            // SAFETY: within the bitmap, 8-aligned (bitmap_offset is 512).
            unsafe {
                &*self
                    .control
                    .add(self.bitmap_offset + i * 8)
                    .cast::<AtomicU64>()
            }
        }

        #[inline]
        fn entry(&self, i: usize) -> &SubscriberEntry {
            assert!(i < self.max_subscribers, "subscriber index out of range");
            // SAFETY: within the table, 128-aligned (offset is a multiple of 128).
            unsafe {
                &*self
                    .control
                    .add(self.subscribers_offset + i * core::mem::size_of::<SubscriberEntry>())
                    .cast::<SubscriberEntry>()
            }
        }

        #[inline]
        fn slot(&self, i: usize) -> &SlotHeader {
            assert!(i < self.capacity, "slot index out of range");
            // SAFETY: within the data region, 64-aligned (stride is a multiple of 64).
            unsafe { &*self.data.add(i * self.stride).cast::<SlotHeader>() }
        }

        #[inline]
        unsafe fn write_payload(&self, i: usize, offset: usize, src: &[u8]) {
            debug_assert!(offset + src.len() <= self.stride - SLOT_HEADER_SIZE);
            // The payload starts 8-aligned (64-aligned slot + 32-byte header)
            // and its room is a multiple of 8; the caller keeps offset + len
            // within the room, so every word touched lies inside slot i.
            // SAFETY: aligned and in bounds (above); payload bytes are only
            // accessed through crate::copy, as u64 words.
            unsafe { crate::copy::store_bytes(self.payload(i), offset, src) }
        }

        #[inline]
        unsafe fn read_payload(&self, i: usize, offset: usize, dst: &mut [u8], _exclusive: bool) {
            debug_assert!(offset + dst.len() <= self.stride - SLOT_HEADER_SIZE);
            // SAFETY: as in write_payload; load_bytes tolerates racing writers.
            unsafe { crate::copy::load_bytes(self.payload(i), offset, dst) }
        }

        #[inline]
        fn payload_ptr(&self, i: usize) -> *const u8 {
            self.payload(i)
        }
    }
}

#[cfg(feature = "alloc")]
pub use heap::HeapRegions;

#[cfg(all(feature = "alloc", not(loom)))]
mod heap {
    use super::*;
    use alloc::alloc::{alloc_zeroed, dealloc, Layout};
    use alloc::sync::Arc;

    struct Block {
        ptr: *mut u8,
        layout: Layout,
    }

    impl Block {
        fn zeroed(size: usize) -> Block {
            let layout = Layout::from_size_align(size.max(128), 128)
                .expect("geometry sizes are bounded far below isize::MAX");
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc_zeroed(layout) };
            if ptr.is_null() {
                alloc::alloc::handle_alloc_error(layout);
            }
            Block { ptr, layout }
        }
    }

    impl Drop for Block {
        fn drop(&mut self) {
            // SAFETY: allocated in `zeroed` with this very layout.
            unsafe { dealloc(self.ptr, self.layout) }
        }
    }

    // SAFETY: the block is only accessed through atomics (RawRegions).
    unsafe impl Send for Block {}
    // SAFETY: as above.
    unsafe impl Sync for Block {}

    /// A ring's regions on the heap, shared by reference count. Uses the same
    /// layout and the same [`RawRegions`] arithmetic as shared memory.
    #[derive(Clone)]
    pub struct HeapRegions {
        raw: RawRegions,
        _blocks: Arc<(Block, Block)>,
    }

    impl core::fmt::Debug for HeapRegions {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.pad("HeapRegions { .. }")
        }
    }

    impl HeapRegions {
        /// Zeroed regions for `geo`.
        pub fn new(geo: &Geometry) -> Self {
            let control = Block::zeroed(geo.control_size());
            let data = Block::zeroed(geo.data_size());
            // Both blocks are at least the sizes the geometry needs,
            // 128-aligned and kept alive by the Arc stored next to the view.
            // SAFETY: sized, aligned, alive (above), zeroed (valid for every
            // atomic) and only accessed atomically.
            let raw = unsafe { RawRegions::new(control.ptr, data.ptr, geo) };
            HeapRegions {
                raw,
                _blocks: Arc::new((control, data)),
            }
        }
    }

    // SAFETY: delegates to RawRegions over blocks that live as long as self.
    unsafe impl Regions for HeapRegions {
        #[inline]
        fn header(&self) -> &ControlHeader {
            self.raw.header()
        }
        #[inline]
        fn waiter_word(&self, i: usize) -> &AtomicU64 {
            self.raw.waiter_word(i)
        }
        #[inline]
        fn entry(&self, i: usize) -> &SubscriberEntry {
            self.raw.entry(i)
        }
        #[inline]
        fn slot(&self, i: usize) -> &SlotHeader {
            self.raw.slot(i)
        }
        #[inline]
        unsafe fn write_payload(&self, i: usize, offset: usize, src: &[u8]) {
            // SAFETY: forwarded contract.
            unsafe { self.raw.write_payload(i, offset, src) }
        }
        #[inline]
        unsafe fn read_payload(&self, i: usize, offset: usize, dst: &mut [u8], exclusive: bool) {
            // SAFETY: forwarded contract.
            unsafe { self.raw.read_payload(i, offset, dst, exclusive) }
        }
        #[inline]
        fn payload_ptr(&self, i: usize) -> *const u8 {
            self.raw.payload_ptr(i)
        }
    }
}

#[cfg(all(feature = "alloc", loom))]
mod heap {
    use super::*;
    use crate::layout::{GeometryWords, WakeWords};
    use crate::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use crate::sync::cell::UnsafeCell;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use crossbeam_utils::CachePadded;

    struct Storage {
        header: ControlHeader,
        bitmap: Vec<AtomicU64>,
        entries: Vec<SubscriberEntry>,
        slots: Vec<SlotHeader>,
        payload: Vec<Vec<AtomicU64>>,
        /// Race detector: writers `with_mut`, exclusive readers `with`.
        access: Vec<UnsafeCell<()>>,
    }

    // SAFETY: everything but `access` is loom atomics. The cells of `access`
    // hold `()`, no data; they exist to be touched from several threads (that
    // is what they detect), and loom checks every such touch. Without these
    // impls the loom build's handles would not be `Send`, unlike the real ones.
    unsafe impl Send for Storage {}
    // SAFETY: as above.
    unsafe impl Sync for Storage {}

    /// Loom build: the ring's memory as heap vectors of loom atomics.
    #[derive(Clone)]
    pub struct HeapRegions(Arc<Storage>);

    impl core::fmt::Debug for HeapRegions {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.pad("HeapRegions { .. }")
        }
    }

    fn u64z() -> AtomicU64 {
        AtomicU64::new(0)
    }
    fn u32z() -> AtomicU32 {
        AtomicU32::new(0)
    }

    impl HeapRegions {
        /// Zeroed regions for `geo`.
        pub fn new(geo: &Geometry) -> Self {
            let header = ControlHeader {
                geometry: CachePadded::new(GeometryWords {
                    magic: u64z(),
                    version: u32z(),
                    mode: u32z(),
                    capacity: u64z(),
                    slot_stride: u32z(),
                    max_message: u32z(),
                    max_subscribers: u32z(),
                    flags: u32z(),
                    control_size: u64z(),
                    data_size: u64z(),
                    creator_uid: u32z(),
                    creator_gid: u32z(),
                    perm_mode: u32z(),
                    state: u32z(),
                }),
                tail: CachePadded::new(u64z()),
                head: CachePadded::new(u64z()),
                wake: CachePadded::new(WakeWords {
                    broadcast: u32z(),
                    round_robin: u32z(),
                    exclusive_receiver: u32z(),
                    table_high_water: u32z(),
                    sender_joined: u32z(),
                    relay: u32z(),
                }),
            };
            let entry = || SubscriberEntry {
                state: u64z(),
                local_head: u64z(),
                wake: u32z(),
                backend: u32z(),
                liveness: u64z(),
                claim_start: u64z(),
                claim_count: u32z(),
                sleeping: u32z(),
                sent: u64z(),
                received: u64z(),
                lagged: u64z(),
                notify_info: u64z(),
            };
            let slot = || SlotHeader {
                seq: u64z(),
                len: u32z(),
                sender: u32z(),
                target: u32z(),
                flags: u32z(),
                tag: u64z(),
            };
            let cap = geo.capacity() as usize;
            let words = geo.payload_room() / 8;
            HeapRegions(Arc::new(Storage {
                header,
                bitmap: (0..geo.bitmap_words()).map(|_| u64z()).collect(),
                entries: (0..geo.max_subscribers()).map(|_| entry()).collect(),
                slots: (0..cap).map(|_| slot()).collect(),
                payload: (0..cap)
                    .map(|_| (0..words).map(|_| u64z()).collect())
                    .collect(),
                access: (0..cap).map(|_| UnsafeCell::new(())).collect(),
            }))
        }
    }

    // SAFETY: plain heap vectors; indexing panics out of range.
    unsafe impl Regions for HeapRegions {
        fn header(&self) -> &ControlHeader {
            &self.0.header
        }
        fn waiter_word(&self, i: usize) -> &AtomicU64 {
            &self.0.bitmap[i]
        }
        fn entry(&self, i: usize) -> &SubscriberEntry {
            &self.0.entries[i]
        }
        fn slot(&self, i: usize) -> &SlotHeader {
            &self.0.slots[i]
        }
        unsafe fn write_payload(&self, i: usize, offset: usize, src: &[u8]) {
            self.0.access[i].with_mut(|_| ());
            let words = &self.0.payload[i];
            let mut k = 0;
            while k < src.len() {
                let at = offset + k;
                let (w, start) = (at / 8, at % 8);
                let n = (8 - start).min(src.len() - k);
                let mut bytes = if n == 8 {
                    [0; 8]
                } else {
                    words[w].load(Relaxed).to_ne_bytes()
                };
                bytes[start..start + n].copy_from_slice(&src[k..k + n]);
                words[w].store(u64::from_ne_bytes(bytes), Relaxed);
                k += n;
            }
        }
        unsafe fn read_payload(&self, i: usize, offset: usize, dst: &mut [u8], exclusive: bool) {
            if exclusive {
                self.0.access[i].with(|_| ());
            }
            let words = &self.0.payload[i];
            let mut k = 0;
            while k < dst.len() {
                let at = offset + k;
                let (w, start) = (at / 8, at % 8);
                let n = (8 - start).min(dst.len() - k);
                let bytes = words[w].load(Relaxed).to_ne_bytes();
                dst[k..k + n].copy_from_slice(&bytes[start..start + n]);
                k += n;
            }
        }
    }
}
