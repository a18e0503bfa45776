//! Creating channels, attaching to them by name, and the fd-level
//! export / import for users who bring their own transport.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    connect, socket_with, sockopt, AddressFamily, SocketAddrUnix, SocketFlags, SocketType,
};
use shmcast_core::layout::DEFAULT_MAX_MESSAGE_CAP;
use shmcast_core::{Config, Mode, Ring, Role};
use shmcast_uring_notify::{BackendKind, Waker};

use crate::error::{AttachError, CreateError, OpenError, Region};
use crate::fd_passing;
use crate::handles::{Receiver, Sender};
use crate::handshake::{Message, RefuseReason, MAX_LEN};
use crate::liveness::{join_receiver, join_sender, Liveness};
use crate::map::{self, Mapping, ShmRegions};
use crate::permissions::Policy;
use crate::server::{Server, Shared};
use crate::{name, region, validate};

/// Builds a channel: name, mode, sizes, permission bits.
///
/// ```
/// use shmcast::{ChannelBuilder, Mode};
/// let channel = ChannelBuilder::new("doc-builder")
///     .mode(Mode::Broadcast)
///     .capacity(256)
///     .max_message(1024)
///     .permissions(0o640)
///     .create()?;
/// assert_eq!(channel.name(), "doc-builder");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChannelBuilder {
    name: String,
    config: Config,
    permissions: u32,
    eventfds: bool,
}

impl ChannelBuilder {
    /// A unicast channel named `name` with default sizes (see
    /// [`Config::new`]) and permissions `0o600` (owner only).
    pub fn new(name: impl Into<String>) -> Self {
        ChannelBuilder {
            name: name.into(),
            config: Config::new(Mode::Unicast),
            permissions: 0o600,
            eventfds: false,
        }
    }

    /// Delivery mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config = self.config.with_mode(mode);
        self
    }

    /// Number of slots (a power of two).
    pub fn capacity(mut self, slots: u64) -> Self {
        self.config = self.config.capacity(slots);
        self
    }

    /// Largest message in bytes.
    pub fn max_message(mut self, bytes: u32) -> Self {
        self.config = self.config.max_message(bytes);
        self
    }

    /// Entries in the subscriber table.
    pub fn max_subscribers(mut self, count: u32) -> Self {
        self.config = self.config.max_subscribers(count);
        self
    }

    /// Cap on the message size (default 1 MiB).
    pub fn message_cap(mut self, cap: u32) -> Self {
        self.config = self.config.message_cap(cap);
        self
    }

    /// Permission bits (owner / group / other, like chmod; only the read
    /// and write bits count: receiving needs read, sending needs write).
    /// Write implies read: a sender maps the data region read-write, so it
    /// can read what others send (see the README's trust model).
    pub fn permissions(mut self, mode: u32) -> Self {
        self.permissions = mode & 0o777;
        self
    }

    /// Create one eventfd per subscriber entry and hand them to every peer
    /// at attach, so that receivers can sleep with the eventfd backend (a
    /// pollable fd for epoll / tokio loops). Off by default: each attached
    /// process then holds `max_subscribers` more fds.
    pub fn eventfds(mut self, on: bool) -> Self {
        self.eventfds = on;
        self
    }

    /// Allocate, seal and map the regions, and start serving attaches.
    pub fn create(self) -> Result<Channel, CreateError> {
        name::validate(&self.name).map_err(CreateError::InvalidName)?;
        let geo = self.config.geometry()?;
        let fds = region::create(
            &self.name,
            geo.control_size() as u64,
            geo.data_size() as u64,
        )?;
        let map_err = |e: AttachError| match e {
            AttachError::Io { op, errno } => CreateError::Io { op, errno },
            _ => CreateError::Io {
                op: "mmap",
                errno: Errno::INVAL,
            },
        };
        let control = Mapping::new(
            fds.control.as_fd(),
            geo.control_size() as u64,
            true,
            Region::Control,
        )
        .map_err(map_err)?;
        let data = Mapping::new(fds.data.as_fd(), geo.data_size() as u64, true, Region::Data)
            .map_err(map_err)?;
        let regions = ShmRegions::new(control, data, &geo).ok_or(CreateError::Io {
            op: "mmap",
            errno: Errno::INVAL,
        })?;
        let ring = map::ring(regions, geo);
        let policy = Policy {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            mode: self.permissions,
        };
        ring.initialize(policy.uid, policy.gid, policy.mode);
        let eventfds = if self.eventfds {
            let table: Result<Vec<OwnedFd>, Errno> = (0..geo.max_subscribers())
                .map(|_| shmcast_uring_notify::eventfd::create())
                .collect();
            Some(Arc::from(table.map_err(|errno| CreateError::Io {
                op: "eventfd",
                errno,
            })?))
        } else {
            None
        };
        let shared = Arc::new(Shared {
            fds,
            policy,
            mode: geo.mode(),
            control_size: geo.control_size() as u64,
            data_size: geo.data_size() as u64,
            ring: ring.clone(),
            eventfds,
        });
        let liveness = Liveness::new(shared.fds.control.as_fd()).ok().map(Arc::new);
        let server = Server::start(&self.name, shared.clone())?;
        Ok(Channel {
            name: self.name,
            ring,
            shared,
            server,
            liveness,
        })
    }
}

