//! The shared layout is an ABI: pin sizes and offsets, and check that
//! `Geometry::decode` rejects every header that does not fit, each with its
//! own error.

use core::mem::{offset_of, size_of};

use shmcast_core::layout::*;
use shmcast_core::{Config, Geometry, HeaderWords, LayoutError, Mode};

#[test]
fn abi_sizes_and_offsets() {
    assert_eq!(size_of::<ControlHeader>(), 512);
    assert_eq!(offset_of!(ControlHeader, geometry), 0);
    assert_eq!(offset_of!(ControlHeader, tail), 128);
    assert_eq!(offset_of!(ControlHeader, head), 256);
    assert_eq!(offset_of!(ControlHeader, wake), 384);

    assert_eq!(offset_of!(GeometryWords, magic), 0);
    assert_eq!(offset_of!(GeometryWords, version), 8);
    assert_eq!(offset_of!(GeometryWords, mode), 12);
    assert_eq!(offset_of!(GeometryWords, capacity), 16);
    assert_eq!(offset_of!(GeometryWords, slot_stride), 24);
    assert_eq!(offset_of!(GeometryWords, max_message), 28);
    assert_eq!(offset_of!(GeometryWords, max_subscribers), 32);
    assert_eq!(offset_of!(GeometryWords, flags), 36);
    assert_eq!(offset_of!(GeometryWords, control_size), 40);
    assert_eq!(offset_of!(GeometryWords, data_size), 48);
    assert_eq!(offset_of!(GeometryWords, state), 68);

    assert_eq!(offset_of!(WakeWords, broadcast), 0);
    assert_eq!(offset_of!(WakeWords, round_robin), 4);
    assert_eq!(offset_of!(WakeWords, exclusive_receiver), 8);
    assert_eq!(offset_of!(WakeWords, table_high_water), 12);
    assert_eq!(offset_of!(WakeWords, sender_joined), 16);

    assert_eq!(size_of::<SubscriberEntry>(), 128);
    assert_eq!(offset_of!(SubscriberEntry, state), 0);
    assert_eq!(offset_of!(SubscriberEntry, local_head), 8);
    assert_eq!(offset_of!(SubscriberEntry, wake), 16);
    assert_eq!(offset_of!(SubscriberEntry, backend), 20);
    assert_eq!(offset_of!(SubscriberEntry, liveness), 24);
    assert_eq!(offset_of!(SubscriberEntry, claim_start), 32);
    assert_eq!(offset_of!(SubscriberEntry, claim_count), 40);
    assert_eq!(offset_of!(SubscriberEntry, sent), 48);
    assert_eq!(offset_of!(SubscriberEntry, received), 56);
    assert_eq!(offset_of!(SubscriberEntry, lagged), 64);
    assert_eq!(offset_of!(SubscriberEntry, notify_info), 72);

    assert_eq!(size_of::<SlotHeader>(), 32);
    assert_eq!(offset_of!(SlotHeader, seq), 0);
    assert_eq!(offset_of!(SlotHeader, len), 8);
    assert_eq!(offset_of!(SlotHeader, sender), 12);
    assert_eq!(offset_of!(SlotHeader, target), 16);
    assert_eq!(offset_of!(SlotHeader, flags), 20);
    assert_eq!(offset_of!(SlotHeader, tag), 24);

    assert_eq!(MAGIC.to_be_bytes(), *b"SHMCAST\0");
}

#[test]
fn geometry_of_a_typical_ring() {
    let g = Config::new(Mode::Broadcast)
        .capacity(1024)
        .max_message(4096)
        .max_subscribers(64)
        .geometry()
        .unwrap();
    assert_eq!(g.slot_stride(), 4160); // 32 + 4096 rounded up to 64
    assert_eq!(g.payload_room(), 4128);
    assert_eq!(g.data_size(), 1024 * 4160);
    assert_eq!(g.bitmap_words(), 1);
    assert_eq!(g.subscribers_offset(), 512 + 128);
    assert_eq!(g.control_size(), 512 + 128 + 64 * 128);
    assert_eq!(g.slot_of(1025), 1);
    // A geometry decodes from its own header words and sizes.
    let w = g.header_words();
    let back = Geometry::decode(&w, g.control_size() as u64, g.data_size() as u64, 1 << 20);
    assert_eq!(back, Ok(g));
    // And round-trips through the byte image.
    assert_eq!(HeaderWords::from_bytes(&w.to_bytes()), Some(w));
    assert_eq!(HeaderWords::from_bytes(&w.to_bytes()[..55]), None);
}

fn good() -> (HeaderWords, u64, u64) {
    let g = Config::new(Mode::Unicast)
        .capacity(8)
        .max_message(100)
        .max_subscribers(4)
        .geometry()
        .unwrap();
    (
        g.header_words(),
        g.control_size() as u64,
        g.data_size() as u64,
    )
}

fn decode_with(
    f: impl FnOnce(&mut HeaderWords, &mut u64, &mut u64),
) -> Result<Geometry, LayoutError> {
    let (mut w, mut c, mut d) = good();
    f(&mut w, &mut c, &mut d);
    Geometry::decode(&w, c, d, DEFAULT_MAX_MESSAGE_CAP)
}

#[test]
fn decode_rejects_bad_magic() {
    let e = decode_with(|w, _, _| w.magic = 0x7f45_4c46).unwrap_err();
    assert_eq!(e, LayoutError::BadMagic { found: 0x7f45_4c46 });
    assert!(e.to_string().contains("not a shmcast region"));
}

