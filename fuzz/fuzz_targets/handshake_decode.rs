//! Arbitrary bytes into the attach handshake decoder, which reads whatever
//! a peer put in a packet.
//!
//! Asserts: `Message::decode` never panics; an error describes the input
//! truthfully (a `TooShort` / `TooLong` carries the real length on the
//! right side of the bound); a message it accepts re-encodes to a packet of
//! the same length and kind, no longer than `MAX_LEN` (the receive buffer of
//! `attach`), that decodes to the same message. And the other way round:
//! every well-formed message survives encode → decode unchanged.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use shmcast::handshake::{HandshakeError, Message, RefuseReason, MAX_LEN};
use shmcast::{Mode, Role};

fuzz_target!(|data: &[u8]| {
    check_bytes(data);
    // The same bytes, read as a structured message.
    if let Ok(m) = Structured::arbitrary_take_rest(Unstructured::new(data)) {
        let msg = m.message();
        let bytes = msg.encode();
        assert!(
            bytes.len() <= MAX_LEN,
            "{msg:?} encodes to {} B",
            bytes.len()
        );
        assert_eq!(Message::decode(&bytes), Ok(msg), "round trip of {msg:?}");
        check_bytes(&bytes);
    }
});

fn check_bytes(data: &[u8]) {
    match Message::decode(data) {
        Ok(msg) => {
            let again = msg.encode();
            assert_eq!(
                again.len(),
                data.len(),
                "{msg:?} re-encodes to another length"
            );
            assert!(again.len() <= MAX_LEN);
            // Magic, version and kind are reproduced exactly; only reserved
            // bytes may differ (they are ignored when decoding).
            assert_eq!(again[..11], data[..11], "header of {msg:?}");
            assert_eq!(Message::decode(&again), Ok(msg), "decode(encode({msg:?}))");
        }
        Err(HandshakeError::TooShort { len, need }) => {
            assert_eq!(len, data.len());
            assert!(len < need);
        }
        Err(HandshakeError::TooLong { len, max }) => {
            assert_eq!(len, data.len());
            assert!(len > max);
        }
        Err(_) => {}
    }
}

/// A well-formed message (the `Other` refuse codes are the ones this
/// version does not know, as documented: 0 and 5..).
#[derive(Debug, Arbitrary)]
enum Structured {
    Hello(RoleArb),
    Welcome {
        role: RoleArb,
        mode: ModeArb,
        control_size: u64,
        data_size: u64,
        creator_uid: u32,
        eventfds: u32,
    },
    Eventfds {
        first: u32,
        count: u32,
    },
    Refused {
        reason: u8,
        uid: u32,
        mode: u32,
    },
}

#[derive(Debug, Arbitrary)]
enum RoleArb {
    Send,
    Recv,
    Both,
}

#[derive(Debug, Arbitrary)]
enum ModeArb {
    Unicast,
    Broadcast,
    Multicast,
}

impl Structured {
    fn message(&self) -> Message {
        let role = |r: &RoleArb| match r {
            RoleArb::Send => Role::Send,
            RoleArb::Recv => Role::Recv,
            RoleArb::Both => Role::Both,
        };
        match self {
            Structured::Hello(r) => Message::Hello { role: role(r) },
            Structured::Welcome {
                role: r,
                mode,
                control_size,
                data_size,
                creator_uid,
                eventfds,
            } => Message::Welcome {
                role: role(r),
                mode: match mode {
                    ModeArb::Unicast => Mode::Unicast,
                    ModeArb::Broadcast => Mode::Broadcast,
                    ModeArb::Multicast => Mode::Multicast,
                },
                control_size: *control_size,
                data_size: *data_size,
                creator_uid: *creator_uid,
                eventfds: *eventfds,
            },
            Structured::Eventfds { first, count } => Message::Eventfds {
                first: *first,
                count: *count,
            },
            Structured::Refused { reason, uid, mode } => Message::Refused {
                reason: match reason {
                    1 => RefuseReason::PermissionDenied,
                    2 => RefuseReason::Destroyed,
                    3 => RefuseReason::BadRequest,
                    4 => RefuseReason::Busy,
                    c => RefuseReason::Other(*c),
                },
                uid: *uid,
                mode: *mode,
            },
        }
    }
}
