//! Channels between real processes: the test process creates (or a spawned
//! `shmcast-peer serve` creates), spawned `shmcast-peer` processes attach by
//! name and send / receive. Tests named `rfc_*` are the cross-process
//! counterparts of the io_uring IPC RFC's self-tests.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use shmcast::{
    attach, AttachError, ChannelBuilder, CreateError, Mode, OpenError, Role, TryRecvError,
    TrySendError,
};

fn recv_args<'a>(name: &'a str, count: &'a str) -> Vec<&'a str> {
    vec!["recv", name, "--count", count, "--timeout", "30"]
}

#[test]
fn rfc_cross_process_send_recv() {
    // Unicast: a sender process and a receiver process, neither forked
    // from the other, both attached by name to a channel this process serves.
    let name = unique("unicast");
    let _ch = ChannelBuilder::new(&name)
        .capacity(64)
        .max_message(256)
        .create()
        .unwrap();
    let mut rx = Running::spawn(peer(&recv_args(&name, "20000")));
    assert!(rx.line().starts_with("joined"));
    let (code, out, err) = run(&["send", &name, "--count", "20000", "--size", "200"], LIMIT);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = rx.finish(LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("received 20000 bytes 4000000 truncated 0"),
        "{out}"
    );
}

#[test]
fn rfc_non_broadcast_send_recv() {
    // Attach by name from an unrelated process: the creator is a spawned
    // `serve` process too, so this test process is just another peer.
    let name = unique("served");
    let mut server = Running::spawn({
        let mut c = peer(&["serve", &name, "--mode", "unicast", "--capacity", "16"]);
        c.stdin(std::process::Stdio::piped());
        c
    });
    assert_eq!(server.line(), "ready");
    let tx = attach(&name, Role::Send).unwrap().sender().unwrap();
    let att = attach(&name, Role::Recv).unwrap();
    assert_eq!(att.creator_uid(), rustix::process::getuid().as_raw());
    let rx = att.receiver().unwrap();
    tx.try_send(b"hello across processes").unwrap();
    let mut buf = [0u8; 64];
    let info = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..info.len], b"hello across processes");
    drop(server.child.stdin.take());
    let (code, _, err) = server.finish(LIMIT);
    assert_eq!(code, 0, "{err}");
    // The creator exited: attached handles still work...
    tx.try_send(b"still here").unwrap();
    let n = rx.try_recv(&mut buf).unwrap().len;
    assert_eq!(&buf[..n], b"still here");
    // ...and new attaches fail cleanly, not with a hang.
    assert!(matches!(
        attach(&name, Role::Recv),
        Err(AttachError::NotFound { .. })
    ));
}

#[test]
fn rfc_broadcast_two_receivers() {
    broadcast_to(2, 10_000);
}

#[test]
fn broadcast_to_four_receiver_processes() {
    broadcast_to(4, 20_000);
}

fn broadcast_to(receivers: usize, count: u64) {
    let name = unique("bcast");
    let _ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(128)
        .max_message(64)
        .create()
        .unwrap();
    let count_s = count.to_string();
    let mut rxs: Vec<_> = (0..receivers)
        .map(|_| Running::spawn(peer(&recv_args(&name, &count_s))))
        .collect();
    for r in &mut rxs {
        assert!(r.line().starts_with("joined"));
    }
    let (code, out, err) = run(
        &[
            "send", &name, "--count", &count_s, "--size", "64", "--batch", "8",
        ],
        LIMIT,
    );
    assert_eq!(code, 0, "{out}{err}");
    for r in rxs {
        let (code, out, err) = r.finish(LIMIT);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!("received {count} ")), "{out}");
        assert!(out.contains("lagged 0"), "{out}");
    }
}

