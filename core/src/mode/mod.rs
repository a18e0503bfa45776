//! Delivery modes.
//!
//! 1. **Unicast** ([`Mode::Unicast`]): one receiver. It reads in position
//!    order and advances the shared head itself; a second receiver is refused.
//! 2. **Broadcast** ([`Mode::Broadcast`]): every receiver gets every message
//!    (except messages addressed to someone else). Each receiver keeps its own
//!    `local_head`; the shared head is raised lazily to their minimum.
//! 3. **Multicast** ([`Mode::Multicast`]): competing consumers. Each message
//!    goes to exactly one receiver: receivers copy a message out, then CAS the
//!    shared head; a loser discards its copy and tries the next position.

pub(crate) mod broadcast;
pub(crate) mod multicast;
pub(crate) mod unicast;

use crate::error::ConfigError;

/// How messages are delivered to receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One receiver gets every message.
    Unicast,
    /// Every receiver gets every message.
    Broadcast,
    /// Each message goes to exactly one of several competing receivers.
    Multicast,
}

/// RFC-style creation flag: broadcast delivery.
pub const FLAG_BROADCAST: u32 = 1 << 0;
/// RFC-style creation flag: multicast (competing consumers) delivery.
pub const FLAG_MULTICAST: u32 = 1 << 1;

impl Mode {
    /// The code stored in the control header.
    pub const fn code(self) -> u32 {
        match self {
            Mode::Unicast => 1,
            Mode::Broadcast => 2,
            Mode::Multicast => 3,
        }
    }

    /// Inverse of [`Mode::code`].
    pub const fn from_code(code: u32) -> Option<Mode> {
        match code {
            1 => Some(Mode::Unicast),
            2 => Some(Mode::Broadcast),
            3 => Some(Mode::Multicast),
            _ => None,
        }
    }

    /// The mode selected by RFC-style creation flags: no flag is unicast,
    /// [`FLAG_BROADCAST`] broadcast, [`FLAG_MULTICAST`] multicast. Both at once
    /// is [`ConfigError::ConflictingModes`]; any other bit is
    /// [`ConfigError::UnknownFlags`].
    pub const fn from_flags(flags: u32) -> Result<Mode, ConfigError> {
        let unknown = flags & !(FLAG_BROADCAST | FLAG_MULTICAST);
        if unknown != 0 {
            return Err(ConfigError::UnknownFlags { flags: unknown });
        }
        match (flags & FLAG_BROADCAST != 0, flags & FLAG_MULTICAST != 0) {
            (true, true) => Err(ConfigError::ConflictingModes),
            (true, false) => Ok(Mode::Broadcast),
            (false, true) => Ok(Mode::Multicast),
            (false, false) => Ok(Mode::Unicast),
        }
    }
}

impl core::fmt::Display for Mode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Mode::Unicast => "unicast",
            Mode::Broadcast => "broadcast",
            Mode::Multicast => "multicast",
        })
    }
}
