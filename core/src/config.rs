//! Ring configuration, validated the way the RFC validates channel creation.

use crate::error::ConfigError;
use crate::layout::{
    Geometry, DEFAULT_MAX_MESSAGE_CAP, HARD_MAX_MESSAGE, MAX_CAPACITY, MAX_DATA_REGION,
    MAX_SUBSCRIBERS,
};
use crate::mode::Mode;

/// What a new ring looks like. Build one with [`Config::new`] (or
/// [`Config::from_flags`] for RFC-style flags), adjust it, and hand it to a
/// ring constructor, which calls [`Config::geometry`].
///
/// ```
/// use shmcast_core::{Config, Mode};
/// let config = Config::new(Mode::Broadcast).capacity(64).max_message(256).max_subscribers(8);
/// assert!(config.geometry().is_ok());
/// assert!(Config::new(Mode::Unicast).capacity(3).geometry().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    mode: Mode,
    capacity: u64,
    max_message: u32,
    max_subscribers: u32,
    message_cap: u32,
}

impl Config {
    /// Defaults: 256 slots of up to 4 KiB, 64 subscribers, 1 MiB message cap.
    pub const fn new(mode: Mode) -> Self {
        Config {
            mode,
            capacity: 256,
            max_message: 4096,
            max_subscribers: 64,
            message_cap: DEFAULT_MAX_MESSAGE_CAP,
        }
    }

    /// A configuration from RFC-style flags ([`crate::FLAG_BROADCAST`],
    /// [`crate::FLAG_MULTICAST`]); see [`Mode::from_flags`].
    pub const fn from_flags(flags: u32) -> Result<Self, ConfigError> {
        match Mode::from_flags(flags) {
            Ok(mode) => Ok(Config::new(mode)),
            Err(e) => Err(e),
        }
    }

    /// The same configuration with another delivery mode.
    pub const fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Number of slots; must be a power of two.
    pub const fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Largest message in bytes (the RFC's `max_msg_size`).
    pub const fn max_message(mut self, bytes: u32) -> Self {
        self.max_message = bytes;
        self
    }

    /// Entries in the subscriber table (senders and receivers together).
    pub const fn max_subscribers(mut self, count: u32) -> Self {
        self.max_subscribers = count;
        self
    }

    /// Cap on `max_message` (default 1 MiB, the RFC's cap). Raising it is an
    /// explicit decision: big slots times many slots is a lot of memory.
    pub const fn message_cap(mut self, cap: u32) -> Self {
        self.message_cap = cap;
        self
    }

    /// The delivery mode.
    pub const fn mode(&self) -> Mode {
        self.mode
    }

    /// Validate and compute the layout.
    pub fn geometry(&self) -> Result<Geometry, ConfigError> {
        if self.message_cap > HARD_MAX_MESSAGE {
            return Err(ConfigError::MessageCapTooLarge {
                cap: self.message_cap,
                max: HARD_MAX_MESSAGE,
            });
        }
        if self.capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        if !self.capacity.is_power_of_two() {
            return Err(ConfigError::CapacityNotPowerOfTwo {
                capacity: self.capacity,
            });
        }
        if self.capacity > MAX_CAPACITY {
            return Err(ConfigError::CapacityTooLarge {
                capacity: self.capacity,
                max: MAX_CAPACITY,
            });
        }
        if self.max_message == 0 {
            return Err(ConfigError::ZeroMessageSize);
        }
        if self.max_message > self.message_cap {
            return Err(ConfigError::MessageSizeTooLarge {
                size: self.max_message,
                max: self.message_cap,
            });
        }
        if self.max_subscribers == 0 {
            return Err(ConfigError::ZeroSubscribers);
        }
        if self.max_subscribers > MAX_SUBSCRIBERS {
            return Err(ConfigError::TooManySubscribers {
                count: self.max_subscribers,
                max: MAX_SUBSCRIBERS,
            });
        }
        Geometry::new(
            self.mode,
            self.capacity,
            self.max_message,
            self.max_subscribers,
        )
        .map_err(|_| {
            let stride = (32 + self.max_message as u64).div_ceil(64) * 64;
            ConfigError::RingTooLarge {
                size: self.capacity * stride,
                max: MAX_DATA_REGION,
            }
        })
    }
}