#[test]
fn multicast_to_four_competing_receiver_processes() {
    let name = unique("mcast");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Multicast)
        .capacity(64)
        .max_message(64)
        .create()
        .unwrap();
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let outs: Vec<_> = (0..4).map(|i| dir.join(format!("r{i}.txt"))).collect();
    let mut rxs: Vec<_> = outs
        .iter()
        .map(|o| {
            Running::spawn(peer(&[
                "recv",
                &name,
                "--until-closed",
                "--timeout",
                "60",
                "--out",
                o.to_str().unwrap(),
            ]))
        })
        .collect();
    for r in &mut rxs {
        assert!(r.line().starts_with("joined"));
    }
    let senders: Vec<_> = [("1", "1"), ("2", "4")]
        .iter()
        .map(|(tag, batch)| {
            Running::spawn(peer(&[
                "send", &name, "--count", "15000", "--tag", tag, "--batch", batch, "--size", "32",
            ]))
        })
        .collect();
    for s in senders {
        let (code, out, err) = s.finish(LIMIT);
        assert_eq!(code, 0, "{out}{err}");
    }
    ch.destroy(); // receivers drain, then see Closed and exit
    for r in rxs {
        let (code, out, err) = r.finish(LIMIT);
        assert_eq!(code, 0, "{out}{err}");
    }
    let mut seen: HashMap<(u32, u64), u32> = HashMap::new();
    let mut per_receiver = Vec::new();
    for o in &outs {
        let text = std::fs::read_to_string(o).unwrap();
        per_receiver.push(text.lines().count());
        for line in text.lines() {
            let mut it = line.split(' ');
            let tag: u32 = it.next().unwrap().parse().unwrap();
            let seq: u64 = it.next().unwrap().parse().unwrap();
            *seen.entry((tag, seq)).or_default() += 1;
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(seen.len(), 30_000, "every message delivered");
    assert!(seen.values().all(|&n| n == 1), "each message exactly once");
    for tag in [1, 2] {
        for seq in 0..15_000 {
            assert_eq!(seen.get(&(tag, seq)), Some(&1), "tag {tag} seq {seq}");
        }
    }
    assert_eq!(
        per_receiver.iter().sum::<usize>(),
        30_000,
        "{per_receiver:?}"
    );
}

#[test]
fn rfc_multicast_round_robin() {
    // Two receiver processes, two messages: two different receivers get
    // two different messages (each takes one and stops).
    let name = unique("rr");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Multicast)
        .capacity(8)
        .max_message(64)
        .create()
        .unwrap();
    let mut a = Running::spawn(peer(&recv_args(&name, "1")));
    let mut b = Running::spawn(peer(&recv_args(&name, "1")));
    assert!(a.line().starts_with("joined"));
    assert!(b.line().starts_with("joined"));
    let tx = ch.sender().unwrap();
    tx.try_send(&[1u8; 16]).unwrap();
    tx.try_send(&[2u8; 16]).unwrap();
    let (ca, oa, _) = a.finish(LIMIT);
    let (cb, ob, _) = b.finish(LIMIT);
    assert_eq!((ca, cb), (0, 0));
    assert!(
        oa.contains("received 1 ") && ob.contains("received 1 "),
        "{oa} / {ob}"
    );
    let rx = ch.receiver().unwrap();
    assert_eq!(
        rx.try_recv(&mut [0u8; 16]),
        Err(TryRecvError::Empty),
        "both consumed, once each"
    );
}

#[test]
fn rfc_ring_full() {
    let name = unique("full");
    let ch = ChannelBuilder::new(&name)
        .capacity(4)
        .max_message(64)
        .create()
        .unwrap();
    let _rx = ch.receiver().unwrap();
    let (code, out, err) = run(&["send", &name, "--count", "4"], LIMIT);
    assert_eq!(code, 0, "{out}{err}");
    // The other process filled it: we see Full.
    let tx = attach(&name, Role::Send).unwrap().sender().unwrap();
    assert_eq!(tx.try_send(b"x"), Err(TrySendError::Full));
    // A sender process that cannot get room times out with a clear message.
    let (code, _, err) = run(&["send", &name, "--count", "1", "--timeout", "1"], LIMIT);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ring full"), "{err}");
}

#[test]
fn rfc_message_too_large() {
    let name = unique("large");
    let _ch = ChannelBuilder::new(&name)
        .capacity(4)
        .max_message(64)
        .create()
        .unwrap();
    let (code, _, err) = run(&["send", &name, "--count", "1", "--size", "65"], LIMIT);
    assert_eq!(code, 1);
    assert!(
        err.contains("message of 65 B is larger than the ring's maximum of 64 B"),
        "{err}"
    );
}

