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

/// One received packet.
#[derive(Debug)]
pub(crate) struct Packet {
    /// Bytes of the packet (may exceed the buffer: then `truncated`).
    pub(crate) len: usize,
    pub(crate) fds: Vec<OwnedFd>,
    /// The packet or its fds did not fit.
    pub(crate) truncated: bool,
}

/// `recvmsg` one packet into `buf`, collecting any fds (close-on-exec).
pub(crate) fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Packet, Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    // EINTR: a signal arrived before a packet did; wait again (the socket
    // timeout still bounds the wait).
    let msg = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC,
        ) {
            Err(Errno::INTR) => continue,
            r => break r?,
        }
    };
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