/// A channel this process created. It serves attach requests (on a thread)
/// for as long as it lives.
///
/// Dropping it stops serving but leaves the ring open: attached peers keep
/// working, exactly as when the creating process exits. [`Channel::destroy`]
/// also closes the ring.
#[derive(Debug)]
pub struct Channel {
    name: String,
    ring: Ring<ShmRegions>,
    shared: Arc<Shared>,
    server: Server,
    /// Liveness locks (`None` if the control memfd could not be reopened).
    liveness: Option<Arc<Liveness>>,
}

/// The fds and descriptor of a channel, for handing over on a transport of
/// your own (`SCM_RIGHTS` on your socket, a D-Bus `h` argument...).
#[derive(Debug)]
pub struct Export {
    /// The handshake `Welcome` message: role, mode and region sizes.
    pub descriptor: Vec<u8>,
    /// The control region memfd.
    pub control: OwnedFd,
    /// The data region memfd (`O_RDONLY` for a receive-only role).
    pub data: OwnedFd,
}

impl Channel {
    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The delivery mode.
    pub fn mode(&self) -> Mode {
        self.ring.mode()
    }

    /// A read-only look at the ring: geometry, positions, counters.
    pub fn ring(&self) -> crate::RingView<'_> {
        crate::RingView(&self.ring)
    }

    /// The whole core ring over this process's mappings, with every
    /// operation of [`shmcast_core::Ring`], including ones this handle's
    /// role does not grant (closing the channel for everyone, joining
    /// again, writing entries). It is not a permission boundary either way:
    /// the memory is shared, and what it does a peer can do by writing the
    /// mapping. For embedders building their own protocol on the ring, and
    /// for tests that play a misbehaving peer; [`Self::ring`] is the
    /// read-only look.
    pub fn raw_ring(&self) -> &Ring<ShmRegions> {
        &self.ring
    }

    /// Join as a sender.
    pub fn sender(&self) -> Result<Sender, OpenError> {
        Ok(Sender::new(
            join_sender(&self.ring, self.liveness.as_deref())?,
            self.shared.eventfds.clone(),
            self.liveness.clone(),
        ))
    }

    /// Join as a receiver, sleeping in the default notify backend (futex,
    /// or what `SHMCAST_NOTIFY` asks for).
    pub fn receiver(&self) -> Result<Receiver, OpenError> {
        self.receiver_with(None)
    }

    /// Join as a receiver that sleeps in `backend` (falls back to futex,
    /// with the reason in [`Receiver::backend_fallback`], if it cannot work here).
    pub fn receiver_with(&self, backend: Option<BackendKind>) -> Result<Receiver, OpenError> {
        Ok(Receiver::new(
            join_receiver(&self.ring, self.liveness.as_deref())?,
            self.shared.eventfds.clone(),
            backend,
            self.liveness.as_ref(),
        ))
    }

    /// Hand the channel over for `role` without the rendezvous socket: the
    /// caller passes the fds and descriptor on its own transport, and the
    /// other side calls [`crate::import`]. No permission check is made here:
    /// whoever holds the fds holds the capability.
    pub fn export(&self, role: Role) -> Result<Export, Errno> {
        let (msg, fds) = self.shared.welcome(role);
        Ok(Export {
            descriptor: msg.encode(),
            control: fds[0]
                .try_clone_to_owned()
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?,
            data: fds[1]
                .try_clone_to_owned()
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?,
        })
    }

    /// Destroy the channel: close the ring (senders get `Closed`, receivers
    /// drain and then get `Closed`) and stop serving (later attaches get
    /// [`AttachError::NotFound`]). The memory lives on while any process
    /// still maps it.
    pub fn destroy(mut self) {
        let set = self.ring.close();
        // Wake every sleeper so that it sees the close now, not at its timeout.
        let _ = Waker::new(self.shared.eventfds.clone()).wake(&self.ring, &set);
        self.server.stop();
    }
}

