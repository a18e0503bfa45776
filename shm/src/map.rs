//! Memory mappings and the [`Regions`] implementation over them. The
//! crate's only `unsafe` code lives here.

#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};
use shmcast_core::layout::{ControlHeader, SlotHeader, SubscriberEntry};
use shmcast_core::{Geometry, RawRegions, Regions};

use crate::error::{AttachError, Region};

/// One shared mapping of a whole memfd.
#[derive(Debug)]
pub(crate) struct Mapping {
    map: MmapRaw,
    writable: bool,
}

impl Mapping {
    /// Map all `len` bytes of `fd` shared, writable or read-only.
    pub(crate) fn new(
        fd: BorrowedFd<'_>,
        len: u64,
        writable: bool,
        region: Region,
    ) -> Result<Self, AttachError> {
        let file = File::from(fd.try_clone_to_owned().map_err(|e| io_err("dup", e))?);
        let len =
            usize::try_from(len).map_err(|_| AttachError::RegionTooSmall { region, size: len })?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if writable {
            opts.map_raw(&file)
        } else {
            opts.map_raw_read_only(&file)
        };
        let map = map.map_err(|e| {
            if writable && e.raw_os_error() == Some(libc_eacces()) && region == Region::Data {
                AttachError::DataNotWritable
            } else {
                io_err("mmap", e)
            }
        })?;
        Ok(Mapping { map, writable })
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

fn libc_eacces() -> i32 {
    rustix::io::Errno::ACCESS.raw_os_error()
}

fn io_err(op: &'static str, e: std::io::Error) -> AttachError {
    AttachError::Io {
        op,
        errno: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
    }
}

/// A ring's regions in two shared mappings, kept alive by reference count:
/// every handle holds a clone, so the mappings outlive the last handle.
#[derive(Clone)]
pub struct ShmRegions {
    raw: RawRegions,
    maps: Arc<(Mapping, Mapping)>,
    writable: bool,
}

impl std::fmt::Debug for ShmRegions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmRegions")
            .field("control_len", &self.maps.0.len())
            .field("data_len", &self.maps.1.len())
            .finish()
    }
}

impl ShmRegions {
    /// View two mappings as the regions of a ring with geometry `geo`.
    /// Returns `None` if the mappings are smaller than `geo` needs (they
    /// never are after validation; this keeps the unsafe contract local).
    pub(crate) fn new(control: Mapping, data: Mapping, geo: &Geometry) -> Option<Self> {
        let writable = data.writable;
        if control.len() < geo.control_size() || data.len() < geo.data_size() {
            return None;
        }
        // Both mappings are at least as large as the geometry needs (checked
        // above), page-aligned (mmap), shared and live as long as the Arc
        // stored next to the view. A read-only data mapping is only ever
        // read: it is mapped read-only exactly when the role cannot send,
        // and only producers write slots.
        // SAFETY: sized, aligned, alive (above); nothing in this process
        // accesses them except through atomics (core's Regions contract).
        let raw = unsafe { RawRegions::new(control.map.as_mut_ptr(), data.map.as_mut_ptr(), geo) };
        Some(ShmRegions {
            raw,
            maps: Arc::new((control, data)),
            writable,
        })
    }
}

// SAFETY: delegates to RawRegions, whose memory (the two mappings) lives as
// long as `self` through the Arc.
unsafe impl Regions for ShmRegions {
    #[inline]
    fn header(&self) -> &ControlHeader {
        self.raw.header()
    }
    #[inline]
    fn waiter_word(&self, i: usize) -> &shmcast_core::atomic::AtomicU64 {
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
    fn data_writable(&self) -> bool {
        self.writable
    }
}

/// The ring over `regions` (which were built for `geo` by [`ShmRegions::new`]).
pub(crate) fn ring(regions: ShmRegions, geo: Geometry) -> shmcast_core::Ring<ShmRegions> {
    // SAFETY: ShmRegions::new built `regions` with this very geometry (the
    // only constructor), so every accessor's bounds match `geo`.
    unsafe { shmcast_core::Ring::from_regions(geo, regions) }
}
