//! Sending and receiving handles over shared memory.
//!
//! Today these are the core handles (`try_*` calls, zero-copy guards) plus
//! the mapping they keep alive; they dereference to
//! [`shmcast_core::Producer`] / [`shmcast_core::Receiver`]. The blocking
//! calls (`send`, `recv`, `recv_timeout`) come with the notify backends and
//! slot in here without changing the `try_*` API.

use std::ops::{Deref, DerefMut};

use crate::map::ShmRegions;

/// A sender on a shared-memory channel.
#[derive(Debug)]
pub struct Sender {
    inner: shmcast_core::Producer<ShmRegions>,
}

impl Sender {
    pub(crate) fn new(inner: shmcast_core::Producer<ShmRegions>) -> Self {
        Sender { inner }
    }
}

impl Deref for Sender {
    type Target = shmcast_core::Producer<ShmRegions>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Sender {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// A receiver on a shared-memory channel.
#[derive(Debug)]
pub struct Receiver {
    inner: shmcast_core::Receiver<ShmRegions>,
}

impl Receiver {
    pub(crate) fn new(inner: shmcast_core::Receiver<ShmRegions>) -> Self {
        Receiver { inner }
    }
}

impl Deref for Receiver {
    type Target = shmcast_core::Receiver<ShmRegions>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Receiver {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}
