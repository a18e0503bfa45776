//! Helpers for tests that run real processes: the `shmcast-peer` binary of
//! this package, spawned (not forked), every wait bounded.

#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A channel name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        prefix,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `shmcast-peer ARGS`, with stdout piped.
pub fn peer(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shmcast-peer"));
    c.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    c
}

/// A running peer whose stdout we read line by line.
pub struct Running {
    pub child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().expect("spawn shmcast-peer");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running { child, lines }
    }

    /// The next stdout line (panics if the peer exits first).
    pub fn line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(l)) => l,
            other => {
                let _ = self.child.kill();
                let out = self.child.wait_with_output_ref();
                panic!("peer ended before printing a line ({other:?}): {out}")
            }
        }
    }

    /// Wait for the peer to exit (at most `limit`), returning its exit code
    /// and the rest of its stdout plus stderr.
    pub fn finish(mut self, limit: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return (status.code().unwrap_or(-1), rest.join("\n"), err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("peer did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

trait WaitRef {
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> String {
        let _ = self.wait();
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

/// Run a peer to completion (bounded).
pub fn run(args: &[&str], limit: Duration) -> (i32, String, String) {
    Running::spawn(peer(args)).finish(limit)
}

/// Run a prepared command to completion (bounded).
pub fn run_cmd(cmd: Command, limit: Duration) -> (i32, String, String) {
    Running::spawn(cmd).finish(limit)
}

pub const LIMIT: Duration = Duration::from_secs(60);

/// The abstract address a channel named `name` is served at.
pub fn channel_addr(name: &str) -> rustix::net::SocketAddrUnix {
    let mut addr = b"shmcast/".to_vec();
    addr.extend_from_slice(name.as_bytes());
    rustix::net::SocketAddrUnix::new_abstract_name(&addr).unwrap()
}

/// A socket of the kind a channel's server and clients speak on.
pub fn seqpacket_socket() -> std::os::fd::OwnedFd {
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

/// A connection to the server of channel `name` (nothing sent yet).
pub fn connect_to(name: &str) -> std::os::fd::OwnedFd {
    let sock = seqpacket_socket();
    rustix::net::connect(&sock, &channel_addr(name)).unwrap();
    sock
}

/// A listener squatting channel `name`'s address, with `backlog`.
pub fn squat(name: &str, backlog: i32) -> std::os::fd::OwnedFd {
    let sock = seqpacket_socket();
    rustix::net::bind(&sock, &channel_addr(name)).unwrap();
    rustix::net::listen(&sock, backlog).unwrap();
    sock
}

/// This test binary, run again as a process of its own for the ignored
/// test `test`, with `env` set (the test acts only when it sees it): the
/// peer process of a cross-process test. Stdout piped, stderr inherited.
pub fn this_test_as(test: &str, env: (&str, &str)) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(env.0, env.1)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    c
}

/// Read `out` until a line containing `marker` (panics if it ends first).
pub fn wait_for_line(out: &mut impl BufRead, marker: &str) {
    let mut line = String::new();
    while !line.contains(marker) {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "no {marker:?} line");
    }
}

/// Make `cmd`'s process drop root for `uid`, primary group `gid` and
/// supplementary `groups` before it runs (std's `uid` would clear the
/// supplementary groups).
pub fn run_as(cmd: &mut Command, uid: u32, gid: u32, groups: Vec<u32>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for r in [
                libc::setgroups(groups.len(), groups.as_ptr()),
                libc::setgid(gid),
                libc::setuid(uid),
            ] {
                if r != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
    };
}
