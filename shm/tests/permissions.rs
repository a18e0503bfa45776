//! Permission bits against the peer's SO_PEERCRED, with real processes of
//! another uid, and the read-only data mapping of receive-only peers.

mod common;

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;

use common::*;
use rustix::fs::OFlags;
use shmcast::{attach, ChannelBuilder, Mode, Role};

const NOBODY: u32 = 65534;

fn as_nobody(args: &[&str], gid: u32) -> (i32, String, String) {
    let mut c = peer(args);
    c.uid(NOBODY).gid(gid);
    run_cmd(c, LIMIT)
}

fn root() -> bool {
    rustix::process::getuid().is_root()
}

#[test]
fn permission_denied_for_another_uid() {
    if !root() {
        eprintln!("skipped: switching to uid {NOBODY} needs root");
        return;
    }
    let name = unique("perm600");
    let _ch = ChannelBuilder::new(&name)
        .permissions(0o600)
        .create()
        .unwrap();
    let (code, _, err) = as_nobody(&["recv", &name, "--count", "1", "--timeout", "5"], NOBODY);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "permission denied: uid 65534 may not attach with role Recv to a channel with mode 600"
        ),
        "{err}"
    );
}

#[test]
fn other_bits_grant_read_but_not_write() {
    if !root() {
        eprintln!("skipped: switching to uid {NOBODY} needs root");
        return;
    }
    let name = unique("perm604");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .permissions(0o604)
        .create()
        .unwrap();
    let mut rx = Running::spawn({
        let mut c = peer(&["recv", &name, "--count", "1", "--timeout", "30"]);
        c.uid(NOBODY).gid(NOBODY);
        c
    });
    assert!(rx.line().starts_with("joined"), "read granted to others");
    ch.sender().unwrap().try_send(&[0u8; 16]).unwrap();
    let (code, out, err) = rx.finish(LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("received 1 "), "{out}");
    let (code, _, err) = as_nobody(&["send", &name, "--count", "1", "--timeout", "5"], NOBODY);
    assert_eq!(code, 1);
    assert!(err.contains("may not attach with role Send"), "{err}");
}

#[test]
fn group_bits_apply_to_the_creators_group() {
    if !root() {
        eprintln!("skipped: switching to uid {NOBODY} needs root");
        return;
    }
    let name = unique("perm620");
    let _ch = ChannelBuilder::new(&name)
        .permissions(0o620)
        .create()
        .unwrap();
    let gid = rustix::process::getgid().as_raw();
    // Same group as the creator: the group bits (write only) apply.
    let (code, out, err) = as_nobody(&["send", &name, "--count", "1", "--timeout", "5"], gid);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = as_nobody(&["recv", &name, "--count", "1", "--timeout", "5"], gid);
    assert_eq!(code, 1);
    assert!(err.contains("may not attach with role Recv"), "{err}");
}

#[test]
fn group_bits_apply_to_a_supplementary_group() {
    if !root() {
        eprintln!("skipped: switching to uid {NOBODY} needs root");
        return;
    }
    let name = unique("perm620s");
    let _ch = ChannelBuilder::new(&name)
        .permissions(0o620)
        .create()
        .unwrap();
    let gid = rustix::process::getgid().as_raw();
    // Primary group nobody's, the creator's group among the supplementary
    // ones (set in the child before it drops root, which std's `uid` would
    // do with the groups cleared).
    let as_member = |args: &[&str], groups: Vec<u32>| {
        let mut c = peer(args);
        run_as(&mut c, NOBODY, NOBODY, groups);
        run_cmd(c, LIMIT)
    };
    let send = ["send", &name, "--count", "1", "--timeout", "5"];
    let (code, out, err) = as_member(&send, vec![NOBODY, gid]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = as_member(&send, vec![NOBODY]);
    assert_eq!(code, 1, "not a member: {err}");
    assert!(err.contains("may not attach with role Send"), "{err}");
}

#[test]
fn receive_only_peer_gets_a_read_only_data_region() {
    let name = unique("rodata");
    let _ch = ChannelBuilder::new(&name)
        .capacity(8)
        .max_message(64)
        .create()
        .unwrap();
    let att = attach(&name, Role::Recv).unwrap();
    let (control, data) = att.fds();
    let fl = rustix::fs::fcntl_getfl(data).unwrap();
    assert_eq!(fl & OFlags::ACCMODE, OFlags::RDONLY, "data fd is O_RDONLY");
    assert_eq!(
        rustix::fs::fcntl_getfl(control).unwrap() & OFlags::ACCMODE,
        OFlags::RDWR
    );
    let file = std::fs::File::from(data.as_fd().try_clone_to_owned().unwrap());
    // SAFETY: the mapping is expected to fail; if it succeeded we never
    // touch it before dropping it.
    let writable = unsafe { memmap2::MmapOptions::new().map_mut(&file) };
    let err = writable.expect_err("the kernel must refuse a writable shared mapping");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ACCESS.raw_os_error())
    );
    // A sender gets a writable one.
    let att = attach(&name, Role::Send).unwrap();
    let fl = rustix::fs::fcntl_getfl(att.fds().1).unwrap();
    assert_eq!(fl & OFlags::ACCMODE, OFlags::RDWR);
}