/// Options for [`attach_with`].
#[derive(Clone, Copy, Debug)]
pub struct AttachOptions {
    /// How long to wait for the server's answer (default 5 s).
    pub timeout: Duration,
    /// Largest message size we accept to map (default 1 MiB).
    pub message_cap: u32,
    /// Notify backend for receivers of this attachment (default: futex, or
    /// what the `SHMCAST_NOTIFY` environment variable says).
    pub backend: Option<BackendKind>,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            timeout: Duration::from_secs(5),
            message_cap: DEFAULT_MAX_MESSAGE_CAP,
            backend: None,
        }
    }
}

/// A channel this process attached to (by name or by import).
#[derive(Debug)]
pub struct Attachment {
    ring: Ring<ShmRegions>,
    role: Role,
    creator_uid: u32,
    control: OwnedFd,
    data: OwnedFd,
    eventfds: Option<Arc<[OwnedFd]>>,
    backend: Option<BackendKind>,
    /// Liveness locks (`None` if the control memfd could not be reopened).
    liveness: Option<Arc<Liveness>>,
}

impl Attachment {
    /// The role granted.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The delivery mode.
    pub fn mode(&self) -> Mode {
        self.ring.mode()
    }

    /// Uid of the process serving the channel, from `SO_PEERCRED` of the
    /// attach connection (what a peer worried about name squatting checks).
    /// For an imported attachment: the uid the descriptor names.
    pub fn creator_uid(&self) -> u32 {
        self.creator_uid
    }

    /// A read-only look at the ring: geometry, positions, counters.
    pub fn ring(&self) -> crate::RingView<'_> {
        crate::RingView(&self.ring)
    }

    /// The whole core ring over this process's mappings, with every
    /// operation of [`shmcast_core::Ring`], including ones this handle's
    /// role does not grant (closing the channel for everyone, joining
    /// again, writing entries). It is not a permission boundary either way:
    /// the memory is shared, and what it does a peer can do by writing the
    /// mapping. For embedders building their own protocol on the ring, and
    /// for tests that play a misbehaving peer; [`Self::ring`] is the
    /// read-only look.
    pub fn raw_ring(&self) -> &Ring<ShmRegions> {
        &self.ring
    }

    /// The control and data memfds we were handed (the data fd is
    /// `O_RDONLY` for a receive-only role), e.g. to pass them on with
    /// [`Channel::export`]-style transports of your own.
    pub fn fds(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
        (self.control.as_fd(), self.data.as_fd())
    }

    /// Join as a sender (needs a send role).
    pub fn sender(&self) -> Result<Sender, OpenError> {
        if !self.role.can_send() {
            return Err(OpenError::RoleNotGranted { granted: self.role });
        }
        Ok(Sender::new(
            join_sender(&self.ring, self.liveness.as_deref())?,
            self.eventfds.clone(),
            self.liveness.clone(),
        ))
    }

    /// Join as a receiver (needs a receive role), sleeping in the backend
    /// of [`AttachOptions::backend`] (default futex / `SHMCAST_NOTIFY`).
    pub fn receiver(&self) -> Result<Receiver, OpenError> {
        self.receiver_with(self.backend)
    }

    /// Join as a receiver that sleeps in `backend`.
    pub fn receiver_with(&self, backend: Option<BackendKind>) -> Result<Receiver, OpenError> {
        if !self.role.can_recv() {
            return Err(OpenError::RoleNotGranted { granted: self.role });
        }
        Ok(Receiver::new(
            join_receiver(&self.ring, self.liveness.as_deref())?,
            self.eventfds.clone(),
            backend,
            self.liveness.as_ref(),
        ))
    }
}

