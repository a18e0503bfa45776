//! The rendezvous server: a thread of the creating process that answers
//! attach requests on the channel's abstract unix socket.
//!
//! Each request is one `Hello` packet; the answer is a `Welcome` with the two
//! fds or a `Refused`. A client gets 500 ms to send its `Hello` (one the
//! mode bits grant nothing, 50 ms), so a silent or slow client delays
//! others by at most that, and never forever. The thread
//! stops when the channel is dropped or destroyed (an eventfd wakes its
//! `poll`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    accept_with, bind, listen, socket_with, sockopt, AddressFamily, SocketAddrUnix, SocketFlags,
    SocketType,
};
use shmcast_core::{Mode, Role};

use crate::error::CreateError;
use crate::fd_passing;
use crate::handshake::{Message, RefuseReason, EVENTFDS_PER_PACKET, MAX_LEN};
use crate::map::ShmRegions;
use crate::permissions::Policy;
use crate::region::Memfds;

/// What the server hands out.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) fds: Memfds,
    pub(crate) policy: Policy,
    pub(crate) mode: Mode,
    pub(crate) control_size: u64,
    pub(crate) data_size: u64,
    pub(crate) ring: shmcast_core::Ring<ShmRegions>,
    /// One eventfd per subscriber entry, if the channel was built with them.
    pub(crate) eventfds: Option<Arc<[OwnedFd]>>,
}