#[test]
fn rfc_multiple_messages_in_order_then_empty() {
    let name = unique("order");
    let ch = ChannelBuilder::new(&name)
        .capacity(64)
        .max_message(64)
        .create()
        .unwrap();
    let rx = ch.receiver().unwrap();
    let (code, _, err) = run(&["send", &name, "--count", "50", "--tag", "9"], LIMIT);
    assert_eq!(code, 0, "{err}");
    let mut buf = [0u8; 64];
    for i in 0..50u64 {
        let info = rx.try_recv(&mut buf).unwrap();
        assert_eq!(u64::from_le_bytes(buf[8..16].try_into().unwrap()), i);
        assert_eq!(info.tag, i, "the envelope tag travels too");
    }
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
}

#[test]
fn rfc_receive_truncation() {
    let name = unique("trunc");
    let _ch = ChannelBuilder::new(&name)
        .capacity(8)
        .max_message(256)
        .create()
        .unwrap();
    let mut rx = Running::spawn(peer(&[
        "recv",
        &name,
        "--count",
        "3",
        "--buf",
        "20",
        "--timeout",
        "30",
    ]));
    assert!(rx.line().starts_with("joined"));
    let (code, _, err) = run(&["send", &name, "--count", "3", "--size", "100"], LIMIT);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = rx.finish(LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("received 3 bytes 60 truncated 3"), "{out}");
}

#[test]
fn rfc_broadcast_slot_reuse() {
    let name = unique("reuse");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(2)
        .max_message(64)
        .create()
        .unwrap();
    let slow = ch.receiver().unwrap();
    // A receiver process reads both messages...
    let mut fast = Running::spawn(peer(&recv_args(&name, "2")));
    assert!(fast.line().starts_with("joined"));
    let tx = ch.sender().unwrap();
    tx.try_send(b"1").unwrap();
    tx.try_send(b"2").unwrap();
    let (code, out, _) = fast.finish(LIMIT);
    assert_eq!(code, 0);
    assert!(out.contains("received 2 "), "{out}");
    // ...but the ring stays full until the slow one has read too.
    assert_eq!(tx.try_send(b"3"), Err(TrySendError::Full));
    slow.try_recv(&mut [0u8; 8]).unwrap();
    tx.try_send(b"3").unwrap();
}

