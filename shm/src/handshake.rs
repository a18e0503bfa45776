//! The attach handshake: small fixed-size messages over a `SOCK_SEQPACKET`
//! unix socket (one message per packet), the fds riding along the `Welcome`
//! with `SCM_RIGHTS`. Encoding is little-endian; decoding is pure (no
//! syscalls) and total: any byte string yields a message or a
//! [`HandshakeError`], never a panic.
//!
//! ```text
//! Hello    client -> server   magic(8) version(2) kind=1 role(1)  reserved(4)                 16 B
//! Welcome  server -> client   magic(8) version(2) kind=2 role(1)  mode(4) control(8) data(8)
//!                                                                 creator_uid(4) eventfds(4)  40 B  + 2 fds
//! Eventfds server -> client   magic(8) version(2) kind=4 0(1)     first(4) count(4)           20 B  + count fds
//!          (only if the Welcome announced eventfds: one per subscriber entry, in packets of <= 250)
//! Refused  server -> client   magic(8) version(2) kind=3 reason(1) uid(4) mode(4) reserved(4)  24 B
//! ```
//!
//! A `Welcome` is also the *descriptor* of the bring-your-own-transport API
//! (`Channel::export` / `shmcast::import`).

use std::fmt;

use shmcast_core::{Mode, Role};

/// First 8 bytes of every handshake message.
pub const MAGIC: [u8; 8] = *b"shmcHSK\0";
/// Handshake protocol version.
pub const VERSION: u16 = 1;

/// Length of a `Hello`.
pub const HELLO_LEN: usize = 16;
/// Length of a `Welcome` (the descriptor).
pub const WELCOME_LEN: usize = 40;
/// Length of a `Refused`.
pub const REFUSED_LEN: usize = 24;
/// Length of an `Eventfds` header.
pub const EVENTFDS_LEN: usize = 20;
/// Most eventfds in one `Eventfds` packet (the kernel allows 253 fds per message).
pub const EVENTFDS_PER_PACKET: u32 = 250;
/// Longest message.
pub const MAX_LEN: usize = WELCOME_LEN;

/// Why a server refused an attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// The mode bits do not grant the role.
    PermissionDenied,
    /// The channel was destroyed.
    Destroyed,
    /// The request was not a valid `Hello`.
    BadRequest,
    /// Too many attaches of the client's uid are in progress.
    Busy,
    /// A code this version does not know.
    Other(u8),
}

impl RefuseReason {
    fn code(self) -> u8 {
        match self {
            RefuseReason::PermissionDenied => 1,
            RefuseReason::Destroyed => 2,
            RefuseReason::BadRequest => 3,
            RefuseReason::Busy => 4,
            RefuseReason::Other(c) => c,
        }
    }
    fn from_code(c: u8) -> Self {
        match c {
            1 => RefuseReason::PermissionDenied,
            2 => RefuseReason::Destroyed,
            3 => RefuseReason::BadRequest,
            4 => RefuseReason::Busy,
            c => RefuseReason::Other(c),
        }
    }
}

/// A handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// Client asks to attach with a role.
    Hello {
        /// The role asked for.
        role: Role,
    },
    /// Server grants the attach; the control and data fds come with it.
    Welcome {
        /// The role granted.
        role: Role,
        /// The channel's delivery mode.
        mode: Mode,
        /// Size of the control region.
        control_size: u64,
        /// Size of the data region.
        data_size: u64,
        /// Uid of the process that created (and serves) the channel.
        creator_uid: u32,
        /// Eventfds that follow in `Eventfds` packets (one per subscriber
        /// entry), or 0 if the channel has none.
        eventfds: u32,
    },
    /// A packet of the channel's eventfds: entries `first .. first + count`.
    Eventfds {
        /// Index of the first eventfd in the packet.
        first: u32,
        /// How many fds ride along.
        count: u32,
    },
    /// Server refuses the attach.
    Refused {
        /// Why.
        reason: RefuseReason,
        /// The client's uid as the server saw it.
        uid: u32,
        /// The channel's permission bits.
        mode: u32,
    },
}

/// A byte string that is not a valid handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Shorter than the fixed header (11 bytes) or than its kind requires.
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Longer than its kind allows.
    TooLong {
        /// Bytes received.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// Another protocol version.
    UnsupportedVersion {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// Unknown message kind.
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// Unknown role code.
    BadRole {
        /// The role byte.
        code: u8,
    },
    /// Unknown mode code.
    BadMode {
        /// The mode word.
        code: u32,
    },
    /// A message of the wrong kind at this point (e.g. a `Hello` from the server).
    Unexpected,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HandshakeError::TooShort { len, need } => {
                write!(f, "message of {len} B is too short, {need} B needed")
            }
            HandshakeError::TooLong { len, max } => {
                write!(
                    f,
                    "message of {len} B is too long, at most {max} B expected"
                )
            }
            HandshakeError::BadMagic => f.write_str("not a shmcast handshake message (bad magic)"),
            HandshakeError::UnsupportedVersion { ours, theirs } => {
                write!(f, "peer speaks handshake version {theirs}, we speak {ours}")
            }
            HandshakeError::UnknownKind { kind } => write!(f, "unknown message kind {kind}"),
            HandshakeError::BadRole { code } => write!(f, "unknown role code {code}"),
            HandshakeError::BadMode { code } => write!(f, "unknown mode code {code}"),
            HandshakeError::Unexpected => f.write_str("message of the wrong kind at this point"),
        }
    }
}

impl std::error::Error for HandshakeError {}

