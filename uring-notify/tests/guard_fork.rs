//! A receiver whose process forked keeps its guard in the child: the
//! child's first guarded sleep starts a guard thread there (the parent's
//! did not survive the fork), so the sleep still ends within about its
//! guard. Its own test binary, so that no other test's thread is running
//! when it forks.

use std::time::{Duration, Instant};

use shmcast_core::{Config, HeapRing, Mode};
use shmcast_uring_notify::{BackendKind, Sleeper};

#[test]
fn a_forked_child_gets_its_own_guard_thread() {
    let ring = HeapRing::new(&Config::new(Mode::Unicast).capacity(8).max_message(16)).unwrap();
    let rx = ring.receiver().unwrap();
    let mut s = Sleeper::new(BackendKind::Futex, None).unwrap();
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
    assert_eq!(r, Ok(()), "parent: {took:?}");
    // SAFETY: the child runs only this thread's code (a sleep, which may
    // start a thread and allocate: glibc's malloc is fork-safe) and leaves
    // with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The watch was registered before the fork: only the fork handler
        // tells this sleep that no guard thread runs here.
        let (r, took) = sleep();
        let code = match r {
            Ok(()) if took < Duration::from_secs(2) => 0,
            Ok(()) => 1,
            Err(_) => 2,
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out
    // parameter.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "1: the child's sleep ended late, 2: it timed out (no guard thread)"
    );
}