#[test]
fn rfc_targeted_unicast_delivery() {
    let name = unique("target");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let other = ch.receiver().unwrap();
    let mut target = Running::spawn(peer(&recv_args(&name, "1")));
    let id = target
        .line()
        .strip_prefix("joined ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let (code, _, err) = run(&["send", &name, "--count", "1", "--target", &id], LIMIT);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = target.finish(LIMIT);
    assert_eq!(code, 0);
    assert!(out.contains("received 1 "), "{out}");
    assert_eq!(
        other.try_recv(&mut [0u8; 64]),
        Err(TryRecvError::Empty),
        "not for us"
    );
}

#[test]
fn rfc_targeted_unicast_missing_subscriber() {
    let name = unique("missing");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(16)
        .max_message(64)
        .create()
        .unwrap();
    let _rx = ch.receiver().unwrap();
    let (code, _, err) = run(&["send", &name, "--count", "1", "--target", "42"], LIMIT);
    assert_eq!(code, 1);
    assert!(
        err.contains("subscriber 42 is not an attached receiver"),
        "{err}"
    );
}

#[test]
fn rfc_detach() {
    let name = unique("detach");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(2)
        .max_message(64)
        .create()
        .unwrap();
    let tx = ch.sender().unwrap();
    // A receiver process joins, reads one message and exits (detaches)
    // while one more is unread: its head must stop holding the ring.
    let mut r = Running::spawn(peer(&recv_args(&name, "1")));
    let id: u32 = r
        .line()
        .strip_prefix("joined ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    tx.try_send(&[0u8; 16]).unwrap();
    tx.try_send(&[1u8; 16]).unwrap();
    assert_eq!(r.finish(LIMIT).0, 0);
    assert!(
        !ch.raw_ring().is_receiver(shmcast::SubscriberId(id)),
        "entry freed"
    );
    tx.try_send(&[2u8; 16]).unwrap();
    tx.try_send(&[3u8; 16]).unwrap();
}

#[test]
fn rfc_recv_only_cannot_send_and_send_only_cannot_recv() {
    let name = unique("roles");
    let _ch = ChannelBuilder::new(&name)
        .capacity(4)
        .max_message(64)
        .create()
        .unwrap();
    let r = attach(&name, Role::Recv).unwrap();
    assert_eq!(
        r.sender().unwrap_err(),
        OpenError::RoleNotGranted {
            granted: Role::Recv
        }
    );
    // Even around the role check, the ring refuses a producer: the data
    // region is mapped read-only in a receive-only attachment.
    assert_eq!(
        r.raw_ring().producer().unwrap_err(),
        shmcast::JoinError::ReadOnly
    );
    let s = attach(&name, Role::Send).unwrap();
    assert_eq!(
        s.receiver().unwrap_err(),
        OpenError::RoleNotGranted {
            granted: Role::Send
        }
    );
    let both = attach(&name, Role::Both).unwrap();
    let (tx, rx) = (both.sender().unwrap(), both.receiver().unwrap());
    tx.try_send(b"self").unwrap();
    assert_eq!(rx.try_recv(&mut [0u8; 8]).unwrap().len, 4);
}

#[test]
fn rfc_invalid_parameters() {
    let bad = |b: ChannelBuilder| b.create().unwrap_err();
    let n = unique("inval");
    assert!(matches!(
        bad(ChannelBuilder::new(&n).capacity(3)),
        CreateError::Config(_)
    ));
    assert!(matches!(
        bad(ChannelBuilder::new(&n).capacity(0)),
        CreateError::Config(_)
    ));
    assert!(matches!(
        bad(ChannelBuilder::new(&n).max_message(0)),
        CreateError::Config(_)
    ));
    assert!(matches!(
        bad(ChannelBuilder::new("../x")),
        CreateError::InvalidName(_)
    ));
    assert!(matches!(
        bad(ChannelBuilder::new("")),
        CreateError::InvalidName(_)
    ));
    let e = bad(ChannelBuilder::new(&n).capacity(3));
    assert_eq!(
        e.to_string(),
        "invalid channel configuration: ring capacity must be a power of two, got 3"
    );
    // A second channel under a live name is refused.
    let _live = ChannelBuilder::new(&n).create().unwrap();
    assert!(matches!(
        bad(ChannelBuilder::new(&n)),
        CreateError::NameInUse { .. }
    ));
    assert!(matches!(
        attach("no/such", Role::Recv),
        Err(AttachError::InvalidName(_))
    ));
}

/// The longest name the docs allow works end to end (its socket address
/// fits), and one byte more is `InvalidName(TooLong)` on both sides.
#[test]
fn longest_name() {
    let base = unique("long");
    let long = format!(
        "{base}{}",
        "x".repeat(shmcast::name::MAX_NAME_LEN - base.len())
    );
    assert_eq!(long.len(), shmcast::name::MAX_NAME_LEN);
    let ch = ChannelBuilder::new(&long).create().unwrap();
    let tx = ch.sender().unwrap();
    let rx = attach(&long, Role::Recv).unwrap().receiver().unwrap();
    tx.try_send(b"far").unwrap();
    let mut buf = [0u8; 8];
    let m = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..m.len], b"far");
    let longer = format!("{long}y");
    let e = ChannelBuilder::new(&longer).create().unwrap_err();
    assert!(
        matches!(e, CreateError::InvalidName(shmcast::name::NameError::TooLong { len }) if len == longer.len()),
        "{e}"
    );
    assert!(matches!(
        attach(&longer, Role::Recv),
        Err(AttachError::InvalidName(
            shmcast::name::NameError::TooLong { .. }
        ))
    ));
}

