//! # shmcast
//!
//! Inter-process channels on Linux over one lock-free ring in shared
//! memory: many senders, many receivers, unicast / broadcast / multicast
//! delivery, between processes that need not trust each other.
//!
//! A channel is two sealed memfds (control and data, see
//! [`shmcast_core::layout`]). Its creator serves attach requests on an
//! abstract unix socket named after the channel ([`name`] says why there);
//! a peer connects, the creator checks the peer's `SO_PEERCRED` against the
//! channel's owner/group/other bits (receive needs read, send needs write;
//! a sender can read the ring too, see the README's trust model)
//! and hands over the fds with `SCM_RIGHTS` — the data region `O_RDONLY` to
//! receive-only peers, so their kernel refuses them a writable mapping. The
//! peer validates everything it was handed (memfd, seals, sizes from
//! `fstat`, header through [`Geometry::decode`](shmcast_core::Geometry::decode))
//! before it maps and joins.
//!
//! ```
//! use shmcast::{attach, ChannelBuilder, Mode, Role};
//!
//! // Process A creates a broadcast channel other users of its group may read.
//! let channel = ChannelBuilder::new("doc-quickstart")
//!     .mode(Mode::Broadcast)
//!     .capacity(1024)
//!     .max_message(256)
//!     .permissions(0o640)
//!     .create()?;
//! let tx = channel.sender()?;
//!
//! // Process B (here: the same one) attaches by name and receives.
//! let rx = attach("doc-quickstart", Role::Recv)?.receiver()?;
//! tx.try_send(b"temperature=21.5")?;
//! let mut buf = [0u8; 256];
//! let msg = rx.try_recv(&mut buf)?;
//! assert_eq!(&buf[..msg.len], b"temperature=21.5");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Receivers sleep in [`Receiver::recv`] / [`Receiver::recv_timeout`] and
//! are woken by senders through the eventcount in `shmcast_core::wake` and a
//! notify backend of `shmcast_uring_notify` (futex by default; io_uring
//! `FUTEX_WAIT` or `MSG_RING`, or eventfd, by choice or `SHMCAST_NOTIFY`).
//! Senders make no wake syscall while no receiver sleeps.

#![deny(unsafe_code)]

mod channel;
pub mod error;
mod fd_passing;
mod handles;
pub mod handshake;
mod liveness;
mod map;
pub mod name;
mod permissions;
mod region;
pub mod seal;
mod server;
mod validate;
mod view;

pub use channel::{
    attach, attach_with, import, import_with, AttachOptions, Attachment, Channel, ChannelBuilder,
    Export,
};
pub use error::{AttachError, CreateError, OpenError, RecvError, Region, SendError};
pub use handles::{Receiver, SendSlot, Sender, Spin};
pub use map::ShmRegions;
pub use shmcast_core::{
    Config, Envelope, HeapRing, JoinError, MessageInfo, Mode, Role, SubscriberId, TryRecvError,
    TrySendError,
};
pub use shmcast_uring_notify::{BackendKind, Unsupported, WakeStats};
pub use view::RingView;

/// The core ring crate, re-exported.
pub use shmcast_core as core;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
