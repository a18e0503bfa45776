//! Whatever a peer hands us or writes into the control region, attach and
//! the ring answer with a typed error or a clamped result: never a panic, an
//! out-of-bounds access or an unbounded wait.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use common::*;
use rustix::fs::{memfd_create, MemfdFlags, SealFlags};
use rustix::net::{accept_with, bind, listen, socket_with, AddressFamily, SocketFlags, SocketType};
use shmcast::handshake::{HandshakeError, Message};
use shmcast::{
    attach, attach_with, import, AttachError, AttachOptions, ChannelBuilder, Mode, Region, Role,
    TryRecvError,
};
use shmcast_core::layout::{HeaderWords, LAYOUT_VERSION};
use shmcast_core::LayoutError;

/// A memfd holding `bytes` padded to `size`, with `seals`.
fn memfd(bytes: &[u8], size: u64, seals: SealFlags) -> OwnedFd {
    let fd = memfd_create("hostile", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    let mut f = std::fs::File::from(fd.try_clone().unwrap());
    f.write_all(bytes).unwrap();
    rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    fd
}

const SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// A real channel's recv export, whose control region we can copy and bend.
struct Real {
    _ch: shmcast::Channel,
    descriptor: Vec<u8>,
    words: HeaderWords,
    control_len: u64,
    data: OwnedFd,
}

fn real() -> Real {
    let ch = ChannelBuilder::new(unique("real"))
        .capacity(4)
        .max_message(64)
        .create()
        .unwrap();
    let e = ch.export(Role::Recv).unwrap();
    let words = ch.raw_ring().header_words();
    let control_len = rustix::fs::fstat(&e.control).unwrap().st_size as u64;
    Real {
        _ch: ch,
        descriptor: e.descriptor,
        words,
        control_len,
        data: e.data,
    }
}

fn import_control(r: &Real, control: OwnedFd) -> AttachError {
    import(&r.descriptor, control, r.data.try_clone().unwrap()).unwrap_err()
}

#[test]
fn not_a_memfd() {
    let r = real();
    let file = tempfile_fd();
    assert!(matches!(
        import_control(&r, file),
        AttachError::NotAMemfd {
            region: Region::Control
        }
    ));
}

fn tempfile_fd() -> OwnedFd {
    let path = std::env::temp_dir().join(unique("regular"));
    let f = std::fs::File::create(&path).unwrap();
    std::fs::remove_file(&path).ok();
    f.into()
}

#[test]
fn missing_seals() {
    let r = real();
    let bytes = r.words.to_bytes();
    let e = import_control(&r, memfd(&bytes, r.control_len, SealFlags::empty()));
    assert!(
        matches!(
            e,
            AttachError::MissingSeals {
                region: Region::Control,
                missing: 0x7
            }
        ),
        "{e:?}"
    );
    let e = import_control(
        &r,
        memfd(&bytes, r.control_len, SealFlags::SHRINK | SealFlags::GROW),
    );
    assert!(
        matches!(e, AttachError::MissingSeals { missing: 0x1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("lacks required seals"));
}

#[test]
fn write_sealed_region() {
    let r = real();
    let e = import_control(
        &r,
        memfd(&r.words.to_bytes(), r.control_len, SEALS | SealFlags::WRITE),
    );
    assert!(
        matches!(
            e,
            AttachError::UnexpectedSeals {
                region: Region::Control,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn foreign_memfd_wrong_magic() {
    let r = real();
    let e = import_control(&r, memfd(&[0u8; 64], r.control_len, SEALS));
    assert!(
        matches!(e, AttachError::Layout(LayoutError::BadMagic { found: 0 })),
        "{e:?}"
    );
    let e = import_control(&r, memfd(b"\x7fELF\x02\x01\x01", r.control_len, SEALS));
    assert!(
        matches!(e, AttachError::Layout(LayoutError::BadMagic { .. })),
        "{e:?}"
    );
}

#[test]
fn wrong_version() {
    let r = real();
    let w = HeaderWords {
        version: LAYOUT_VERSION + 1,
        ..r.words
    };
    let e = import_control(&r, memfd(&w.to_bytes(), r.control_len, SEALS));
    assert!(
        matches!(e, AttachError::Layout(LayoutError::VersionMismatch { theirs, .. }) if theirs == LAYOUT_VERSION + 1),
        "{e:?}"
    );
}

#[test]
fn truncated_regions() {
    let r = real();
    let e = import_control(&r, memfd(&r.words.to_bytes(), r.control_len - 128, SEALS));
    assert!(
        matches!(
            e,
            AttachError::Layout(LayoutError::ControlSizeMismatch { .. })
        ),
        "{e:?}"
    );
    let e = import_control(&r, memfd(&r.words.to_bytes()[..56], 100, SEALS));
    assert!(
        matches!(
            e,
            AttachError::RegionTooSmall {
                region: Region::Control,
                size: 100
            }
        ),
        "{e:?}"
    );
    // A truncated data region.
    let control = memfd(&r.words.to_bytes(), r.control_len, SEALS);
    let e = import(&r.descriptor, control, memfd(&[], 4096, SEALS)).unwrap_err();
    assert!(
        matches!(
            e,
            AttachError::Layout(LayoutError::DataSizeMismatch { actual: 4096, .. })
        ),
        "{e:?}"
    );
}

#[test]
fn a_huge_sparse_control_region_is_a_size_mismatch() {
    // 2^60 bytes (sealed, sparse, costs nothing): more than any address
    // space, so it must be turned down before anything maps it.
    let r = real();
    let e = import_control(&r, memfd(&r.words.to_bytes(), 1 << 60, SEALS));
    assert!(
        matches!(
            e,
            AttachError::Layout(LayoutError::ControlSizeMismatch {
                actual: 0x1000_0000_0000_0000,
                ..
            })
        ),
        "{e:?}"
    );
}

#[test]
fn garbage_descriptor() {
    let r = real();
    let c = || memfd(&r.words.to_bytes(), r.control_len, SEALS);
    let d = || r.data.try_clone().unwrap();
    // The descriptor came from the user, not from a server: the error
    // says so.
    let e = import(b"hello", c(), d()).unwrap_err();
    assert!(
        matches!(
            e,
            AttachError::BadDescriptor(HandshakeError::TooShort { len: 5, .. })
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("the descriptor is not one Channel::export made: "),
        "{e}"
    );
    assert!(matches!(
        import(b"", c(), d()),
        Err(AttachError::BadDescriptor(HandshakeError::TooShort {
            len: 0,
            ..
        }))
    ));
    assert!(matches!(
        import(b"definitely not a descriptor at all, no", c(), d()),
        Err(AttachError::BadDescriptor(HandshakeError::BadMagic))
    ));
    // A Hello where a Welcome belongs.
    let hello = Message::Hello { role: Role::Recv }.encode();
    assert!(matches!(
        import(&hello, c(), d()),
        Err(AttachError::BadDescriptor(HandshakeError::Unexpected))
    ));
    // A Welcome that lies about the mode.
    let Message::Welcome {
        role,
        control_size,
        data_size,
        creator_uid,
        ..
    } = Message::decode(&r.descriptor).unwrap()
    else {
        unreachable!()
    };
    let lie = Message::Welcome {
        role,
        mode: Mode::Broadcast,
        control_size,
        data_size,
        creator_uid,
        eventfds: 0,
    }
    .encode();
    assert!(matches!(
        import(&lie, c(), d()),
        Err(AttachError::DescriptorMismatch { what: "mode" })
    ));
}

/// A fake server under `name` that answers the first client with `reply`
/// (bytes and fds), or stays silent if `reply` is None.
fn fake_server(name: &str, reply: Option<(Vec<u8>, Vec<OwnedFd>)>) -> std::thread::JoinHandle<()> {
    let sock = squat(name, 1);
    std::thread::spawn(move || {
        let conn = accept_with(&sock, SocketFlags::CLOEXEC).unwrap();
        let mut buf = [0u8; 64];
        let _ = rustix::net::recv(&conn, &mut buf, rustix::net::RecvFlags::empty());
        match reply {
            Some((bytes, fds)) => {
                let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
                let mut space =
                    [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
                let mut ctl = rustix::net::SendAncillaryBuffer::new(&mut space);
                if !borrowed.is_empty() {
                    assert!(ctl.push(rustix::net::SendAncillaryMessage::ScmRights(&borrowed)));
                }
                rustix::net::sendmsg(
                    &conn,
                    &[std::io::IoSlice::new(&bytes)],
                    &mut ctl,
                    rustix::net::SendFlags::empty(),
                )
                .unwrap();
                // Our copies go now: the client's are then the last ones.
                drop(borrowed);
                drop(fds);
                std::thread::sleep(Duration::from_millis(200));
            }
            None => std::thread::sleep(Duration::from_millis(1500)),
        }
    })
}

#[test]
fn garbage_handshake_from_server() {
    let name = unique("fake1");
    let t = fake_server(&name, Some((b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), vec![])));
    assert!(matches!(
        attach(&name, Role::Recv),
        Err(AttachError::Handshake(HandshakeError::BadMagic))
    ));
    t.join().unwrap();
}

#[test]
fn short_handshake_from_server() {
    let name = unique("fake2");
    let t = fake_server(&name, Some((b"shmc".to_vec(), vec![])));
    assert!(matches!(
        attach(&name, Role::Recv),
        Err(AttachError::Handshake(HandshakeError::TooShort {
            len: 4,
            ..
        }))
    ));
    t.join().unwrap();
}

#[test]
fn welcome_with_wrong_fd_count() {
    let r = real();
    let name = unique("fake3");
    let t = fake_server(
        &name,
        Some((r.descriptor.clone(), vec![r.data.try_clone().unwrap()])),
    );
    assert!(matches!(
        attach(&name, Role::Recv),
        Err(AttachError::WrongFdCount { got: 1 })
    ));
    t.join().unwrap();
}

#[test]
fn welcome_with_unsealed_fds() {
    let r = real();
    let name = unique("fake4");
    let fds = vec![
        memfd(&r.words.to_bytes(), r.control_len, SealFlags::empty()),
        r.data.try_clone().unwrap(),
    ];
    let t = fake_server(&name, Some((r.descriptor.clone(), fds)));
    assert!(matches!(
        attach(&name, Role::Recv),
        Err(AttachError::MissingSeals { .. })
    ));
    t.join().unwrap();
}

#[test]
fn silent_server_times_out() {
    let name = unique("fake5");
    let t = fake_server(&name, None);
    let opts = AttachOptions {
        timeout: Duration::from_millis(200),
        ..AttachOptions::default()
    };
    assert!(matches!(
        attach_with(&name, Role::Recv, &opts),
        Err(AttachError::Timeout)
    ));
    t.join().unwrap();
}

extern "C" fn ignore_signal(_: libc::c_int) {}

#[test]
fn a_silent_server_times_out_under_a_stream_of_signals() {
    // SIGUSR1 with a handler and without SA_RESTART: every wait of the
    // attach returns EINTR, 20 times a second, and is asked again. Each
    // retry must wait only for what is left of the attach's time.
    // SAFETY: a handler that does nothing is async-signal-safe; the
    // sigaction struct is zeroed and then filled as the C API expects.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let name = unique("fake-eintr");
    let t = fake_server(&name, None);
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let signaller = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: `me` is the test thread, alive until it joins us.
            unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
        }
    });
    let opts = AttachOptions {
        timeout: Duration::from_millis(300),
        ..AttachOptions::default()
    };
    let t0 = std::time::Instant::now();
    let r = attach_with(&name, Role::Recv, &opts);
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    signaller.join().unwrap();
    assert!(matches!(r, Err(AttachError::Timeout)), "{r:?}");
    assert!(took < Duration::from_millis(1200), "attach took {took:?}");
    t.join().unwrap();
}

/// Relaxed atomic stores of pseudo-random words over the whole control
/// region and the slot headers, as a hostile peer with write access would.
fn scribble(ch: &shmcast::Channel, seed: u64, rounds: usize) {
    use shmcast_core::atomic::AtomicU64;
    use std::sync::atomic::Ordering::Relaxed;
    let e = ch.export(Role::Send).unwrap();
    let len = rustix::fs::fstat(&e.control).unwrap().st_size as usize;
    let file = std::fs::File::from(e.control);
    // A fresh shared mapping of the control memfd, only accessed below
    // through atomic stores (the ring in this process uses atomics too).
    let map = memmap2::MmapOptions::new().len(len).map_raw(&file).unwrap();
    let mut x = seed | 1;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let word = (x as usize % (len / 8)) * 8;
        let value = match x % 4 {
            0 => 0,
            1 => u64::MAX,
            2 => x >> 3,
            _ => x & 0xff,
        };
        // SAFETY: word + 8 <= len and 8-aligned within a page-aligned map.
        unsafe { AtomicU64::from_ptr(map.as_mut_ptr().add(word).cast()) }.store(value, Relaxed);
    }
}

#[test]
fn hostile_writes_to_the_control_region_never_panic_or_hang() {
    for (i, mode) in [Mode::Unicast, Mode::Broadcast, Mode::Multicast]
        .into_iter()
        .enumerate()
    {
        for seed in 0..20u64 {
            let ch = ChannelBuilder::new(unique("scribble"))
                .mode(mode)
                .capacity(8)
                .max_message(64)
                .max_subscribers(8)
                .create()
                .unwrap();
            let mut tx = ch.sender().unwrap();
            let rx = ch.receiver().unwrap();
            for k in 0..6u8 {
                tx.try_send(&[k; 40]).unwrap();
            }
            scribble(&ch, seed * 31 + i as u64, 400);
            let mut buf = [0u8; 64];
            // Every call returns; lengths stay within the buffer and the ring's max.
            for _ in 0..200 {
                let _ = tx.try_send(&[9; 10]);
                let _ = tx.try_send_batch(&[&[1; 3], &[2; 64]]);
                if let Ok(slot) = tx.try_claim() {
                    drop(slot);
                }
                match rx.try_recv(&mut buf) {
                    Ok(info) => {
                        assert!(info.len <= 64 && info.message_len <= 64, "{info:?}");
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed | TryRecvError::Detached) => {}
                    Err(TryRecvError::Lagged(n)) => assert!(n > 0),
                    Err(e) => panic!("unexpected {e:?}"),
                }
                let _ = rx.prepare_wait().map(|_| rx.finish_wait());
                let _ = tx.raw_ring().wake_set(1);
                let _ = ch.raw_ring().close();
            }
            // New joins still answer (maybe with an error).
            let _ = ch.receiver();
            let _ = ch.sender();
        }
    }
}

#[test]
fn the_same_memfd_as_both_regions_is_refused() {
    let r = real();
    let fd = memfd(&r.words.to_bytes(), r.control_len, SEALS);
    let e = import(&r.descriptor, fd.try_clone().unwrap(), fd).unwrap_err();
    assert!(
        matches!(e, AttachError::RegionsAlias | AttachError::Layout(_)),
        "{e:?}"
    );
}

/// A fake server under `name` that answers with `r`'s real regions and a
/// `Welcome` announcing `eventfds`, then hands the connection to `then`.
fn welcome_with_eventfds(
    r: &Real,
    name: &str,
    eventfds: u32,
    then: impl FnOnce(&OwnedFd) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let Message::Welcome {
        role,
        mode,
        control_size,
        data_size,
        creator_uid,
        ..
    } = Message::decode(&r.descriptor).unwrap()
    else {
        unreachable!()
    };
    let welcome = Message::Welcome {
        role,
        mode,
        control_size,
        data_size,
        creator_uid,
        eventfds,
    }
    .encode();
    let sock = squat(name, 1);
    let control = r._ch.export(Role::Recv).unwrap();
    std::thread::spawn(move || {
        let conn = accept_with(&sock, SocketFlags::CLOEXEC).unwrap();
        let mut buf = [0u8; 64];
        let _ = rustix::net::recv(&conn, &mut buf, rustix::net::RecvFlags::empty());
        let fds = [control.control.as_fd(), control.data.as_fd()];
        send_fds(&conn, &welcome, &fds);
        then(&conn);
    })
}

/// One packet with `fds` (errors ignored: the client may be gone).
fn send_fds(conn: &OwnedFd, bytes: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut ctl = rustix::net::SendAncillaryBuffer::new(&mut space);
    assert!(ctl.push(rustix::net::SendAncillaryMessage::ScmRights(fds)));
    let _ = rustix::net::sendmsg(
        conn,
        &[std::io::IoSlice::new(bytes)],
        &mut ctl,
        rustix::net::SendFlags::empty(),
    );
}

#[test]
fn empty_eventfd_packets_do_not_loop_forever() {
    // A server that announces eventfds and then sends empty packets.
    let r = real();
    let name = unique("fake6");
    let t = welcome_with_eventfds(&r, &name, 64, |conn| {
        let empty = Message::Eventfds { first: 0, count: 0 }.encode();
        for _ in 0..10_000 {
            if rustix::net::send(conn, &empty, rustix::net::SendFlags::NOSIGNAL).is_err() {
                break;
            }
        }
    });
    let opts = AttachOptions {
        timeout: Duration::from_millis(500),
        ..AttachOptions::default()
    };
    let e = attach_with(&name, Role::Recv, &opts).unwrap_err();
    assert!(
        matches!(e, AttachError::BadEventfds { .. } | AttachError::Timeout),
        "{e:?}"
    );
    t.join().unwrap();
}

#[test]
fn a_semaphore_eventfd_is_refused() {
    // Read in semaphore mode, a peer's huge count would take 2^64 reads to
    // drain: an eventfd sleeper would spin at full CPU instead of sleeping.
    let r = real();
    let name = unique("fake-sem");
    let entries = r._ch.raw_ring().geometry().max_subscribers() as u32;
    let t = welcome_with_eventfds(&r, &name, entries, |conn| {
        let sem = rustix::event::eventfd(0, rustix::event::EventfdFlags::SEMAPHORE).unwrap();
        let packet = Message::Eventfds { first: 0, count: 1 }.encode();
        send_fds(conn, &packet, &[sem.as_fd()]);
        std::thread::sleep(Duration::from_millis(200));
    });
    let e = attach_with(&name, Role::Recv, &AttachOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            AttachError::BadEventfds {
                what: "an eventfd is in semaphore mode"
            }
        ),
        "{e:?}"
    );
    t.join().unwrap();
}

#[test]
fn a_server_that_never_accepts_times_out() {
    // Squat the name with a listener that never accepts, and fill its
    // backlog: connect itself would block.
    let name = unique("fake7");
    let _sock = squat(&name, 0);
    let addr = channel_addr(&name);
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let c = socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        let _ = rustix::net::connect(&c, &addr);
        fillers.push(c);
    }
    let opts = AttachOptions {
        timeout: Duration::from_millis(300),
        ..AttachOptions::default()
    };
    let t0 = std::time::Instant::now();
    let e = attach_with(&name, Role::Recv, &opts).unwrap_err();
    assert!(matches!(e, AttachError::Timeout), "{e:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "bounded by the attach timeout"
    );
}

#[test]
fn a_lapped_blocking_receiver_hears_lagged() {
    use shmcast::core::Regions;
    use std::sync::atomic::Ordering::SeqCst;
    let ch = ChannelBuilder::new(unique("lag"))
        .mode(Mode::Broadcast)
        .capacity(4)
        .max_message(64)
        .create()
        .unwrap();
    let tx = ch.sender().unwrap();
    let rx = ch.receiver().unwrap();
    for k in 0..3u8 {
        tx.send(&[k]).unwrap();
    }
    // A peer stamps slot 0 with the mark of a later lap (position 4).
    ch.raw_ring().regions().slot(0).seq.store(4 + 1, SeqCst);
    let mut buf = [0u8; 8];
    let r = rx.recv_timeout(&mut buf, Duration::from_secs(5));
    assert!(
        matches!(r, Err(shmcast::RecvError::Lagged(n)) if n >= 1),
        "{r:?}"
    );
    assert!(rx.lagged() >= 1);
}

/// A TCP socket whose last close blocks for `linger`: `SO_LINGER` set and
/// unsent data queued to a peer (the returned stream) that never reads.
fn lingering_socket(linger: Duration) -> (OwnedFd, std::net::TcpStream) {
    // A small receive buffer (set before listen, so the connection's
    // window is small from the start), filled until the window is shut.
    let l = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&l, 4096).unwrap();
    bind(&l, &std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listen(&l, 1).unwrap();
    let l = std::net::TcpListener::from(l);
    let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (deaf, _) = l.accept().unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&s, 4096).unwrap();
    s.set_nonblocking(true).unwrap();
    let chunk = [0u8; 65536];
    let mut w = &s;
    for _ in 0..20 {
        while std::io::Write::write(&mut w, &chunk).is_ok() {}
        std::thread::sleep(Duration::from_millis(10));
    }
    rustix::net::sockopt::set_socket_linger(&s, Some(linger)).unwrap();
    (s.into(), deaf)
}

#[test]
fn the_lingering_socket_does_block_its_last_close() {
    // The premise of the next test: closing it here takes the linger time.
    let (sock, _deaf) = lingering_socket(Duration::from_millis(1500));
    let t0 = std::time::Instant::now();
    drop(sock);
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[test]
fn a_lingering_socket_in_place_of_a_memfd_does_not_hold_up_attach() {
    // Closed here, that socket would block the closing thread for 10 s.
    let (sock, _deaf) = lingering_socket(Duration::from_secs(10));
    let r = real();
    let name = unique("fake-linger");
    let t = fake_server(
        &name,
        Some((
            r.descriptor.clone(),
            vec![sock, r.data.try_clone().unwrap()],
        )),
    );
    let t0 = std::time::Instant::now();
    let e = attach(&name, Role::Recv).unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(
            e,
            AttachError::NotAMemfd {
                region: Region::Control
            }
        ),
        "{e:?}"
    );
    assert!(took < Duration::from_secs(3), "attach took {took:?}");
    t.join().unwrap();
}

#[test]
fn a_lingering_socket_queued_after_the_answer_does_not_hold_up_attach() {
    // A real Welcome announcing eventfds, a bad eventfd packet, and behind
    // it a packet with the socket, which the client never reads: closing
    // its connection releases it. Our copy is gone by then (the client is
    // still checking the regions of the Welcome), so that close is the
    // last one.
    let (lingering, _deaf) = lingering_socket(Duration::from_secs(10));
    let r = real();
    let name = unique("fake-linger2");
    let entries = r._ch.raw_ring().geometry().max_subscribers() as u32;
    let t = welcome_with_eventfds(&r, &name, entries, move |conn| {
        let empty = Message::Eventfds { first: 0, count: 0 }.encode();
        let _ = rustix::net::send(conn, &empty, rustix::net::SendFlags::NOSIGNAL);
        send_fds(conn, b"more", &[lingering.as_fd()]);
        drop(lingering);
        std::thread::sleep(Duration::from_millis(200));
    });
    let t0 = std::time::Instant::now();
    let e = attach(&name, Role::Recv).unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, AttachError::BadEventfds { .. }), "{e:?}");
    assert!(took < Duration::from_secs(3), "attach took {took:?}");
    t.join().unwrap();
}

