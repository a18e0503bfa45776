//! Attach-side checks of everything a peer hands us: both fds are sealable
//! memfds with the required seals, sizes come from `fstat` (never from the
//! header), and the header goes through `Geometry::decode`. The geometry is
//! kept in process-local memory from then on.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs;
use rustix::io::Errno;
use shmcast_core::layout::{HeaderWords, CONTROL_HEADER_SIZE};
use shmcast_core::{Geometry, Ring};

use crate::error::{AttachError, Region};
use crate::map::{self, Mapping, ShmRegions};
use crate::seal;

fn check_seals(fd: &OwnedFd, region: Region) -> Result<u64, AttachError> {
    let seals = match fs::fcntl_get_seals(fd) {
        Ok(s) => s,
        // EINVAL: not a shmem/hugetlbfs file, so not a memfd at all.
        Err(Errno::INVAL) => return Err(AttachError::NotAMemfd { region }),
        Err(errno) => {
            return Err(AttachError::Io {
                op: "fcntl(F_GET_SEALS)",
                errno,
            })
        }
    };
    let missing = seal::REQUIRED.difference(seals);
    if !missing.is_empty() {
        return Err(AttachError::MissingSeals {
            region,
            missing: missing.bits(),
        });
    }
    let bad = seals.intersection(seal::FORBIDDEN);
    if !bad.is_empty() {
        return Err(AttachError::UnexpectedSeals {
            region,
            seals: bad.bits(),
        });
    }
    // Only tmpfs (shmem) memfds: a hugetlbfs memfd also takes seals, but a
    // peer may punch holes in it and a fault with an empty huge-page pool
    // is a SIGBUS in our process.
    let fsinfo = fs::fstatfs(fd).map_err(|errno| AttachError::Io {
        op: "fstatfs",
        errno,
    })?;
    if fsinfo.f_type as i64 != TMPFS_MAGIC {
        return Err(AttachError::NotAMemfd { region });
    }
    let st = fs::fstat(fd).map_err(|errno| AttachError::Io { op: "fstat", errno })?;
    Ok(st.st_size as u64)
}

/// `TMPFS_MAGIC` from `<linux/magic.h>`: memfds live on the shmem filesystem.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Device and inode of an fd.
fn identity(fd: &OwnedFd) -> Result<(u64, u64), AttachError> {
    let st = fs::fstat(fd).map_err(|errno| AttachError::Io { op: "fstat", errno })?;
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// Validate and map a channel's two regions. `writable_data` asks for a
/// writable data mapping (the role may send).
pub(crate) fn open_regions(
    control: &OwnedFd,
    data: &OwnedFd,
    writable_data: bool,
    message_cap: u32,
) -> Result<Ring<ShmRegions>, AttachError> {
    let control_len = check_seals(control, Region::Control)?;
    let data_len = check_seals(data, Region::Data)?;
    // The two regions must be two files: one memfd passed as both would make
    // the control header and the slots alias.
    if identity(control)? == identity(data)? {
        return Err(AttachError::RegionsAlias);
    }
    if control_len < CONTROL_HEADER_SIZE as u64 {
        return Err(AttachError::RegionTooSmall {
            region: Region::Control,
            size: control_len,
        });
    }
    // The header is read with pread and the geometry checked against both
    // sizes before anything is mapped: a sealed sparse memfd costs a peer
    // nothing at any size, and mapping 2^60 bytes fails as ENOMEM, not as
    // the size mismatch it is. This copy is the one read of the geometry.
    let mut head = [0u8; 64];
    let n = rustix::io::pread(control, &mut head, 0)
        .map_err(|errno| AttachError::Io { op: "pread", errno })?;
    let words = HeaderWords::from_bytes(&head[..n]).ok_or(AttachError::RegionTooSmall {
        region: Region::Control,
        size: control_len,
    })?;
    let geo = Geometry::decode(&words, control_len, data_len, message_cap)?;
    let control_map = Mapping::new(control.as_fd(), control_len, true, Region::Control)?;
    let data_map = Mapping::new(data.as_fd(), data_len, writable_data, Region::Data)?;
    let regions = ShmRegions::new(control_map, data_map, &geo).ok_or(AttachError::Layout(
        shmcast_core::LayoutError::ControlSizeMismatch {
            expected: geo.control_size() as u64,
            header: words.control_size,
            actual: control_len,
        },
    ))?;
    Ok(map::ring(regions, geo))
}
