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

/// `memfd_create` + size + `fallocate` + seals.
fn make(name: &str, which: &str, size: u64) -> Result<OwnedFd, CreateError> {
    let fd = fs::memfd_create(
        format!("shmcast:{name}:{which}"),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(io("memfd_create"))?;
    // Owner-only inode: a receive-only peer of another uid cannot upgrade
    // its O_RDONLY fd to O_RDWR by re-opening /proc/self/fd/N. (A peer of
    // the creator's own uid could, but it could also ptrace the creator.)
    fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(io("fchmod"))?;
    fs::ftruncate(&fd, size).map_err(io("ftruncate"))?;
    // Allocate every page now: running out of memory fails here, at
    // creation, rather than as a SIGBUS on first touch in some peer.
    match fs::fallocate(&fd, FallocateFlags::empty(), 0, size) {
        Ok(()) | Err(Errno::OPNOTSUPP) => {}
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
    let control = make(name, "control", control_size)?;
    let data = make(name, "data", data_size)?;
    let data_ro = reopen_read_only(&data).map_err(io("open(/proc/self/fd, O_RDONLY)"))?;
    Ok(Memfds {
        control,
        data,
        data_ro,
    })
}
