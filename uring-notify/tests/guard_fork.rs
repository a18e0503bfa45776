//! A receiver whose process forked keeps its guard in the child: the
//! child's first guarded sleep starts a guard thread there (the parent's
//! did not survive the fork), so its sleeps still end within about their
//! guard, for every backend (the io_uring ones and eventfd first make fds
//! of their own: the inherited ones are shared with the parent). Its own
//! test binary, so that no other test's thread is running when it forks.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmcast_core::{Config, HeapRing, Mode};
use shmcast_uring_notify::{eventfd, probe, BackendKind, Sleeper};

#[test]
fn a_forked_child_gets_its_own_guard_thread() {
    for kind in BackendKind::ALL {
        if let Err(why) = probe().check(kind, true) {
            eprintln!("skip {kind}: {why}");
            continue;
        }
        let code = in_child_after_fork(kind);
        assert_eq!(
            code, 0,
            "{kind}: 1: a sleep in the child ended late, 2: it timed out (no guard thread), 3: it failed"
        );
    }
}

fn in_child_after_fork(kind: BackendKind) -> i32 {
    let ring = HeapRing::new(&Config::new(Mode::Unicast).capacity(8).max_message(16)).unwrap();
    let rx = ring.receiver().unwrap();
    let fds: Arc<[OwnedFd]> = (0..4)
        .map(|_| eventfd::create().unwrap())
        .collect::<Vec<_>>()
        .into();
    let mut s = Sleeper::new(kind, Some(fds)).unwrap();
    s.publish(&ring, rx.id()).unwrap();
    s.set_guard(Duration::from_millis(20));
    let mut sleep = || {
        let token = rx.prepare_wait().expect("ring is empty");
        let t0 = Instant::now();
        let r = s.sleep(&ring, rx.id(), &token, Some(Duration::from_secs(5)));
        rx.finish_wait();
        (r, t0.elapsed())
    };
    // In the parent: registers the watch and starts the guard thread.
    let (r, took) = sleep();
    assert_eq!(r, Ok(()), "{kind} in the parent: {took:?}");
    // The child runs only this thread's code (sleeps, which may start a
    // thread, allocate and make fds: glibc's malloc is fork-safe) and
    // leaves with _exit, never returning into the test harness.
    // SAFETY: see above; the child has this thread only, until _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The sleeper was made and registered before the fork: only the
        // fork handler tells it that no guard thread runs here. The first
        // sleep may end at once (an io_uring sleeper makes its own ring and
        // returns); the second has only the guard to end it.
        let mut code = 0;
        for _ in 0..2 {
            code = match sleep() {
                (Ok(()), took) if took < Duration::from_secs(2) => code,
                (Ok(()), _) => 1,
                (Err(shmcast_uring_notify::SleepError::Timeout), _) => 2,
                (Err(_), _) => 3,
            };
        }
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out
    // parameter.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "{kind}: child status {status:#x}");
    libc::WEXITSTATUS(status)
}
