//! # shmcast
//!
//! Inter-process channels over one lock-free ring in shared memory. This
//! crate will hold the shared-memory layer (sealed memfds, attach,
//! permissions, blocking calls); today it re-exports the ring from
//! [`shmcast_core`], which already runs in-process over heap memory.

#![deny(unsafe_code)]

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

pub use shmcast_core as core;
pub use shmcast_core::{
    Config, Envelope, HeapRing, MessageInfo, Mode, Producer, Receiver, SubscriberId, TryRecvError,
    TrySendError,
};