fn role_code(r: Role) -> u8 {
    match r {
        Role::Send => 1,
        Role::Recv => 2,
        Role::Both => 3,
    }
}

fn role_from(code: u8) -> Result<Role, HandshakeError> {
    match code {
        1 => Ok(Role::Send),
        2 => Ok(Role::Recv),
        3 => Ok(Role::Both),
        code => Err(HandshakeError::BadRole { code }),
    }
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

impl Message {
    /// Encode into a fresh buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MAX_LEN);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        match *self {
            Message::Hello { role } => {
                b.push(1);
                b.push(role_code(role));
                b.extend_from_slice(&[0; 4]);
            }
            Message::Welcome {
                role,
                mode,
                control_size,
                data_size,
                creator_uid,
                eventfds,
            } => {
                b.push(2);
                b.push(role_code(role));
                b.extend_from_slice(&mode.code().to_le_bytes());
                b.extend_from_slice(&control_size.to_le_bytes());
                b.extend_from_slice(&data_size.to_le_bytes());
                b.extend_from_slice(&creator_uid.to_le_bytes());
                b.extend_from_slice(&eventfds.to_le_bytes());
            }
            Message::Eventfds { first, count } => {
                b.push(4);
                b.push(0);
                b.extend_from_slice(&first.to_le_bytes());
                b.extend_from_slice(&count.to_le_bytes());
            }
            Message::Refused { reason, uid, mode } => {
                b.push(3);
                b.push(reason.code());
                b.extend_from_slice(&uid.to_le_bytes());
                b.extend_from_slice(&mode.to_le_bytes());
                b.extend_from_slice(&[0; 4]);
            }
        }
        b
    }

    /// Decode one message.
    pub fn decode(b: &[u8]) -> Result<Message, HandshakeError> {
        const HEAD: usize = 12;
        if b.len() < HEAD {
            return Err(HandshakeError::TooShort {
                len: b.len(),
                need: HEAD,
            });
        }
        if b[..8] != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(HandshakeError::UnsupportedVersion {
                ours: VERSION,
                theirs: version,
            });
        }
        let kind = b[10];
        let need = match kind {
            1 => HELLO_LEN,
            2 => WELCOME_LEN,
            3 => REFUSED_LEN,
            4 => EVENTFDS_LEN,
            kind => return Err(HandshakeError::UnknownKind { kind }),
        };
        if b.len() < need {
            return Err(HandshakeError::TooShort { len: b.len(), need });
        }
        if b.len() > need {
            return Err(HandshakeError::TooLong {
                len: b.len(),
                max: need,
            });
        }
        Ok(match kind {
            1 => Message::Hello {
                role: role_from(b[11])?,
            },
            2 => {
                let code = u32_at(b, 12);
                Message::Welcome {
                    role: role_from(b[11])?,
                    mode: Mode::from_code(code).ok_or(HandshakeError::BadMode { code })?,
                    control_size: u64_at(b, 16),
                    data_size: u64_at(b, 24),
                    creator_uid: u32_at(b, 32),
                    eventfds: u32_at(b, 36),
                }
            }
            4 => Message::Eventfds {
                first: u32_at(b, 12),
                count: u32_at(b, 16),
            },
            _ => Message::Refused {
                reason: RefuseReason::from_code(b[11]),
                uid: u32_at(b, 12),
                mode: u32_at(b, 16),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let msgs = [
            Message::Hello { role: Role::Recv },
            Message::Welcome {
                role: Role::Both,
                mode: Mode::Multicast,
                control_size: 9000,
                data_size: 1 << 20,
                creator_uid: 1000,
                eventfds: 64,
            },
            Message::Eventfds {
                first: 250,
                count: 14,
            },
            Message::Refused {
                reason: RefuseReason::PermissionDenied,
                uid: 65534,
                mode: 0o600,
            },
        ];
        for m in msgs {
            let b = m.encode();
            assert!(b.len() <= MAX_LEN);
            assert_eq!(Message::decode(&b), Ok(m));
        }
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        let hello = Message::Hello { role: Role::Send }.encode();
        assert_eq!(
            Message::decode(&[]),
            Err(HandshakeError::TooShort { len: 0, need: 12 })
        );
        assert_eq!(
            Message::decode(&hello[..13]),
            Err(HandshakeError::TooShort { len: 13, need: 16 })
        );
        let mut long = hello.clone();
        long.push(0);
        assert_eq!(
            Message::decode(&long),
            Err(HandshakeError::TooLong { len: 17, max: 16 })
        );
        let mut bad = hello.clone();
        bad[0] = b'X';
        assert_eq!(Message::decode(&bad), Err(HandshakeError::BadMagic));
        let mut bad = hello.clone();
        bad[8] = 9;
        assert_eq!(
            Message::decode(&bad),
            Err(HandshakeError::UnsupportedVersion { ours: 1, theirs: 9 })
        );
        let mut bad = hello.clone();
        bad[10] = 7;
        assert_eq!(
            Message::decode(&bad),
            Err(HandshakeError::UnknownKind { kind: 7 })
        );
        let mut bad = hello;
        bad[11] = 0;
        assert_eq!(
            Message::decode(&bad),
            Err(HandshakeError::BadRole { code: 0 })
        );
        let mut w = Message::Welcome {
            role: Role::Send,
            mode: Mode::Unicast,
            control_size: 1,
            data_size: 1,
            creator_uid: 0,
            eventfds: 0,
        }
        .encode();
        w[12] = 0;
        assert_eq!(
            Message::decode(&w),
            Err(HandshakeError::BadMode { code: 0 })
        );
    }
}