#[test]
fn rfc_channel_destroy() {
    let name = unique("destroy");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(8)
        .max_message(64)
        .create()
        .unwrap();
    let mut r = Running::spawn(peer(&["recv", &name, "--until-closed", "--timeout", "30"]));
    assert!(r.line().starts_with("joined"));
    let tx = ch.sender().unwrap();
    tx.try_send(&[7u8; 16]).unwrap();
    ch.destroy();
    // The receiver process drains what was sent, then sees Closed.
    let (code, out, err) = r.finish(LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("received 1 "), "{out}");
    assert_eq!(tx.try_send(b"late"), Err(TrySendError::Closed));
    // The name is free: attaching finds nothing; it can be created anew.
    assert!(matches!(
        attach(&name, Role::Recv),
        Err(AttachError::NotFound { .. })
    ));
    let again = ChannelBuilder::new(&name).create().unwrap();
    drop(again);
}

#[test]
fn creator_exit_leaves_peers_working() {
    let name = unique("exit");
    let mut server = Running::spawn(peer(&[
        "serve",
        &name,
        "--mode",
        "multicast",
        "--capacity",
        "8",
        "--for",
        "1",
    ]));
    assert_eq!(server.line(), "ready");
    let tx = attach(&name, Role::Send).unwrap().sender().unwrap();
    let rx = attach(&name, Role::Recv).unwrap().receiver().unwrap();
    let (code, _, _) = server.finish(Duration::from_secs(30));
    assert_eq!(code, 0);
    tx.try_send(b"after the creator").unwrap();
    let mut buf = [0u8; 32];
    let n = rx.try_recv(&mut buf).unwrap().len;
    assert_eq!(&buf[..n], b"after the creator");
    assert!(matches!(
        attach(&name, Role::Send),
        Err(AttachError::NotFound { .. })
    ));
}

#[test]
fn bring_your_own_transport_export_import() {
    // The fds travel over a socket of the user's own (here a socketpair);
    // the importer validates them exactly as an attach would.
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    use std::os::fd::AsFd;
    let name = unique("byo");
    let ch = ChannelBuilder::new(&name)
        .mode(Mode::Broadcast)
        .capacity(8)
        .max_message(64)
        .create()
        .unwrap();
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    for role in [Role::Send, Role::Recv] {
        let e = ch.export(role).unwrap();
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut ctl = rustix::net::SendAncillaryBuffer::new(&mut space);
        let fds = [e.control.as_fd(), e.data.as_fd()];
        assert!(ctl.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &a,
            &[std::io::IoSlice::new(&e.descriptor)],
            &mut ctl,
            rustix::net::SendFlags::empty(),
        )
        .unwrap();
    }
    let recv_one = || {
        let mut buf = [0u8; 64];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut ctl = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let msg = rustix::net::recvmsg(
            &b,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut ctl,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fds: Vec<std::os::fd::OwnedFd> = Vec::new();
        for m in ctl.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(it) = m {
                fds.extend(it);
            }
        }
        let data = fds.pop().unwrap();
        let control = fds.pop().unwrap();
        shmcast::import(&buf[..msg.bytes], control, data).unwrap()
    };
    let sender_side = recv_one();
    let receiver_side = recv_one();
    assert_eq!(sender_side.role(), Role::Send);
    assert_eq!(receiver_side.role(), Role::Recv);
    let rx = receiver_side.receiver().unwrap();
    let tx = sender_side.sender().unwrap();
    tx.send(b"by hand").unwrap();
    let mut buf = [0u8; 64];
    let n = rx
        .recv_timeout(&mut buf, Duration::from_secs(5))
        .unwrap()
        .len;
    assert_eq!(&buf[..n], b"by hand");
    // The receive-only import got a read-only data region.
    assert_eq!(
        receiver_side.sender().unwrap_err(),
        OpenError::RoleNotGranted {
            granted: Role::Recv
        }
    );
    assert_eq!(
        receiver_side.raw_ring().producer().unwrap_err(),
        shmcast::JoinError::ReadOnly
    );
}