/// Attach to the channel served under `name` with `role`, waiting at most 5 s
/// for its server.
///
/// ```
/// use shmcast::{attach, ChannelBuilder, Mode, Role};
/// let channel = ChannelBuilder::new("doc-attach").mode(Mode::Unicast).create()?;
/// let peer = attach("doc-attach", Role::Send)?; // from any process
/// let tx = peer.sender()?;
/// let rx = channel.receiver()?;
/// tx.try_send(b"hi")?;
/// let mut buf = [0u8; 8];
/// assert_eq!(rx.try_recv(&mut buf)?.len, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn attach(name: &str, role: Role) -> Result<Attachment, AttachError> {
    attach_with(name, role, &AttachOptions::default())
}

/// [`attach`] with options.
pub fn attach_with(
    name: &str,
    role: Role,
    opts: &AttachOptions,
) -> Result<Attachment, AttachError> {
    name::validate(name).map_err(AttachError::InvalidName)?;
    let io = |op| move |errno| AttachError::Io { op, errno };
    // Whoever serves the name may queue packets with fds of its choice
    // after its answer: closing the socket releases them, so it is closed
    // aside.
    let sock = fd_passing::PeerSocket::new(
        socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(io("socket"))?,
    );
    let addr = SocketAddrUnix::new_abstract_name(&name::socket_name(name))
        .map_err(io("socket address"))?;
    // One deadline for the whole attach: connect (which blocks while the
    // server's backlog is full), the request, the answer, the eventfds.
    let deadline = Instant::now() + opts.timeout;
    let remaining = |sock: &OwnedFd| -> Result<(), AttachError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AttachError::Timeout);
        }
        sockopt::set_socket_timeout(sock, sockopt::Timeout::Recv, Some(left))
            .map_err(io("SO_RCVTIMEO"))?;
        sockopt::set_socket_timeout(sock, sockopt::Timeout::Send, Some(left))
            .map_err(io("SO_SNDTIMEO"))
    };
    remaining(&sock)?;
    let connected = loop {
        match connect(&sock, &addr) {
            // Interrupted by a signal: the kernel may finish the connect on
            // its own; asking again (within what is left of the time) says
            // so (EISCONN) or carries on.
            Err(Errno::INTR) => remaining(&sock)?,
            Err(Errno::ISCONN) => break Ok(()),
            r => break r,
        }
    };
    match connected {
        Ok(()) => {}
        Err(Errno::AGAIN | Errno::INPROGRESS | Errno::TIMEDOUT) => {
            return Err(AttachError::Timeout)
        }
        Err(Errno::CONNREFUSED | Errno::NOENT) => {
            return Err(AttachError::NotFound {
                name: name.to_owned(),
            })
        }
        Err(e) => {
            return Err(AttachError::Io {
                op: "connect",
                errno: e,
            })
        }
    }
    // Who really serves this name (a squatter cannot fake SO_PEERCRED).
    let server_uid = sockopt::socket_peercred(&sock)
        .map_err(io("SO_PEERCRED"))?
        .uid
        .as_raw();
    remaining(&sock)?;
    match fd_passing::send_with_fds(sock.as_fd(), &Message::Hello { role }.encode(), &[]) {
        // The server may have answered (a refusal) and closed before our
        // request arrived: its answer is still there to read.
        Ok(()) | Err(Errno::PIPE | Errno::CONNRESET) => {}
        Err(Errno::AGAIN) => return Err(AttachError::Timeout),
        Err(e) => {
            return Err(AttachError::Io {
                op: "sendmsg",
                errno: e,
            })
        }
    }
    let mut buf = [0u8; MAX_LEN + 1];
    let mut packet = recv_packet(&sock, &mut buf, &remaining)?;
    let len = packet.len.min(buf.len());
    match Message::decode(&buf[..len])? {
        Message::Welcome { .. } => {
            if packet.fds.len() != 2 {
                return Err(AttachError::WrongFdCount {
                    got: packet.fds.len(),
                });
            }
            let mut fds = std::mem::take(&mut packet.fds).into_iter();
            let (control, data) = (fds.next().expect("two fds"), fds.next().expect("two fds"));
            let mut att = import_checked(&buf[..len], control, data, Some(role), opts.message_cap)?;
            att.backend = opts.backend;
            att.creator_uid = server_uid;
            if let Message::Welcome { eventfds, .. } = Message::decode(&buf[..len])? {
                if eventfds > 0 {
                    let entries = att.ring.geometry().max_subscribers();
                    att.eventfds = Some(recv_eventfds(&sock, eventfds, entries, &remaining)?);
                }
            }
            Ok(att)
        }
        Message::Refused { reason, uid, mode } => Err(match reason {
            RefuseReason::PermissionDenied => AttachError::PermissionDenied { role, uid, mode },
            RefuseReason::Destroyed => AttachError::Destroyed,
            RefuseReason::BadRequest => AttachError::Refused { code: 3 },
            RefuseReason::Busy => AttachError::ServerBusy,
            RefuseReason::Other(code) => AttachError::Refused { code },
        }),
        Message::Hello { .. } | Message::Eventfds { .. } => Err(AttachError::Handshake(
            crate::handshake::HandshakeError::Unexpected,
        )),
    }
}

