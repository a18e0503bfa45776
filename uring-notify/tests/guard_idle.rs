//! The guard thread parks when no watched receiver sleeps, and a sleep
//! that starts while it is parked still ends within about its guard. In
//! a test binary of its own: another test's sleeper would keep the thread
//! up.

use std::time::{Duration, Instant};

use shmcast_core::{Config, HeapRing, Mode};
use shmcast_uring_notify::{BackendKind, Sleeper};

/// The guard thread's voluntary context switches, from `/proc`: each of
/// its looks at the watches is one (it waits on a condition variable in
/// between).
fn guard_switches() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == "shmcast-guard" {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok());
        }
    }
    None
}

#[test]
fn a_parked_guard_still_bounds_the_next_sleep() {
    let ring = HeapRing::new(&Config::new(Mode::Unicast).capacity(8).max_message(16)).unwrap();
    let rx = ring.receiver().unwrap();
    let mut s = Sleeper::new(BackendKind::Futex, None).unwrap();
    s.publish(&ring, rx.id()).unwrap();
    s.set_guard(Duration::from_millis(20));
    let sleep = |s: &mut Sleeper| {
        let token = rx.prepare_wait().expect("ring is empty");
        let t0 = Instant::now();
        // No wake comes: only the guard thread ends this sleep, as a
        // spurious wake-up (`Ok`), long before the caller's timeout.
        let r = s.sleep(&ring, rx.id(), &token, Some(Duration::from_secs(5)));
        rx.finish_wait();
        assert_eq!(r, Ok(()));
        t0.elapsed()
    };
    let first = sleep(&mut s);
    assert!(first < Duration::from_secs(2), "first sleep: {first:?}");
    // Ten guards without a sleep: the thread parks and stops looking.
    std::thread::sleep(Duration::from_millis(400));
    let before = guard_switches().expect("a guard thread runs");
    std::thread::sleep(Duration::from_millis(300));
    let after = guard_switches().expect("a guard thread runs");
    assert_eq!(before, after, "the idle guard thread kept waking up");
    // A sleep that finds it parked wakes it, and it ends that sleep.
    let second = sleep(&mut s);
    assert!(second < Duration::from_secs(2), "second sleep: {second:?}");
    assert!(guard_switches().expect("a guard thread runs") > after);
}
