//! # shmcast-core
//!
//! The lock-free ring behind [shmcast]: many producers, many receivers,
//! unicast / broadcast / multicast delivery, over memory it is handed — a
//! heap allocation ([`HeapRing`]) or two shared-memory regions mapped by the
//! `shmcast` crate ([`RawRegions`]). `#![no_std]`, no syscalls.
//!
//! ```
//! use shmcast_core::{Config, HeapRing, Mode};
//!
//! let ring = HeapRing::new(&Config::new(Mode::Broadcast).capacity(16).max_message(64))?;
//! let tx = ring.producer()?;
//! let (a, b) = (ring.receiver()?, ring.receiver()?);
//! tx.try_send(b"to everyone")?;
//! let mut buf = [0u8; 64];
//! for rx in [&a, &b] {
//!     let info = rx.try_recv(&mut buf)?;
//!     assert_eq!(&buf[..info.len], b"to everyone");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Roles are types
//!
//! A subscriber joins as a sender ([`Ring::producer`]), a receiver
//! ([`Ring::receiver`]) or both ([`Ring::duplex`], one table entry, two
//! handles). A receive-only handle has no send methods, and a send-only
//! handle no receive methods, so the RFC's `EACCES` cases cannot compile:
//!
//! ```compile_fail
//! # use shmcast_core::{Config, HeapRing, Mode};
//! let ring = HeapRing::new(&Config::new(Mode::Unicast)).unwrap();
//! let rx = ring.receiver().unwrap();
//! rx.try_send(b"receive-only cannot send");
//! ```
//!
//! ```compile_fail
//! # use shmcast_core::{Config, HeapRing, Mode};
//! let ring = HeapRing::new(&Config::new(Mode::Unicast)).unwrap();
//! let tx = ring.producer().unwrap();
//! let mut buf = [0u8; 8];
//! tx.try_recv(&mut buf); // send-only cannot receive
//! ```
//!
//! while the duplex pair does both:
//!
//! ```
//! # use shmcast_core::{Config, HeapRing, Mode};
//! let ring = HeapRing::new(&Config::new(Mode::Unicast)).unwrap();
//! let (tx, rx) = ring.duplex().unwrap();
//! tx.try_send(b"loopback").unwrap();
//! let mut buf = [0u8; 8];
//! assert_eq!(rx.try_recv(&mut buf).unwrap().len, 8);
//! ```
//!
//! ## Protocols
//!
//! Positions are `u64` and never wrap in practice; position `p` lives in slot
//! `p & (capacity - 1)`, and a message's id is its position.
//!
//! - **Send** ([`Producer`]): check the free room against a cached consumer
//!   head (refresh it, and in broadcast rescan the receivers, only when it
//!   says full), CAS `tail -> tail + k`, write the slot, store
//!   `seq = p + 1` with Release. Batches claim `k` slots with one CAS.
//! - **Unicast**: one receiver waits for `seq == h + 1`, copies out, stores
//!   `head = h + 1`.
//! - **Broadcast**: every receiver does the same on its own `local_head`; the
//!   shared head is raised to their minimum every 16 messages and when a
//!   producer finds the ring full.
//! - **Multicast**: competing receivers copy out first, then CAS the shared
//!   head; losers discard their copy.
//! - **Sleep / wake**: an eventcount over a waiter bitmap ([`wake`]).
//!
//! ## Guarantees
//!
//! | | |
//! |---|---|
//! | progress (send) | lock-free: a failed CAS means another producer claimed |
//! | progress (receive) | receivers read in position order, so a producer stalled between its claim and its publish stalls every receiver behind that position until it resumes (a scheduler slice when two producers share a core; forever if it dies — recovery comes with the robustness work) |
//! | full ring | reported as [`TrySendError::Full`], never dropped |
//! | dead receiver mid-read | unicast/broadcast: its position is not released until its handle is; multicast: blocks nobody |
//! | hostile peer | may make results wrong or the ring full, never makes our process read or write out of bounds, panic, or loop without bound: geometry is validated once and kept private, lengths from slots are clamped, payload copies are atomic, all loops are bounded |
//! | ordering | per producer, messages are received in send order; across producers, in claim order |
//!
//! [shmcast]: https://docs.rs/shmcast

#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(test)]
extern crate std;

mod sync;

#[cfg(not(loom))]
mod copy;

pub mod config;
pub mod error;
pub mod layout;
pub mod mode;
pub mod producer;
pub mod receiver;
pub mod ring;
pub mod storage;
mod subscribers;
pub mod wake;

pub use config::Config;
pub use error::{ConfigError, JoinError, LayoutError, TryRecvError, TrySendError};
pub use layout::{Geometry, HeaderWords};
pub use mode::{Mode, FLAG_BROADCAST, FLAG_MULTICAST};
pub use producer::{Envelope, Producer, SendSlot};
pub use receiver::{MessageInfo, ReadSlot, Receiver};
#[cfg(feature = "alloc")]
pub use ring::HeapRing;
pub use ring::{Counters, Ring, Role, SubscriberId};
#[cfg(feature = "alloc")]
pub use storage::HeapRegions;
#[cfg(not(loom))]
pub use storage::RawRegions;
pub use storage::Regions;
pub use wake::{WaitToken, WakeSet};

/// Re-exported so users name the same atomic types the ring hands out
/// (loom's under `--cfg loom`).
pub mod atomic {
    #[cfg(not(loom))]
    pub use core::sync::atomic::{AtomicU32, AtomicU64};
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicU32, AtomicU64};
}
