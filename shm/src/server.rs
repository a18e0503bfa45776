//! The rendezvous server: a thread of the creating process that answers
//! attach requests on the channel's abstract unix socket.
//!
//! Each request is one `Hello` packet; the answer is a `Welcome` with the two
//! fds or a `Refused`. Every connection in progress is polled at once, each
//! with its own deadline: 500 ms to send its `Hello` (50 ms for a peer the
//! mode bits grant nothing), so a silent client delays nobody else. With
//! [`PENDING_MAX`] in progress, the uid with the most loses its oldest (a
//! busy refusal), so a local user who opens connections and says nothing
//! crowds out only itself. Answers are sent without blocking: a client
//! that does not read its own loses it. The thread stops when the channel
//! is dropped or destroyed (an eventfd wakes its `poll`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// Attaches in progress at once. Past it, the uid with the most in
/// progress loses its oldest: a local user who opens connections and says
/// nothing crowds out its own attaches, not others'. (No smaller bound per
/// uid: a process that starts 16 workers attaches 16 at once.)
const PENDING_MAX: usize = 256;

/// Connections being turned away at once (each is given a moment for its
/// request to arrive, so that the refusal is not lost to a reset); past
/// this, more are closed without a word.
const REFUSING_MAX: usize = 256;

/// How long a connection being turned away is kept for its request.
const REFUSE_GRACE: Duration = Duration::from_millis(50);

/// After `accept` failed for want of fds or memory, the listener is left
/// alone this long (it stays readable, and polling it would spin).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A connection accepted and not answered yet.
struct Pending {
    conn: fd_passing::PeerSocket,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    deadline: Instant,
    /// Being turned away, for this reason, once its request came or its
    /// deadline passed.
    refusal: Option<RefuseReason>,
}

/// The server loop: every connection in progress is polled at once (with
/// a deadline each), so a client that says nothing delays nobody else.
fn serve(sock: OwnedFd, stop: OwnedFd, shared: Arc<Shared>) {
    // Accept without blocking: the loop drains the backlog when the
    // listener is readable and must not hang on a connection gone since.
    let _ = rustix::fs::fcntl_setfl(&sock, rustix::fs::OFlags::NONBLOCK);
    let mut pending: Vec<Pending> = Vec::new();
    let mut accept_after: Option<Instant> = None;
    loop {
        let now = Instant::now();
        // Clients out of time: those being turned away, or that the mode
        // bits grant nothing, get their refusal (they may not have sent
        // anything: closing would reset the connection under it); the
        // others are dropped.
        pending.retain(|p| {
            if p.deadline > now {
                return true;
            }
            match p.refusal {
                Some(reason) => refuse(p, &shared, reason),
                None if !shared.grants_anything(p) => {
                    refuse(p, &shared, RefuseReason::PermissionDenied)
                }
                None => {}
            }
            false
        });
        if accept_after.is_some_and(|t| t <= now) {
            accept_after = None;
        }
        let wait = pending
            .iter()
            .map(|p| p.deadline)
            .chain(accept_after)
            .min()
            .map(|t| t.saturating_duration_since(now))
            .and_then(|d| rustix::event::Timespec::try_from(d).ok());
        let (stopped, incoming, ready) = {
            let mut fds = Vec::with_capacity(pending.len() + 2);
            let listen = if accept_after.is_some() {
                PollFlags::empty()
            } else {
                PollFlags::IN
            };
            fds.push(PollFd::new(&sock, listen));
            fds.push(PollFd::new(&stop, PollFlags::IN));
            fds.extend(pending.iter().map(|p| PollFd::new(&*p.conn, PollFlags::IN)));
            match poll(&mut fds, wait.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(_) => return,
            }
            let ready: Vec<usize> = fds[2..]
                .iter()
                .enumerate()
                .filter(|(_, f)| !f.revents().is_empty())
                .map(|(i, _)| i)
                .collect();
            (
                !fds[1].revents().is_empty(),
                fds[0].revents().contains(PollFlags::IN),
                ready,
            )
        };
        if stopped {
            return;
        }
        // Highest index first, so the lower ones stay where they are.
        for i in ready.into_iter().rev() {
            let p = pending.swap_remove(i);
            match p.refusal {
                Some(reason) => refuse(&p, &shared, reason),
                None => answer(&p, &shared),
            }
        }
        if incoming && !accept_all(&sock, &shared, &mut pending) {
            accept_after = Some(Instant::now() + ACCEPT_BACKOFF);
        }
    }
}

/// Connections taken from the backlog per round of the loop: a local
/// process that connects as fast as we accept must not keep the loop from
/// answering the connections it already has.
const ACCEPT_BATCH: usize = 64;