/// `shmcast-peer`'s arguments: `--perm` is octal with or without a leading
/// zero (`640` once meant decimal 640, i.e. mode 0o1200 & 0o777 = 0o200),
/// an option the command does not take is refused instead of ignored, and
/// a `--size` below the 16-byte tag-and-sequence header is an error, not
/// silently raised.
#[test]
fn peer_cli_arguments() {
    let name = unique("cli");
    let mut server = Running::spawn({
        let mut c = peer(&["serve", &name, "--perm", "640", "--max-message", "8"]);
        c.stdin(std::process::Stdio::piped());
        c
    });
    assert_eq!(server.line(), "ready");
    let (code, out, err) = run(&["info", &name], LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("permissions   0640"), "{out}");
    let att = attach(&name, Role::Recv).unwrap();
    assert_eq!(att.ring().permissions(), 0o640);

    let (code, _, err) = run(&["send", &name, "--cuont", "5"], LIMIT);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("send has no option --cuont"), "{err}");
    let (code, _, err) = run(&["send", &name, "--size", "8"], LIMIT);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--size 8: messages carry a tag"), "{err}");
    let (code, _, err) = run(&["recv", &name, "--buf", "99999999999999"], LIMIT);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--buf 99999999999999: at most"), "{err}");
    let (code, out, err) = run(&["frobnicate", &name], LIMIT);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("unknown command \"frobnicate\"") && err.contains("usage:"),
        "{out}{err}"
    );
    drop(server.child.stdin.take());
    let (code, _, err) = server.finish(LIMIT);
    assert_eq!(code, 0, "{err}");
}

/// A `SHMCAST_NOTIFY` value that names no backend is reported as such (it
/// once read "notify backend futex is not usable here"), and the receiver
/// falls back to futex; a known one is used.
#[test]
fn notify_env_variable() {
    let name = unique("env");
    let _ch = ChannelBuilder::new(&name).create().unwrap();
    let mut cmd = peer(&["recv", &name, "--count", "0"]);
    cmd.env("SHMCAST_NOTIFY", "bogus");
    let (code, out, err) = run_cmd(cmd, LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("backend futex"), "{out}");
    assert!(
        err.contains("SHMCAST_NOTIFY=\"bogus\" names no notify backend (use futex, uring-futex, msg-ring or eventfd); using futex"),
        "{err}"
    );
    let mut cmd = peer(&["recv", &name, "--count", "0"]);
    cmd.env("SHMCAST_NOTIFY", "msg-ring");
    let (code, out, err) = run_cmd(cmd, LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("backend msg-ring") && err.is_empty(),
        "{out}{err}"
    );
}

/// A channel whose messages are larger than the default accepted cap
/// (1 MiB) is refused by `import` as by `attach`, and imported with
/// `import_with` and a cap that covers it.
#[test]
fn import_with_a_message_cap() {
    let name = unique("bigimport");
    let ch = ChannelBuilder::new(&name)
        .capacity(2)
        .message_cap(4 << 20)
        .max_message(2 << 20)
        .create()
        .unwrap();
    let e = ch.export(Role::Recv).unwrap();
    let err = shmcast::import(&e.descriptor, e.control, e.data).unwrap_err();
    assert!(
        err.to_string()
            .contains("above the accepted cap of 1048576 B"),
        "{err}"
    );
    let e = ch.export(Role::Recv).unwrap();
    let opts = shmcast::AttachOptions {
        message_cap: 4 << 20,
        backend: Some(shmcast::BackendKind::Eventfd),
        ..Default::default()
    };
    let att = shmcast::import_with(&e.descriptor, e.control, e.data, &opts).unwrap();
    assert_eq!(att.ring().geometry().max_message(), 2 << 20);
    // The backend option carries over (eventfd is refused: the channel has
    // no eventfds, so the receiver says why it fell back).
    let rx = att.receiver().unwrap();
    let why = rx
        .backend_fallback()
        .expect("eventfd asked for")
        .to_string();
    assert!(
        why.contains("notify backend eventfd is not usable here"),
        "{why}"
    );
    let tx = ch.sender().unwrap();
    let big = vec![7u8; 2 << 20];
    tx.try_send(&big).unwrap();
    let mut buf = vec![0u8; 2 << 20];
    assert_eq!(rx.try_recv(&mut buf).unwrap().len, 2 << 20);
    assert!(buf == big);
}