#[test]
fn decode_rejects_unknown_version() {
    // 1: the layout before the broadcast wake relay (its receivers would
    // never relay a wake); LAYOUT_VERSION + 1: a newer one.
    for theirs in [1, LAYOUT_VERSION + 1] {
        let e = decode_with(|w, _, _| w.version = theirs).unwrap_err();
        assert_eq!(
            e,
            LayoutError::VersionMismatch {
                ours: LAYOUT_VERSION,
                theirs
            }
        );
    }
}

#[test]
fn decode_rejects_unknown_mode_and_flags() {
    assert_eq!(
        decode_with(|w, _, _| w.mode = 0),
        Err(LayoutError::UnknownMode { code: 0 })
    );
    assert_eq!(
        decode_with(|w, _, _| w.mode = 9),
        Err(LayoutError::UnknownMode { code: 9 })
    );
    assert_eq!(
        decode_with(|w, _, _| w.flags = 4),
        Err(LayoutError::UnknownFlags { flags: 4 })
    );
}

#[test]
fn decode_rejects_bad_capacity() {
    assert_eq!(
        decode_with(|w, _, _| w.capacity = 0),
        Err(LayoutError::ZeroCapacity)
    );
    assert_eq!(
        decode_with(|w, _, _| w.capacity = 6),
        Err(LayoutError::CapacityNotPowerOfTwo { capacity: 6 })
    );
    assert_eq!(
        decode_with(|w, _, _| w.capacity = 1 << 40),
        Err(LayoutError::CapacityTooLarge {
            capacity: 1 << 40,
            max: MAX_CAPACITY
        })
    );
}

#[test]
fn decode_rejects_bad_slot_sizes() {
    assert_eq!(
        decode_with(|w, _, _| w.max_message = 0),
        Err(LayoutError::ZeroMessageSize)
    );
    assert_eq!(
        decode_with(|w, _, _| w.max_message = (1 << 20) + 1),
        Err(LayoutError::MessageSizeTooLarge {
            size: (1 << 20) + 1,
            max: 1 << 20
        })
    );
    assert_eq!(
        decode_with(|w, _, _| w.slot_stride = 0),
        Err(LayoutError::ZeroSlotSize)
    );
    assert_eq!(
        decode_with(|w, _, _| w.slot_stride = 130),
        Err(LayoutError::SlotSizeMisaligned { slot_stride: 130 })
    );
    // 100-byte messages need 32 + 100 = 132 bytes: 192 after rounding.
    assert_eq!(
        decode_with(|w, _, _| w.slot_stride = 128),
        Err(LayoutError::SlotSizeTooSmall {
            slot_stride: 128,
            needed: 132
        })
    );
    assert_eq!(
        decode_with(|w, _, _| w.slot_stride = 256),
        Err(LayoutError::SlotSizeTooLarge {
            slot_stride: 256,
            max: 192
        })
    );
    // A smaller cap on the attaching side rejects what the creator allowed.
    let (w, c, d) = good();
    assert_eq!(
        Geometry::decode(&w, c, d, 64),
        Err(LayoutError::MessageSizeTooLarge { size: 100, max: 64 })
    );
}

#[test]
fn decode_rejects_bad_subscriber_counts() {
    assert_eq!(
        decode_with(|w, _, _| w.max_subscribers = 0),
        Err(LayoutError::ZeroSubscribers)
    );
    assert_eq!(
        decode_with(|w, _, _| w.max_subscribers = MAX_SUBSCRIBERS + 1),
        Err(LayoutError::TooManySubscribers {
            count: MAX_SUBSCRIBERS + 1,
            max: MAX_SUBSCRIBERS
        })
    );
}

#[test]
fn decode_rejects_oversized_data_region() {
    let e = decode_with(|w, _, _| {
        w.capacity = MAX_CAPACITY;
        w.max_message = 1 << 20;
        w.slot_stride = (32 + (1 << 20) as u32).div_ceil(64) * 64;
    })
    .unwrap_err();
    assert!(matches!(e, LayoutError::DataRegionTooLarge { .. }), "{e:?}");
}

#[test]
fn decode_rejects_sizes_that_do_not_match() {
    let (_, c, d) = good();
    // Truncated regions (what a peer's ftruncate would produce without seals).
    assert_eq!(
        decode_with(|_, c, _| *c -= 64),
        Err(LayoutError::ControlSizeMismatch {
            expected: c,
            header: c,
            actual: c - 64
        })
    );
    assert_eq!(
        decode_with(|_, _, d| *d = 4096),
        Err(LayoutError::DataSizeMismatch {
            expected: d,
            header: d,
            actual: 4096
        })
    );
    // Header lying about a size.
    assert_eq!(
        decode_with(|w, _, _| w.data_size += 1),
        Err(LayoutError::DataSizeMismatch {
            expected: d,
            header: d + 1,
            actual: d
        })
    );
    // Region larger than the header says: also refused.
    assert!(matches!(
        decode_with(|_, c, _| *c += 4096),
        Err(LayoutError::ControlSizeMismatch { .. })
    ));
}

#[test]
fn decode_never_panics_on_extreme_words() {
    let extremes = [
        0u64,
        1,
        63,
        64,
        127,
        128,
        1 << 31,
        u32::MAX as u64,
        u64::MAX,
    ];
    for &a in &extremes {
        for &b in &extremes {
            let w = HeaderWords {
                magic: MAGIC,
                version: LAYOUT_VERSION,
                mode: 2,
                capacity: a,
                slot_stride: b as u32,
                max_message: a as u32,
                max_subscribers: b as u32,
                flags: 0,
                control_size: a,
                data_size: b,
            };
            if let Ok(g) = Geometry::decode(&w, a, b, u32::MAX) {
                assert_eq!(g.control_size() as u64, a);
                assert_eq!(g.data_size() as u64, b);
            }
        }
    }
}
