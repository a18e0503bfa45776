//! Eventfd: a pollable fd per receiver, for epoll / tokio loops and older
//! kernels. The receiver polls its eventfd; a producer writes 1 to it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::io::Errno;

use crate::SleepError;

/// A new non-blocking, close-on-exec eventfd.
#[doc(alias = "eventfd")]
pub fn create() -> Result<OwnedFd, Errno> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
}

/// Drain `fd`, then, unless `woken()` says a wake already came, wait
/// until `fd` is readable or `timeout` passes. `Ok` on a signal (or EINTR:
/// callers re-check anyway).
///
/// The drain comes first, not after the wake: one syscall less between the
/// wake and the receiver's look at the ring (it also clears counts left by
/// wakes that arrived while the receiver was not sleeping). `woken` is the
/// eventcount's word check; a producer moves the word before it writes the
/// eventfd, so a write this drain consumed shows there, and a later one
/// makes the poll return.
pub fn wait(
    fd: BorrowedFd<'_>,
    timeout: Option<Duration>,
    woken: impl FnOnce() -> bool,
) -> Result<(), SleepError> {
    wait_or_nudged(fd, None, timeout, woken)
}

/// [`wait`], also ended by a write to `nudge`, a private eventfd of this
/// process (the wake guard's way to end the sleep; see `guard`), which is
/// drained when it did.
pub(crate) fn wait_or_nudged(
    fd: BorrowedFd<'_>,
    nudge: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
    woken: impl FnOnce() -> bool,
) -> Result<(), SleepError> {
    drain(fd);
    if woken() {
        return Ok(());
    }
    let ts = timeout.map(crate::futex::timespec);
    let mut fds = [
        PollFd::new(&fd, PollFlags::IN),
        PollFd::new(nudge.as_ref().unwrap_or(&fd), PollFlags::IN),
    ];
    let n = if nudge.is_some() { 2 } else { 1 };
    let polled = poll(&mut fds[..n], ts.as_ref());
    if let Some(nudge) = nudge.filter(|_| fds[1].revents().contains(PollFlags::IN)) {
        drain(nudge);
    }
    match polled {
        Ok(0) => return Err(SleepError::Timeout),
        Ok(_) => {}
        Err(Errno::INTR) => return Ok(()),
        Err(errno) => {
            return Err(SleepError::Io {
                op: "poll(eventfd)",
                errno,
            })
        }
    }
    Ok(())
}

/// Reset the counter. Never blocks: every process of the channel shares
/// this eventfd's open file description, so a peer could clear its
/// `O_NONBLOCK`; the read asks for `RWF_NOWAIT` itself (nothing to read is
/// fine).
pub fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    let _ = rustix::io::preadv2(
        fd,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        u64::MAX,
        rustix::io::ReadWriteFlags::NOWAIT,
    );
}

/// `write(fd, 1)`: signal the receiver.
pub fn signal(fd: impl AsFd) -> Result<(), Errno> {
    match rustix::io::write(fd, &1u64.to_ne_bytes()) {
        // EAGAIN: the counter is at its maximum: the receiver will wake anyway.
        Ok(_) | Err(Errno::AGAIN) => Ok(()),
        Err(e) => Err(e),
    }
}
