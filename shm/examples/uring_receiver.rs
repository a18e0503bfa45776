//! A receiver inside its own io_uring event loop: when the channel is
//! empty it arms an `IORING_OP_FUTEX_WAIT` SQE on its wake word (no fd
//! leaves the process) next to whatever else the loop waits for, and the
//! sender's ordinary `FUTEX_WAKE` completes it. A child process sends 10
//! messages, one every 20 ms. The loop waits at most a second at a time:
//! after a second with nothing it steps over the position of a sender that
//! died mid-send, if one holds it up (`Receiver::step_over_dead_sender`),
//! and it gives up after five.
//!
//! `cargo run -p shmcast --example uring_receiver` (Linux 6.7+)

use std::time::Duration;

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::IoUring;
use shmcast::{attach, ChannelBuilder, Role, TryRecvError};
use shmcast_uring_notify::{futex, probe, uring::RingWaiter};

const MESSAGES: u32 = 10;
const WAKE: u64 = 0x57414b45; // user_data of our futex-wait SQE

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
    if let Err(why) = probe().check(shmcast::BackendKind::UringFutex, false) {
        println!("skipped: {why}");
        return Ok(());
    }

    let name = format!("uring-demo-{}", std::process::id());
    let channel = ChannelBuilder::new(&name)
        .capacity(16)
        .max_message(64)
        .create()?;
    // Producers wake this receiver through its futex word (the default).
    let rx = channel.receiver()?;
    let mut ring = IoUring::new(8)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["sender", &name])
        .spawn()?;
    let mut buf = [0u8; 64];
    let (mut got, mut completions) = (0, 0);
    let mut armed = false; // a FUTEX_WAIT of ours is in flight
    let mut idle = 0; // waits in a row that timed out
    while got < MESSAGES {
        match rx.try_recv(&mut buf) {
            Ok(_) => {
                println!("message {}", u32::from_le_bytes(buf[..4].try_into()?));
                got += 1;
                idle = 0;
                continue;
            }
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        let mut timed_out = false;
        if let Some(token) = rx.prepare_wait() {
            if !armed {
                let bitset = if token.is_shared() {
                    1 << (rx.id().0 % 32)
                } else {
                    futex::MATCH_ANY
                };
                let sqe = RingWaiter::futex_wait_sqe(token.word(), token.expected(), bitset, WAKE);
                // The SQE points at the wake word in the channel's shared
                // mapping. The kernel reads it once, when the request
                // starts (a shared futex is then known by its page, not its
                // address). `ring` is declared after `rx`, so it is dropped
                // (its requests cancelled) before the mapping goes.
                // SAFETY: the word outlives every use the kernel makes of it
                // (above).
                unsafe { ring.submission().push(&sqe)? };
                armed = true;
            }
            // Wait at most a second (an armed wait that times out stays in
            // flight: the next wake of the word completes it).
            let ts = Timespec::new().sec(1);
            match ring
                .submitter()
                .submit_with_args(1, &SubmitArgs::new().timespec(&ts))
            {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TIME.raw_os_error()) => {}
                Err(e) => return Err(e.into()),
            }
            timed_out = true;
            for cqe in ring.completion() {
                if cqe.user_data() == WAKE {
                    completions += 1;
                    armed = false;
                    timed_out = false;
                }
            }
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
    println!("received {got} messages, {completions} FUTEX_WAIT completions");
    Ok(())
}