/// Take the connections waiting in the backlog, up to [`ACCEPT_BATCH`].
/// Returns false if `accept` failed for want of fds or memory (the backlog
/// stays).
fn accept_all(sock: &OwnedFd, shared: &Shared, pending: &mut Vec<Pending>) -> bool {
    for _ in 0..ACCEPT_BATCH {
        let conn = match accept_with(sock, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) {
            Ok(c) => fd_passing::PeerSocket::new(c),
            Err(Errno::INTR | Errno::CONNABORTED) => continue,
            Err(Errno::AGAIN) => return true,
            Err(_) => return false,
        };
        let Ok(cred) = sockopt::socket_peercred(&*conn) else {
            continue;
        };
        let mut p = Pending {
            groups: fd_passing::peer_groups(conn.as_fd()),
            conn,
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
            deadline: Instant::now(),
            refusal: None,
        };
        if pending.iter().filter(|q| q.refusal.is_none()).count() >= PENDING_MAX {
            make_room(pending);
        }
        if shared.grants_anything(&p) {
            p.deadline += CLIENT_TIMEOUT;
        } else {
            p.deadline += NO_RIGHTS_TIMEOUT;
        }
        pending.push(p);
    }
    true
}

/// At [`PENDING_MAX`]: turn away the oldest attach of the uid with the
/// most in progress (given [`REFUSE_GRACE`] for its request to arrive;
/// past [`REFUSING_MAX`] being turned away, the oldest of those is closed
/// without a word).
fn make_room(pending: &mut Vec<Pending>) {
    if pending.iter().filter(|q| q.refusal.is_some()).count() >= REFUSING_MAX {
        if let Some(i) = pending
            .iter()
            .enumerate()
            .filter(|(_, q)| q.refusal.is_some())
            .min_by_key(|(_, q)| q.deadline)
            .map(|(i, _)| i)
        {
            pending.swap_remove(i);
        }
    }
    let mut count: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for q in pending.iter().filter(|q| q.refusal.is_none()) {
        *count.entry(q.uid).or_default() += 1;
    }
    let Some((&uid, _)) = count.iter().max_by_key(|&(_, n)| *n) else {
        return;
    };
    if let Some(q) = pending
        .iter_mut()
        .filter(|q| q.refusal.is_none() && q.uid == uid)
        .min_by_key(|q| q.deadline)
    {
        q.refusal = Some(RefuseReason::Busy);
        q.deadline = Instant::now() + REFUSE_GRACE;
    }
}

impl Shared {
    /// Whether the mode bits grant `p`'s peer any role at all.
    fn grants_anything(&self, p: &Pending) -> bool {
        [Role::Recv, Role::Send]
            .into_iter()
            .any(|r| self.policy.allows(p.uid, p.gid, &p.groups, r))
    }
}

/// Send `p`'s client a refusal (without waiting: a client that does not
/// read gets nothing). Its request, if it came, is read first: a unix
/// socket closed with unread data resets its peer, which would then see
/// `ECONNRESET` instead of the refusal.
fn refuse(p: &Pending, shared: &Shared, reason: RefuseReason) {
    let mut buf = [0u8; MAX_LEN + 1];
    let _ = recv_retrying(p.conn.as_fd(), &mut buf);
    let msg = Message::Refused {
        reason,
        uid: p.uid,
        mode: shared.policy.mode,
    };
    let _ = fd_passing::send_with_fds(p.conn.as_fd(), &msg.encode(), &[]);
}

/// Answer one client whose request came (or whose connection ended). The
/// connection is non-blocking: a client that does not read its answer
/// loses it, and nobody waits for it.
fn answer(p: &Pending, shared: &Shared) {
    let mut buf = [0u8; MAX_LEN + 1];
    let Ok(packet) = recv_retrying(p.conn.as_fd(), &mut buf) else {
        return;
    };
    // Fds from a client are never wanted (refused by the kernel where it
    // can): the packet hands any that came to `close_later` when it drops.
    if !shared.grants_anything(p) {
        refuse(p, shared, RefuseReason::PermissionDenied);
        return;
    }
    let len = packet.len.min(buf.len());
    let role = match Message::decode(&buf[..len]) {
        Ok(Message::Hello { role }) if !packet.truncated => role,
        _ => {
            refuse(p, shared, RefuseReason::BadRequest);
            return;
        }
    };
    if shared.ring.is_closed() {
        refuse(p, shared, RefuseReason::Destroyed);
        return;
    }
    if !shared.policy.allows(p.uid, p.gid, &p.groups, role) {
        refuse(p, shared, RefuseReason::PermissionDenied);
        return;
    }
    let (msg, fds) = shared.welcome(role);
    if fd_passing::send_with_fds(p.conn.as_fd(), &msg.encode(), &fds).is_ok() {
        let _ = shared.send_eventfds(p.conn.as_fd());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(uid: u32, age_ms: u64) -> Pending {
        let (a, _b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        Pending {
            conn: fd_passing::PeerSocket::new(a),
            uid,
            gid: uid,
            groups: Vec::new(),
            deadline: Instant::now() + Duration::from_secs(10) - Duration::from_millis(age_ms),
            refusal: None,
        }
    }

    #[test]
    fn a_full_table_turns_away_the_oldest_of_the_busiest_uid() {
        let mut table = vec![
            pending(1, 0),
            pending(2, 30),
            pending(2, 50),
            pending(2, 10),
            pending(3, 90),
        ];
        make_room(&mut table);
        let refused: Vec<(u32, Option<RefuseReason>)> = table
            .iter()
            .filter(|p| p.refusal.is_some())
            .map(|p| (p.uid, p.refusal))
            .collect();
        assert_eq!(refused, [(2, Some(RefuseReason::Busy))]);
        assert!(table[2].refusal.is_some(), "uid 2's oldest (50 ms)");
    }
}
