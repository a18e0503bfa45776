//! Channel names and where they live.
//!
//! A channel named `bus` is served on the **abstract** unix socket
//! `\0shmcast/bus`. The abstract namespace was chosen over a socket file in
//! `$XDG_RUNTIME_DIR` because: a dead creator leaves no stale file behind
//! (the kernel frees the name with the socket, so "creator exited" reads as
//! a clean `NotFound`, never a hang or an `ECONNREFUSED` on a leftover
//! file); no directory permissions stand in the way of peers of another uid
//! (access is decided by the channel's own mode bits against
//! `SO_PEERCRED`, like the RFC); and there is no path to escape. The cost:
//! names are visible to every process in the same network namespace (so a
//! container with its own network namespace does not see the host's
//! channels), and anyone there may squat a name first — a peer that cares
//! checks the creator's uid (`Attachment::creator_uid`).
//!
//! Names are 1 to 99 bytes of `[A-Za-z0-9._-]`, not starting with a dot:
//! a socket address holds 108 bytes, of which the leading NUL and the
//! `shmcast/` prefix take 9.

use std::fmt;

const PREFIX: &[u8] = b"shmcast/";

/// Longest channel name: what fits in `sun_path` (108 bytes) after the
/// abstract address's leading NUL and the `shmcast/` prefix.
pub const MAX_NAME_LEN: usize = SUN_PATH_LEN - 1 - PREFIX.len();

/// `sizeof(sockaddr_un.sun_path)` on Linux.
const SUN_PATH_LEN: usize = 108;

/// Why a channel name is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The name contains a character outside `[A-Za-z0-9._-]`, or starts
    /// with a dot.
    BadChar {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("channel names must not be empty"),
            NameError::TooLong { len } => {
                write!(f, "channel name is {len} bytes, at most {MAX_NAME_LEN} are allowed")
            }
            NameError::BadChar { ch, at } => write!(
                f,
                "channel name has {ch:?} at byte {at}; use letters, digits, '.', '_' and '-' (no leading '.')"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Check a channel name.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    for (at, ch) in name.char_indices() {
        let ok = ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || (ch == '.' && at > 0);
        if !ok {
            return Err(NameError::BadChar { ch, at });
        }
    }
    Ok(())
}

/// The abstract socket name (without the leading NUL) of a valid name.
pub(crate) fn socket_name(name: &str) -> Vec<u8> {
    let mut v = PREFIX.to_vec();
    v.extend_from_slice(name.as_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate("bus"), Ok(()));
        assert_eq!(validate("a.b-c_9"), Ok(()));
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(
            validate(&"x".repeat(100)),
            Err(NameError::TooLong { len: 100 })
        );
        assert_eq!(
            validate("../etc"),
            Err(NameError::BadChar { ch: '.', at: 0 })
        );
        assert_eq!(validate("a/b"), Err(NameError::BadChar { ch: '/', at: 1 }));
        assert_eq!(
            validate("a\0b"),
            Err(NameError::BadChar { ch: '\0', at: 1 })
        );
        assert_eq!(validate("é"), Err(NameError::BadChar { ch: 'é', at: 0 }));
        assert_eq!(socket_name("bus"), b"shmcast/bus");
    }
}
