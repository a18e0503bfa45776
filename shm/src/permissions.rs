//! Owner / group / other permission bits, checked against a peer's
//! `SO_PEERCRED` like the RFC's channel `mode`: receiving needs read (4),
//! sending needs write (2). There is no root override: a channel created
//! `0o600` by uid 1000 refuses uid 0 too (root can read the memory anyway;
//! the check is about what the creator meant).

use shmcast_core::Role;

/// Who created the channel and what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
}

impl Policy {
    /// Whether a peer with `uid`, primary group `gid` and supplementary
    /// `groups` may attach with `role` (the group bits apply when any of
    /// its groups is the channel's, as for a file).
    pub(crate) fn allows(&self, uid: u32, gid: u32, groups: &[u32], role: Role) -> bool {
        let bits = if uid == self.uid {
            (self.mode >> 6) & 7
        } else if gid == self.gid || groups.contains(&self.gid) {
            (self.mode >> 3) & 7
        } else {
            self.mode & 7
        };
        let need = if role.can_recv() { 4 } else { 0 } | if role.can_send() { 2 } else { 0 };
        bits & need == need
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        let p = Policy {
            uid: 1000,
            gid: 100,
            mode: 0o640,
        };
        assert!(p.allows(1000, 100, &[], Role::Both));
        assert!(p.allows(2000, 100, &[], Role::Recv));
        assert!(!p.allows(2000, 100, &[], Role::Send));
        assert!(!p.allows(2000, 200, &[], Role::Recv));
        assert!(
            p.allows(2000, 200, &[300, 100], Role::Recv),
            "a supplementary group"
        );
        assert!(!p.allows(2000, 200, &[300, 400], Role::Recv));
        assert!(!p.allows(0, 0, &[], Role::Recv), "no root override");
        let p = Policy {
            uid: 1000,
            gid: 100,
            mode: 0o622,
        };
        assert!(p.allows(3000, 300, &[], Role::Send));
        assert!(!p.allows(3000, 300, &[], Role::Both));
    }
}
