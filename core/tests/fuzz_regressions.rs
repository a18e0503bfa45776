//! Regressions found by the cargo-fuzz targets in `fuzz/` (each input is
//! also kept in `fuzz/corpus/<target>/`). One test per bug, named after
//! what was wrong, reproducing the minimal sequence the fuzzer found.

use shmcast_core::{Config, HeapRing, JoinError, Mode};

/// `ops_model`: a duplex join of a unicast ring whose receiver is taken is
/// refused, but it used to mark the ring as "a sender joined" first, so
/// `senders_gone()` said true although no sender had ever joined (and a
/// drained unicast channel would read as closed).
#[test]
fn refused_duplex_join_does_not_count_as_a_sender() {
    let config = Config::new(Mode::Unicast)
        .capacity(1)
        .max_message(3)
        .max_subscribers(4);
    let ring = HeapRing::new(&config).unwrap();
    let _rx = ring.receiver().unwrap();
    assert_eq!(ring.duplex().map(|_| ()), Err(JoinError::ReceiverTaken));
    assert!(!ring.senders_gone(), "no sender ever joined");
    let tx = ring.producer().unwrap();
    assert!(!ring.senders_gone());
    drop(tx);
    assert!(ring.senders_gone(), "the one sender left");
}