impl Shared {
    /// The `Welcome` for `role` and the fds that go with it.
    pub(crate) fn welcome(&self, role: Role) -> (Message, [BorrowedFd<'_>; 2]) {
        let data = if role.can_send() {
            self.fds.data.as_fd()
        } else {
            self.fds.data_ro.as_fd()
        };
        let msg = Message::Welcome {
            role,
            mode: self.mode,
            control_size: self.control_size,
            data_size: self.data_size,
            creator_uid: self.policy.uid,
            eventfds: self.eventfds.as_ref().map_or(0, |t| t.len() as u32),
        };
        (msg, [self.fds.control.as_fd(), data])
    }

    /// Send the eventfd table after a `Welcome`, in packets of at most
    /// [`EVENTFDS_PER_PACKET`].
    pub(crate) fn send_eventfds(&self, conn: BorrowedFd<'_>) -> Result<(), Errno> {
        let Some(table) = &self.eventfds else {
            return Ok(());
        };
        for (k, chunk) in table.chunks(EVENTFDS_PER_PACKET as usize).enumerate() {
            let first = k as u32 * EVENTFDS_PER_PACKET;
            let msg = Message::Eventfds {
                first,
                count: chunk.len() as u32,
            };
            let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|f| f.as_fd()).collect();
            fd_passing::send_with_fds(conn, &msg.encode(), &fds)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct Server {
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

/// How long one client may take to send its request: a client that says
/// nothing holds the server up at most this long.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);

/// The wait for the request of a peer the mode bits grant nothing.
const NO_RIGHTS_TIMEOUT: Duration = Duration::from_millis(50);

impl Server {
    pub(crate) fn start(name: &str, shared: Arc<Shared>) -> Result<Server, CreateError> {
        let io = |op| move |errno| CreateError::Io { op, errno };
        let sock = socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(io("socket"))?;
        let addr = SocketAddrUnix::new_abstract_name(&crate::name::socket_name(name))
            .map_err(io("socket address"))?;
        match bind(&sock, &addr) {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => {
                return Err(CreateError::NameInUse {
                    name: name.to_owned(),
                })
            }
            Err(e) => {
                return Err(CreateError::Io {
                    op: "bind",
                    errno: e,
                })
            }
        }
        // Clients send no fds: refuse them in the kernel where it can.
        let _ = fd_passing::refuse_fds(sock.as_fd());
        listen(&sock, 64).map_err(io("listen"))?;
        let stop = eventfd(0, EventfdFlags::CLOEXEC).map_err(io("eventfd"))?;
        let stop_thread = stop.try_clone().map_err(|e| CreateError::Io {
            op: "dup",
            errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
        })?;
        let thread = std::thread::Builder::new()
            .name(format!("shmcast-serve-{name}"))
            .spawn(move || serve(sock, stop_thread, shared))
            .map_err(|e| CreateError::Io {
                op: "spawn server thread",
                errno: Errno::from_io_error(&e).unwrap_or(Errno::AGAIN),
            })?;
        Ok(Server {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop serving; the name is free again when this returns.
    pub(crate) fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = rustix::io::write(&self.stop, &1u64.to_ne_bytes());
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(sock: OwnedFd, stop: OwnedFd, shared: Arc<Shared>) {
    loop {
        let mut fds = [
            PollFd::new(&sock, PollFlags::IN),
            PollFd::new(&stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(_) => return,
        }
        if !fds[1].revents().is_empty() {
            return;
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        match accept_with(&sock, SocketFlags::CLOEXEC) {
            Ok(conn) => answer(&conn, &shared),
            Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Answer one client. Errors just drop the connection: the client sees the
/// close and reports it.
fn answer(conn: &OwnedFd, shared: &Shared) {
    let _ = sockopt::set_socket_timeout(conn, sockopt::Timeout::Recv, Some(CLIENT_TIMEOUT));
    let _ = sockopt::set_socket_timeout(conn, sockopt::Timeout::Send, Some(CLIENT_TIMEOUT));
    // A peer the mode bits grant nothing at all gets only a short wait for
    // its request (read so that closing does not reset the connection
    // under our answer), then its refusal.
    let groups = fd_passing::peer_groups(conn.as_fd());
    if let Ok(cred) = sockopt::socket_peercred(conn) {
        let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
        if !shared.policy.allows(uid, gid, &groups, Role::Recv)
            && !shared.policy.allows(uid, gid, &groups, Role::Send)
        {
            let _ =
                sockopt::set_socket_timeout(conn, sockopt::Timeout::Recv, Some(NO_RIGHTS_TIMEOUT));
            let mut buf = [0u8; MAX_LEN + 1];
            let _ = recv_retrying(conn.as_fd(), &mut buf);
            let msg = Message::Refused {
                reason: RefuseReason::PermissionDenied,
                uid,
                mode: shared.policy.mode,
            };
            let _ = fd_passing::send_with_fds(conn.as_fd(), &msg.encode(), &[]);
            return;
        }
    }
    let mut buf = [0u8; MAX_LEN + 1];
    let Ok(packet) = recv_retrying(conn.as_fd(), &mut buf) else {
        return;
    };
    // Fds from a client are never wanted (refused by the kernel where it
    // can): the packet hands any that came to `close_later` when it drops.
    let Ok(cred) = sockopt::socket_peercred(conn) else {
        return;
    };
    let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
    let refuse = |reason| {
        Message::Refused {
            reason,
            uid,
            mode: shared.policy.mode,
        }
        .encode()
    };
    let len = packet.len.min(buf.len());
    let role = match Message::decode(&buf[..len]) {
        Ok(Message::Hello { role }) if !packet.truncated => role,
        _ => {
            let _ = fd_passing::send_with_fds(conn.as_fd(), &refuse(RefuseReason::BadRequest), &[]);
            return;
        }
    };
    if shared.ring.is_closed() {
        let _ = fd_passing::send_with_fds(conn.as_fd(), &refuse(RefuseReason::Destroyed), &[]);
        return;
    }
    if !shared.policy.allows(uid, gid, &groups, role) {
        let _ =
            fd_passing::send_with_fds(conn.as_fd(), &refuse(RefuseReason::PermissionDenied), &[]);
        return;
    }
    let (msg, fds) = shared.welcome(role);
    if fd_passing::send_with_fds(conn.as_fd(), &msg.encode(), &fds).is_ok() {
        let _ = shared.send_eventfds(conn.as_fd());
    }
}

/// A client's request. A signal to this process restarts the wait (and
/// its timeout): signals are ours, not the client's, to send.
fn recv_retrying(conn: BorrowedFd<'_>, buf: &mut [u8]) -> Result<fd_passing::Packet, Errno> {
    loop {
        match fd_passing::recv_with_fds(conn, buf) {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}
