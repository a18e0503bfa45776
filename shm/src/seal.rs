//! Which memfd seals a region must carry, and why.
//!
//! - `F_SEAL_SHRINK`: nobody can truncate the region under a mapping, so a
//!   peer cannot make us take SIGBUS.
//! - `F_SEAL_GROW`: the size is fixed, so `fstat` at attach tells the size
//!   for good, and no peer can make the region eat memory.
//! - `F_SEAL_SEAL`: the seal set itself is final; nobody can remove or add
//!   seals later.
//!
//! Never `F_SEAL_WRITE` / `F_SEAL_FUTURE_WRITE`: senders must write the data
//! region and every subscriber writes the control region. Receive-only
//! peers are kept from writing data by an `O_RDONLY` fd instead.

use rustix::fs::SealFlags;

/// The seals every region must carry.
pub const REQUIRED: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// Seals that would stop writers.
pub const FORBIDDEN: SealFlags = SealFlags::WRITE.union(SealFlags::FUTURE_WRITE);
