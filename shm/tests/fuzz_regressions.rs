//! Regressions found by the cargo-fuzz targets in `fuzz/` (each input is
//! also kept in `fuzz/corpus/<target>/`), through the shared-memory layer.

use std::sync::atomic::Ordering::Relaxed;

use shmcast::core::Regions;
use shmcast::{ChannelBuilder, Mode};

/// `attach_bytes`: a creator (here: a peer scribbling on the control
/// region) set a padding bit of the waiter bitmap, past the last entry of
/// the table. The next send's wake named that non-entry and the notify
/// layer indexed the table with it: a panic inside `try_send`.
#[test]
fn waiter_bits_past_the_table_do_not_break_sends() {
    for mode in [Mode::Unicast, Mode::Broadcast, Mode::Multicast] {
        let name = format!("fuzzreg-{}-{mode}", std::process::id());
        let channel = ChannelBuilder::new(name)
            .mode(mode)
            .capacity(4)
            .max_message(16)
            .max_subscribers(3)
            .create()
            .unwrap();
        let tx = channel.sender().unwrap();
        channel
            .raw_ring()
            .regions()
            .waiter_word(0)
            .store(!0b111, Relaxed);
        tx.try_send(b"still fine").unwrap();
        tx.try_send_batch(&[b"a", b"b"]).unwrap();
        channel.destroy();
    }
}