#[test]
fn a_client_cannot_hand_the_server_fds() {
    let ch = ChannelBuilder::new(unique("passrights"))
        .capacity(4)
        .max_message(64)
        .create()
        .unwrap();
    let sock = connect_to(ch.name());
    let (lingering, _deaf) = lingering_socket(Duration::from_secs(10));
    let hello = Message::Hello { role: Role::Recv }.encode();
    let fds = [lingering.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ctl = rustix::net::SendAncillaryBuffer::new(&mut space);
    assert!(ctl.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
    let sent = rustix::net::sendmsg(
        &sock,
        &[std::io::IoSlice::new(&hello)],
        &mut ctl,
        rustix::net::SendFlags::empty(),
    );
    // Ours is the last copy where the kernel refused it: close it aside.
    std::thread::spawn(move || drop(lingering));
    let (major, minor) = kernel_version();
    if (major, minor) >= (6, 16) {
        // SO_PASSRIGHTS: the kernel refuses the fd.
        assert_eq!(sent, Err(rustix::io::Errno::PERM));
    } else {
        // The fd reaches the server, which must not block closing it.
        assert!(sent.is_ok(), "{sent:?}");
    }
    // Either way the server goes on serving, at once.
    let t0 = std::time::Instant::now();
    let at = attach(ch.name(), Role::Recv).unwrap();
    assert_eq!(at.role(), Role::Recv);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}
