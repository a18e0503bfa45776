//! A channel bigger than the memory a process can have is a clear
//! `CreateError::OutOfMemory`, not an allocation that the kernel answers
//! by killing the process (past a memory cgroup's limit, `fallocate` does
//! not fail: the OOM killer ends the creator).

mod common;

use std::time::Duration;

use common::*;
use shmcast::{ChannelBuilder, CreateError};

fn mem_available() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// More than the machine's available memory: refused before anything is
/// allocated, with the numbers in the message.
#[test]
fn more_than_the_machine_has() {
    let avail = mem_available();
    // 1 MiB messages: the smallest power-of-two capacity past twice what
    // is available (the configuration allows up to 64 GiB of data).
    let slots = (2 * avail / (1 << 20)).next_power_of_two().max(2);
    if slots > 1 << 16 {
        println!("skipped: {avail} B available, above the largest ring (64 GiB)");
        return;
    }
    let name = unique("oom");
    let started = std::time::Instant::now();
    let e = ChannelBuilder::new(&name)
        .capacity(slots)
        .max_message((1 << 20) - 64)
        .create()
        .unwrap_err();
    match &e {
        CreateError::OutOfMemory {
            needed,
            available: Some((bytes, "the system's available memory")),
        } => {
            assert!(*needed > avail, "{needed} <= {avail}");
            assert!(*bytes <= avail + (256 << 20), "{bytes} vs {avail}");
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with("the channel needs ") && msg.contains("lower its capacity or max_message"),
        "{msg}"
    );
    // Refused up front, not after writing gigabytes.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A memory cgroup with a 64 MiB limit, made under this process's own
/// (cgroup v1 or v2 with the memory controller delegated), and a real
/// creator process in it asking for 128 MiB: it must print the error and
/// exit, not die of SIGKILL.
#[test]
fn more_than_the_cgroup_allows() {
    let Some(dir) = make_memory_cgroup(64 << 20) else {
        println!("skipped: cannot make a memory cgroup here (not root, or no memory controller)");
        return;
    };
    let name = unique("cgroup");
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "echo $$ > \"$1/cgroup.procs\" && exec \"$2\" serve \"$3\" --capacity 2048 --max-message 65000 --for 0",
        "sh",
        dir.to_str().unwrap(),
        env!("CARGO_BIN_EXE_shmcast-peer"),
        &name,
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .stdin(std::process::Stdio::null());
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert!(
        err.contains("the channel needs ") && err.contains("the memory cgroup's limit leaves"),
        "{err}"
    );
}

/// A child memory cgroup of this process's own with `limit` bytes.
fn make_memory_cgroup(limit: u64) -> Option<std::path::PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let leaf = format!("shmcast-test-{}", std::process::id());
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (base, limit_file) = if controllers.split(',').any(|c| c == "memory") {
            (
                format!("/sys/fs/cgroup/memory{path}"),
                "memory.limit_in_bytes",
            )
        } else if controllers.is_empty() {
            // v2: our cgroup must delegate the memory controller.
            let base = format!("/sys/fs/cgroup{path}");
            let sub = std::fs::read_to_string(format!("{base}/cgroup.subtree_control")).ok()?;
            if !sub.split_whitespace().any(|c| c == "memory") {
                continue;
            }
            (base, "memory.max")
        } else {
            continue;
        };
        let dir = std::path::PathBuf::from(base).join(&leaf);
        if std::fs::create_dir(&dir).is_err() {
            continue;
        }
        if std::fs::write(dir.join(limit_file), limit.to_string()).is_ok() {
            return Some(dir);
        }
        let _ = std::fs::remove_dir(&dir);
    }
    None
}