/// Attach from fds and a descriptor received on a transport of your own
/// (the other side called [`Channel::export`]). Everything is validated as
/// for [`attach`]: seals, sizes, header.
pub fn import(
    descriptor: &[u8],
    control: OwnedFd,
    data: OwnedFd,
) -> Result<Attachment, AttachError> {
    import_with(descriptor, control, data, &AttachOptions::default())
}

/// [`import`] with options: the largest message size to accept
/// ([`AttachOptions::message_cap`]) and the receivers' notify backend
/// (the timeout does not apply: nothing is waited for).
pub fn import_with(
    descriptor: &[u8],
    control: OwnedFd,
    data: OwnedFd,
    opts: &AttachOptions,
) -> Result<Attachment, AttachError> {
    let mut att = import_checked(descriptor, control, data, None, opts.message_cap)?;
    att.backend = opts.backend;
    Ok(att)
}

fn import_checked(
    descriptor: &[u8],
    control: OwnedFd,
    data: OwnedFd,
    asked: Option<Role>,
    message_cap: u32,
) -> Result<Attachment, AttachError> {
    match check_import(descriptor, &control, &data, asked, message_cap) {
        Ok((ring, role, creator_uid)) => Ok(Attachment {
            liveness: Liveness::new(control.as_fd()).ok().map(Arc::new),
            ring,
            role,
            creator_uid,
            control,
            data,
            eventfds: None,
            backend: None,
        }),
        Err(e) => {
            // Whatever they are (they failed the checks), they came from a
            // peer: closing them may block.
            fd_passing::close_later(vec![control, data]);
            Err(e)
        }
    }
}

