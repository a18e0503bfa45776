//! The rendezvous server under a crowd of silent connections: a local user
//! who opens many and says nothing crowds out only its own attaches.

mod common;

use std::io::BufReader;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::{connect_to, run_as, this_test_as, unique, wait_for_line};
use shmcast::handshake::{Message, RefuseReason};
use shmcast::{attach, AttachError, ChannelBuilder, Role};

const CROWD_ENV: &str = "SHMCAST_TEST_CROWD";

#[test]
fn a_full_table_turns_away_the_oldest_connection_of_the_busiest_uid() {
    let ch = ChannelBuilder::new(unique("crowd256")).create().unwrap();
    // As many silent connections as the server takes in at once.
    let silent: Vec<OwnedFd> = (0..256).map(|_| connect_to(ch.name())).collect();
    std::thread::sleep(Duration::from_millis(100));
    // One more attach (ours: the busiest uid) makes the oldest go...
    let t0 = Instant::now();
    assert_eq!(attach(ch.name(), Role::Recv).unwrap().role(), Role::Recv);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // ...with a busy refusal.
    rustix::net::sockopt::set_socket_timeout(
        &silent[0],
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = rustix::net::recv(&silent[0], &mut buf, rustix::net::RecvFlags::empty()).unwrap();
    assert_eq!(
        Message::decode(&buf[..n]).unwrap(),
        Message::Refused {
            reason: RefuseReason::Busy,
            uid: rustix::process::getuid().as_raw(),
            mode: 0o600,
        }
    );
    assert_eq!(
        AttachError::ServerBusy.to_string(),
        "the channel's server is full of attaches of this user in progress; try again later"
    );
}

#[test]
fn sixteen_attaches_at_once_all_get_through() {
    let ch = ChannelBuilder::new(unique("burst")).create().unwrap();
    let name = ch.name().to_owned();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let name = name.clone();
            std::thread::spawn(move || attach(&name, Role::Recv).map(|a| a.role()))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), Role::Recv);
    }
}

#[test]
fn silent_connections_of_another_user_do_not_delay_an_attach() {
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: switching to another uid needs root");
        return;
    }
    let ch = ChannelBuilder::new(unique("crowd"))
        .permissions(0o666)
        .create()
        .unwrap();
    // 200 silent connections from uid 65534, kept open for 10 s: served
    // one after the other, they would hold the server up for 100 s.
    let mut crowd = this_test_as("crowd_of_silent_connections", (CROWD_ENV, ch.name()));
    run_as(&mut crowd, 65534, 65534, Vec::new());
    let mut crowd = crowd.spawn().unwrap();
    // Kept open to the end: the peer writes to it as it exits.
    let mut out = BufReader::new(crowd.stdout.take().unwrap());
    wait_for_line(&mut out, "connected");
    let t0 = Instant::now();
    let at = attach(ch.name(), Role::Both);
    let took = t0.elapsed();
    let _ = crowd.kill();
    let _ = crowd.wait();
    assert_eq!(at.unwrap().role(), Role::Both);
    assert!(took < Duration::from_secs(1), "attach took {took:?}");
}

/// The crowd (run by the test above as a process of another uid).
#[test]
#[ignore = "the crowd process of the test above"]
fn crowd_of_silent_connections() {
    let Ok(name) = std::env::var(CROWD_ENV) else {
        return;
    };
    let conns: Vec<OwnedFd> = (0..200).map(|_| connect_to(&name)).collect();
    println!("connected {}", conns.len());
    std::thread::sleep(Duration::from_secs(10));
    drop(conns);
}
