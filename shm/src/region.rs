//! Creating the two memfds of a channel: size, pre-allocate, seal, and a
//! read-only re-open of the data region for receive-only peers.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{self, FallocateFlags, MemfdFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::error::CreateError;
use crate::seal;

/// The fds of a channel, held by its creator.
#[derive(Debug)]
pub(crate) struct Memfds {
    pub(crate) control: OwnedFd,
    pub(crate) data: OwnedFd,
    /// `O_RDONLY` re-open of `data`, handed to receive-only peers so that the
    /// kernel refuses them a writable mapping.
    pub(crate) data_ro: OwnedFd,
}

fn io(op: &'static str) -> impl FnOnce(Errno) -> CreateError {
    move |errno| CreateError::Io { op, errno }
}

/// `memfd_create` + inode mode + size + `fallocate` + seals.
fn make(name: &str, which: &str, size: u64, mode: u32) -> Result<OwnedFd, CreateError> {
    let fd = fs::memfd_create(
        format!("shmcast:{name}:{which}"),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(io("memfd_create"))?;
    // The inode's mode decides who may reopen the fd through
    // /proc/self/fd/N (only a holder of the fd can name it there).
    fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io("fchmod"))?;
    fs::ftruncate(&fd, size).map_err(io("ftruncate"))?;
    // Allocate every page now: running out of memory fails here, at
    // creation, rather than as a SIGBUS on first touch in some peer.
    match fs::fallocate(&fd, FallocateFlags::empty(), 0, size) {
        Ok(()) | Err(Errno::OPNOTSUPP) => {}
        Err(Errno::NOMEM | Errno::NOSPC) => {
            return Err(CreateError::OutOfMemory {
                needed: size,
                available: None,
            })
        }
        Err(e) => {
            return Err(CreateError::Io {
                op: "fallocate",
                errno: e,
            })
        }
    }
    fs::fcntl_add_seals(&fd, seal::REQUIRED).map_err(io("fcntl(F_ADD_SEALS)"))?;
    Ok(fd)
}

/// An `O_RDONLY` fd for the same memfd.
pub(crate) fn reopen_read_only(fd: &impl AsFd) -> Result<OwnedFd, Errno> {
    let path = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

pub(crate) fn create(name: &str, control_size: u64, data_size: u64) -> Result<Memfds, CreateError> {
    let needed = control_size.saturating_add(data_size);
    if let Some((bytes, what)) = headroom() {
        if needed > bytes {
            return Err(CreateError::OutOfMemory {
                needed,
                available: Some((bytes, what)),
            });
        }
    }
    // Control: every peer maps it read-write anyway; readable by all so
    // that each can reopen it for an open file description of its own, on
    // which it holds its liveness locks (see `liveness`).
    let control = make(name, "control", control_size, 0o644)?;
    // Data: owner-only, so that a receive-only peer of another uid cannot
    // upgrade its O_RDONLY fd to O_RDWR by reopening it. (A peer of the
    // creator's own uid could, but it could also ptrace the creator.)
    let data = make(name, "data", data_size, 0o600)?;
    let data_ro = reopen_read_only(&data).map_err(io("open(/proc/self/fd, O_RDONLY)"))?;
    Ok(Memfds {
        control,
        data,
        data_ro,
    })
}

/// How much memory this process can still take, and which limit says so:
/// the least of the system's `MemAvailable` and, for its memory cgroup and
/// every ancestor (v2 `memory.max`, v1 `memory.limit_in_bytes`), the limit
/// less what is charged. `None` if none of these can be read.
///
/// A check, not a reservation: others allocate too. It exists because
/// past a cgroup limit `fallocate` does not fail, the kernel kills the
/// process (seen: a 512 MiB channel in a 200 MB cgroup, SIGKILL).
/// Without swap, memfd pages cannot be reclaimed, so `MemAvailable` (which
/// counts reclaimable cache) can overstate what is left: this catches
/// requests that cannot fit, not every one that will not.
pub(crate) fn headroom() -> Option<(u64, &'static str)> {
    let mut best: Option<(u64, &'static str)> = None;
    let mut consider = |bytes: u64, what: &'static str| {
        if best.is_none_or(|(b, _)| bytes < b) {
            best = Some((bytes, what));
        }
    };
    if let Some(kib) = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    }) {
        consider(kib.saturating_mul(1024), "the system's available memory");
    }
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in cgroups.lines() {
        // "0::/path" (v2) or "N:memory:/path" (v1, possibly with other
        // controllers in the same hierarchy: "N:cpu,memory:/path").
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (roots, limit_file, usage_file): (&[&str], _, _) = if controllers.is_empty() {
            (
                &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"],
                "memory.max",
                "memory.current",
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                &["/sys/fs/cgroup/memory"],
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        for root in roots {
            // The cgroup and each ancestor up to the root: every one's
            // limit applies.
            let mut dir = std::path::PathBuf::from(format!("{root}{path}"));
            loop {
                let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
                if let (Some(limit), Some(usage)) = (read(limit_file), read(usage_file)) {
                    if let (Ok(limit), Ok(usage)) =
                        (limit.trim().parse::<u64>(), usage.trim().parse::<u64>())
                    {
                        // "max" (v2) does not parse: no limit there.
                        consider(limit.saturating_sub(usage), "the memory cgroup's limit");
                    }
                }
                if !dir.pop() || !dir.starts_with(root) {
                    break;
                }
            }
        }
    }
    best
}