/// The checks of [`import_checked`]: the ring, role and creator uid.
fn check_import(
    descriptor: &[u8],
    control: &OwnedFd,
    data: &OwnedFd,
    asked: Option<Role>,
    message_cap: u32,
) -> Result<(Ring<ShmRegions>, Role, u32), AttachError> {
    let Message::Welcome {
        role,
        mode,
        control_size,
        data_size,
        creator_uid,
        ..
    } = Message::decode(descriptor).map_err(|e| match asked {
        // From the server (attach by name), or from the user (import).
        Some(_) => AttachError::Handshake(e),
        None => AttachError::BadDescriptor(e),
    })?
    else {
        let e = crate::handshake::HandshakeError::Unexpected;
        return Err(match asked {
            Some(_) => AttachError::Handshake(e),
            None => AttachError::BadDescriptor(e),
        });
    };
    if asked.is_some_and(|a| a != role) {
        return Err(AttachError::DescriptorMismatch { what: "role" });
    }
    let ring = validate::open_regions(control, data, role.can_send(), message_cap)?;
    let geo = ring.geometry();
    if geo.mode() != mode {
        return Err(AttachError::DescriptorMismatch { what: "mode" });
    }
    if geo.control_size() as u64 != control_size || geo.data_size() as u64 != data_size {
        return Err(AttachError::DescriptorMismatch {
            what: "region sizes",
        });
    }
    Ok((ring, role, creator_uid))
}

/// One packet from the server, within what is left of the attach's time
/// (`remaining` sets the socket's timeout to it, again after a signal).
fn recv_packet(
    sock: &OwnedFd,
    buf: &mut [u8],
    remaining: &dyn Fn(&OwnedFd) -> Result<(), AttachError>,
) -> Result<fd_passing::Packet, AttachError> {
    loop {
        remaining(sock)?;
        match fd_passing::recv_with_fds(sock.as_fd(), buf) {
            Ok(p) => return Ok(p),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Err(AttachError::Timeout),
            Err(e) => {
                return Err(AttachError::Io {
                    op: "recvmsg",
                    errno: e,
                })
            }
        }
    }
}

/// Receive the eventfd table announced by a `Welcome`: `count` fds in
/// `Eventfds` packets, in order, each checked to be an eventfd.
fn recv_eventfds(
    sock: &OwnedFd,
    count: u32,
    entries: usize,
    remaining: &dyn Fn(&OwnedFd) -> Result<(), AttachError>,
) -> Result<Arc<[OwnedFd]>, AttachError> {
    if count as usize != entries {
        return Err(AttachError::BadEventfds {
            what: "count differs from the subscriber table size",
        });
    }
    let mut table: Vec<OwnedFd> = Vec::with_capacity(entries);
    while table.len() < entries {
        let mut buf = [0u8; MAX_LEN + 1];
        let mut packet = recv_packet(sock, &mut buf, remaining)?;
        let len = packet.len.min(buf.len());
        match Message::decode(&buf[..len])? {
            Message::Eventfds { first, count }
                if count > 0
                    && first as usize == table.len()
                    && count as usize == packet.fds.len()
                    && !packet.truncated =>
            {
                for fd in &packet.fds {
                    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                        .map_err(|_| AttachError::BadEventfds {
                            what: "cannot inspect an fd",
                        })?;
                    if link.as_os_str() != "anon_inode:[eventfd]" {
                        return Err(AttachError::BadEventfds {
                            what: "an fd is not an eventfd",
                        });
                    }
                    // Semaphore mode: each read takes 1 off the count, so
                    // a count a peer ran up could not be drained and our
                    // sleeps would spin. Older kernels do not show the line.
                    let info =
                        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
                            .map_err(|_| AttachError::BadEventfds {
                                what: "cannot inspect an fd",
                            })?;
                    if info
                        .lines()
                        .any(|l| l.split_whitespace().eq(["eventfd-semaphore:", "1"]))
                    {
                        return Err(AttachError::BadEventfds {
                            what: "an eventfd is in semaphore mode",
                        });
                    }
                }
                table.extend(std::mem::take(&mut packet.fds));
            }
            _ => {
                return Err(AttachError::BadEventfds {
                    what: "unexpected packet",
                })
            }
        }
    }
    if table.len() != entries {
        return Err(AttachError::BadEventfds {
            what: "too many fds",
        });
    }
    Ok(Arc::from(table))
}
