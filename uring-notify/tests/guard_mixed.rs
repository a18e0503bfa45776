//! Receivers with different guards share the guard thread: one registered
//! later with a shorter guard than the thread is waiting out still has its
//! sleep ended within about its own guard. A test binary of its own, so
//! that the thread starts here with the long guard's watch alone.

use std::thread;
use std::time::{Duration, Instant};

use shmcast_core::{Config, HeapRing, Mode};
use shmcast_uring_notify::{BackendKind, SleepError, Sleeper, Waker};

fn ring() -> HeapRing {
    HeapRing::new(&Config::new(Mode::Unicast).capacity(8).max_message(16)).unwrap()
}

#[test]
fn a_short_guard_registered_later_is_kept() {
    // A receiver with a ten-minute guard, asleep (its timeout is longer,
    // so the guard thread watches it): the thread's next look at it is
    // five minutes away.
    let long = ring();
    let rx = long.receiver().unwrap();
    let ring2 = long.clone();
    let sleeper = thread::spawn(move || {
        let mut s = Sleeper::new(BackendKind::Futex, None).unwrap();
        s.set_guard(Duration::from_secs(600));
        s.publish(&ring2, rx.id()).unwrap();
        let token = rx.prepare_wait().expect("ring is empty");
        let r = s.sleep(&ring2, rx.id(), &token, Some(Duration::from_secs(3600)));
        rx.finish_wait();
        r
    });
    thread::sleep(Duration::from_millis(200));

    // Then one with a 20 ms guard, which no wake reaches.
    let short = ring();
    let rx = short.receiver().unwrap();
    let mut s = Sleeper::new(BackendKind::Futex, None).unwrap();
    s.set_guard(Duration::from_millis(20));
    s.publish(&short, rx.id()).unwrap();
    let token = rx.prepare_wait().expect("ring is empty");
    let t0 = Instant::now();
    let r = s.sleep(&short, rx.id(), &token, Some(Duration::from_secs(5)));
    let took = t0.elapsed();
    rx.finish_wait();
    assert_eq!(r, Ok(()), "ended by the guard, not the 5 s timeout");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Wake the first one for real.
    let tx = long.producer().unwrap();
    tx.try_send(b"wake").unwrap();
    let mut waker = Waker::new(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        waker.wake(&long, &tx.wake_set(1)).unwrap();
        if sleeper.is_finished() || Instant::now() > deadline {
            break sleeper.join().unwrap();
        }
        thread::sleep(Duration::from_millis(5));
    };
    assert_ne!(r, Err(SleepError::Timeout));
}
