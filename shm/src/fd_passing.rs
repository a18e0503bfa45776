//! Unix-socket plumbing: one packet with fds (`SCM_RIGHTS`), and the peer's
//! credentials (`SO_PEERCRED`).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// Most fds in one packet (the kernel's SCM_MAX_FD is 253).
pub(crate) const MAX_FDS: usize = 253;

/// `sendmsg` one packet carrying `fds`.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::NOBUFS);
    }
    let n = sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if n != bytes.len() {
        return Err(Errno::MSGSIZE);
    }
    Ok(())
}

/// One received packet. Fds still in it when it drops were not wanted,
/// and are closed by [`close_later`].
#[derive(Debug)]
pub(crate) struct Packet {
    /// Bytes of the packet (may exceed the buffer: then `truncated`).
    pub(crate) len: usize,
    /// Take the ones you keep (`std::mem::take`).
    pub(crate) fds: Vec<OwnedFd>,
    /// The packet or its fds did not fit.
    pub(crate) truncated: bool,
}

impl Drop for Packet {
    fn drop(&mut self) {
        close_later(std::mem::take(&mut self.fds));
    }
}

/// Close fds a peer sent us that we did not accept, on a thread of their
/// own: closing can block without a bound (the last close of a FUSE file
/// waits for its daemon's answer to FLUSH; of a TCP socket with
/// `SO_LINGER`, for its unsent data), and the peer chooses what it sends.
/// Such a close then holds up only that thread (and the fds queued behind
/// it, which stay open until it ends), not an attach or the channel's
/// server. In a forked child (the parent's thread did not survive the
/// fork) or where the thread cannot be started, each call gets a thread of
/// its own, or closes here if even that fails.
pub(crate) fn close_later(fds: Vec<OwnedFd>) {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::OnceLock;
    static CLOSER: OnceLock<Option<(u32, Sender<Vec<OwnedFd>>)>> = OnceLock::new();
    if fds.is_empty() {
        return;
    }
    let pid = std::process::id();
    let closer = CLOSER.get_or_init(|| {
        let (tx, rx) = channel::<Vec<OwnedFd>>();
        std::thread::Builder::new()
            .name("shmcast-closer".into())
            .spawn(move || {
                for fds in rx {
                    drop(fds);
                }
            })
            .ok()
            .map(|_| (pid, tx))
    });
    let fds = match closer {
        Some((owner, tx)) if *owner == pid => match tx.send(fds) {
            Ok(()) => return,
            Err(e) => e.0,
        },
        _ => fds,
    };
    let _ = std::thread::Builder::new()
        .name("shmcast-closer".into())
        .spawn(move || drop(fds));
}

/// A socket a peer could have queued packets with fds on: dropping it
/// would release them (and maybe block, see [`close_later`]), so it is
/// closed by [`close_later`].
#[derive(Debug)]
pub(crate) struct PeerSocket(Option<OwnedFd>);

impl PeerSocket {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        PeerSocket(Some(fd))
    }
}

impl std::ops::Deref for PeerSocket {
    type Target = OwnedFd;
    fn deref(&self) -> &OwnedFd {
        self.0.as_ref().expect("present until dropped")
    }
}

impl std::os::fd::AsFd for PeerSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        (**self).as_fd()
    }
}

impl Drop for PeerSocket {
    fn drop(&mut self) {
        close_later(self.0.take().into_iter().collect());
    }
}

/// Refuse fds on `sock` and on the connections it accepts
/// (`SO_PASSRIGHTS` = 0, Linux 6.16+: a peer's `sendmsg` with
/// `SCM_RIGHTS` then fails with `EPERM`), so that a client cannot make us
/// hold or close a file of its choosing. Returns whether the kernel took
/// it; on older kernels stray fds are closed by [`close_later`].
#[allow(unsafe_code)] // one setsockopt that rustix does not wrap
pub(crate) fn refuse_fds(sock: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let Some(opt) = SO_PASSRIGHTS else {
        return false;
    };
    let off: libc::c_int = 0;
    // SAFETY: a valid socket fd, a pointer to an int and its size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&raw const off).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// `SO_PASSRIGHTS`: the asm-generic number, on the architectures that use
/// it (alpha, mips, parisc and sparc number their socket options their own
/// way, and are left out).
const SO_PASSRIGHTS: Option<libc::c_int> = if cfg!(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)) {
    Some(83)
} else {
    None
};

/// `recvmsg` one packet into `buf`, collecting any fds (close-on-exec).
/// `EINTR` (a signal came first) is the caller's to retry, after it set
/// the socket's timeout to what is left of its own: the kernel restarts
/// the full `SO_RCVTIMEO` on every call.
pub(crate) fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Packet, Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC,
    )?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(iter) = m {
            fds.extend(iter);
        }
    }
    let truncated =
        msg.flags.contains(ReturnFlags::TRUNC) || msg.flags.contains(ReturnFlags::CTRUNC);
    Ok(Packet {
        len: msg.bytes,
        fds,
        truncated,
    })
}

/// The peer's supplementary groups (`SO_PEERGROUPS`, as they were when it
/// connected); empty where the kernel cannot say.
#[allow(unsafe_code)] // one getsockopt that rustix does not wrap
pub(crate) fn peer_groups(sock: BorrowedFd<'_>) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    // A process has at most NGROUPS_MAX (65536) groups: two tries at most.
    for _ in 0..2 {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is writable for `len` bytes, and the kernel
        // writes at most `len` (it reports a larger need with ERANGE).
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n.min(groups.len()));
            return groups;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || n <= groups.len()
        {
            break;
        }
        groups.resize(n, 0);
    }
    Vec::new()
}
