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
