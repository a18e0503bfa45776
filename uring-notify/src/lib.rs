//! # shmcast-uring-notify
//!
//! Puts shmcast receivers to sleep and wakes them across processes. The
//! eventcount that decides *who* sleeps and *whom* to wake lives in
//! `shmcast_core::wake`; this crate will only perform the waits and wakes
//! (futex, io_uring, eventfd). It has no backend yet: nothing here pretends
//! to sleep.

#![deny(unsafe_code)]
