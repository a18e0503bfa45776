//! Operating-system helpers: CPU pinning, clocks, shared-memory arenas and
//! handing fds to a child process.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use rustix::fs::{fstat, ftruncate, memfd_create, MemfdFlags};
use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
use rustix::time::{clock_gettime, ClockId};

/// Pin the calling thread (and threads it creates afterwards) to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => vec![0],
    }
}

fn ns(t: rustix::time::Timespec) -> u64 {
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes.
pub fn now_ns() -> u64 {
    ns(clock_gettime(ClockId::Monotonic))
}

/// CPU time consumed by the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    ns(clock_gettime(ClockId::ThreadCPUTime))
}

/// A cheap tick counter for timing single round trips: the TSC on x86-64
/// (invariant TSC assumed; intervals are taken on one pinned CPU),
/// `CLOCK_MONOTONIC` nanoseconds elsewhere. [`Ticks::calibrate`] measures
/// its rate against `CLOCK_MONOTONIC`.
#[derive(Clone, Copy, Debug)]
pub struct Ticks {
    ns_per_tick: f64,
}

impl Ticks {
    /// Measure the tick rate over `window`.
    pub fn calibrate(window: std::time::Duration) -> Ticks {
        let (c0, t0) = (Ticks::read(), now_ns());
        std::thread::sleep(window);
        let (c1, t1) = (Ticks::read(), now_ns());
        Ticks {
            ns_per_tick: (t1 - t0) as f64 / c1.wrapping_sub(c0).max(1) as f64,
        }
    }

    /// The counter now.
    #[inline]
    pub fn read() -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: RDTSC has no preconditions on x86-64 (it only reads
            // the time-stamp counter) and touches no memory.
            unsafe { core::arch::x86_64::_rdtsc() }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            now_ns()
        }
    }

    /// A tick interval in nanoseconds.
    pub fn ns(&self, ticks: u64) -> f64 {
        ticks as f64 * self.ns_per_tick
    }
}

/// `/proc/loadavg` as "1-min 5-min 15-min".
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A shared, writable mapping of a whole memfd. Processes that map the same
/// memfd see the same bytes; everything placed in it is accessed through
/// atomics or under a hand-off protocol (see [`crate::mech`]).
#[derive(Debug)]
pub struct Arena {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

impl Arena {
    /// A new zeroed arena of `len` bytes (rounded up to pages).
    pub fn create(name: &str, len: usize) -> io::Result<Arena> {
        let len = len.div_ceil(4096).max(1) * 4096;
        let fd = memfd_create(name, MemfdFlags::CLOEXEC)?;
        ftruncate(&fd, len as u64)?;
        Arena::map(fd, len)
    }

    /// Map an arena created by another process (its size from `fstat`).
    pub fn open(fd: OwnedFd) -> io::Result<Arena> {
        let len = usize::try_from(fstat(&fd)?.st_size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "arena size"))?;
        Arena::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Arena> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty arena"));
        }
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint), so
        // it aliases no Rust object; it stays valid until `Drop` unmaps it.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }?;
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap: null"))?;
        Ok(Arena { ptr, len, fd })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the arena is empty (never: sizes are rounded up to a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd, to hand to a worker.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Pointer to `len` bytes at `offset`. Panics when out of bounds.
    pub fn at(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "arena access {offset}+{len} beyond {}",
            self.len
        );
        // SAFETY: offset + len <= self.len (asserted), so the result stays
        // inside the mapping.
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Every pointer handed out by `at` is used only by objects that hold
        // an `Rc<Arena>`, so none outlives this.
        // SAFETY: ptr/len are exactly the mapping made in `map`, unmapped
        // once, here.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// Make `fd` survive `exec` (clear `FD_CLOEXEC`), for a worker about to be
/// spawned. The caller closes its copy right after the spawn, so later
/// workers do not inherit it.
pub fn make_inheritable(fd: &OwnedFd) -> io::Result<()> {
    fcntl_setfd(fd, FdFlags::empty())?;
    Ok(())
}

/// Take ownership of an fd number inherited from the parent (passed on the
/// command line). Fails if the number is not an open fd.
pub fn take_inherited_fd(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an inherited fd",
        ));
    }
    // SAFETY: only used for the fcntl validity check below; the borrow ends
    // before ownership is taken.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    fcntl_getfd(borrowed)?;
    // `raw` was inherited for this process alone, and the worker takes each
    // number it was given once.
    // SAFETY: `raw` is open (checked) and has no other owner here (above).
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    fcntl_setfd(&owned, FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// The raw number of `fd` (for a worker's command line).
pub fn raw(fd: &impl AsRawFd) -> RawFd {
    fd.as_raw_fd()
}
