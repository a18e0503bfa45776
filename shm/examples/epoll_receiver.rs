//! A receiver inside an epoll event loop: it sleeps with the eventfd
//! backend and registers its eventfd with epoll next to its other fds (here:
//! only a timer-less loop). A child process sends 10 messages, one every
//! 20 ms, so the receiver really sleeps between them. The loop waits at
//! most a second at a time: after a second with nothing it steps over the
//! position of a sender that died mid-send, if one holds it up
//! (`Receiver::step_over_dead_sender`), and it gives up after five.
//!
//! `cargo run -p shmcast --example epoll_receiver`

use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use shmcast::{attach, BackendKind, ChannelBuilder, Role, TryRecvError};

const MESSAGES: u32 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(name) = args.get(2).filter(|_| args[1] == "sender") {
        let tx = attach(name, Role::Send)?.sender()?;
        for i in 0..MESSAGES {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(&i.to_le_bytes())?;
        }
        return Ok(());
    }

    let name = format!("epoll-demo-{}", std::process::id());
    // The channel hands out one eventfd per subscriber entry.
    let channel = ChannelBuilder::new(&name)
        .capacity(16)
        .max_message(64)
        .eventfds(true)
        .create()?;
    let rx = channel.receiver_with(Some(BackendKind::Eventfd))?;
    let efd = rx.eventfd().ok_or("eventfd backend not available")?;

    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &ep,
        efd,
        epoll::EventData::new_u64(1),
        epoll::EventFlags::IN,
    )?;

    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["sender", &name])
        .spawn()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    let mut wakeups = 0;
    let mut idle = 0; // waits in a row that timed out
    while got < MESSAGES {
        // Drain what is there.
        match rx.try_recv(&mut buf) {
            Ok(info) => {
                println!(
                    "message {} ({} B)",
                    u32::from_le_bytes(buf[..4].try_into()?),
                    info.len
                );
                got += 1;
                idle = 0;
                continue;
            }
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        // Announce the sleep (re-checks the ring), then wait in epoll.
        let mut timed_out = false;
        if rx.prepare_wait().is_some() {
            let mut events = Vec::with_capacity(4);
            let timeout = rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            match epoll::wait(&ep, spare_capacity(&mut events), Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            wakeups += events.len();
            timed_out = events.is_empty();
            shmcast_uring_notify::eventfd::drain(efd);
        }
        rx.finish_wait();
        if timed_out {
            // A second with nothing: a sender that died between claiming a
            // position and publishing it sends no more wakes, and holds
            // every message behind it. Step over its position if so.
            rx.step_over_dead_sender();
            idle += 1;
            if idle == 5 {
                return Err(format!("no message for 5 s after {got} of {MESSAGES}").into());
            }
        }
    }
    child.wait()?;
    println!("received {got} messages, woken by epoll {wakeups} times");
    Ok(())
}
