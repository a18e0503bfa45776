//! Harness for the shmcast benchmarks.
//!
//! The `shmcast-bench` binary (`src/bin/shmcast-bench.rs`) measures shmcast
//! against pipes, unix sockets, shared memory + eventfd and a raw
//! shared-memory spin between **real processes**: it re-executes itself with
//! a worker role, pins the two sides to different CPUs, and talks to each
//! worker over its stdin/stdout with fixed-size records. This library holds
//! the parts that are not specific to one section:
//!
//! - [`sys`]: CPU pinning, clocks, shared-memory arenas, fd inheritance;
//! - [`worker`]: spawning workers and the control records;
//! - [`mech`]: the mechanisms under test behind two small traits, [`mech::Tx`]
//!   and [`mech::Rx`], plus the raw SPSC ring that serves as the floor;
//! - [`iox`]: iceoryx2 publish-subscribe as a mechanism, for comparison;
//! - [`stats`]: medians and percentiles;
//! - [`report`]: markdown, CSV and SVG output of result tables.

pub mod iox;
pub mod mech;
pub mod report;
pub mod stats;
pub mod sys;
pub mod worker;
