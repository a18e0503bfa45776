//! Worker processes: this executable re-run with a role, pinned to a CPU,
//! driven through its stdin and answering on its stdout with fixed-size
//! [`Record`]s. Messages under test never travel on these pipes; they only
//! start runs and carry back timestamps.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::sys;

/// Words in a control record.
pub const WORDS: usize = 8;

/// A control record: an opcode and arguments, or a reply.
pub type Record = [u64; WORDS];

/// Build a record from its leading words (the rest are zero).
pub fn record(words: &[u64]) -> Record {
    let mut r = [0u64; WORDS];
    r[..words.len()].copy_from_slice(words);
    r
}

/// The argument that marks a worker invocation of the bench binary.
pub const WORKER_ARG: &str = "__worker";

/// A spawned worker process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    label: String,
}

impl Worker {
    /// Spawn `current_exe __worker <args...>`, handing it `fds` (whose
    /// numbers the caller put in `args`). The fds are closed in this process
    /// once the child has them.
    pub fn spawn(label: &str, args: &[String], fds: Vec<OwnedFd>) -> io::Result<Worker> {
        for fd in &fds {
            sys::make_inheritable(fd)?;
        }
        let spawned = Command::new(std::env::current_exe()?)
            .arg(WORKER_ARG)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        drop(fds);
        let mut child = spawned?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        Ok(Worker {
            child,
            stdin,
            stdout,
            label: label.to_owned(),
        })
    }

    /// Send a command.
    pub fn send(&mut self, r: Record) -> io::Result<()> {
        write_record(&mut self.stdin, &r)
    }

    /// Wait for the next reply. A worker that died is an error naming it.
    pub fn recv(&mut self) -> io::Result<Record> {
        match read_record(&mut self.stdout)? {
            Some(r) => Ok(r),
            None => {
                let status = self.child.wait()?;
                Err(io::Error::other(format!(
                    "worker {} exited ({status})",
                    self.label
                )))
            }
        }
    }

    /// Send `quit` and wait for a clean exit.
    pub fn finish(mut self, quit: Record) -> io::Result<()> {
        self.send(quit)?;
        let status = self.child.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "worker {} failed ({status})",
                self.label
            )))
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Write one record and flush.
pub fn write_record(w: &mut impl Write, r: &Record) -> io::Result<()> {
    let mut bytes = [0u8; WORDS * 8];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(r) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    w.write_all(&bytes)?;
    w.flush()
}

/// Read one record; `None` at end of stream.
pub fn read_record(r: &mut impl Read) -> io::Result<Option<Record>> {
    let mut bytes = [0u8; WORDS * 8];
    match r.read_exact(&mut bytes) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut out = [0u64; WORDS];
    for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    Ok(Some(out))
}

/// The worker side of the control channel: commands on stdin, replies on
/// stdout. (Workers log on stderr only: stdout carries records.)
#[derive(Debug)]
pub struct Control {
    input: io::Stdin,
    output: io::Stdout,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    /// The control channel of this worker process.
    pub fn new() -> Control {
        Control {
            input: io::stdin(),
            output: io::stdout(),
        }
    }

    /// Next command; `None` when the parent went away.
    pub fn command(&mut self) -> io::Result<Option<Record>> {
        read_record(&mut self.input.lock())
    }

    /// Send a reply.
    pub fn reply(&mut self, r: Record) -> io::Result<()> {
        write_record(&mut self.output.lock(), &r)
    }
}

/// Parsed `key=value` worker arguments.
#[derive(Debug)]
pub struct Args(Vec<(String, String)>);

impl Args {
    /// Parse `key=value` words (others are ignored).
    pub fn parse(words: &[String]) -> Args {
        Args(
            words
                .iter()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> io::Result<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("missing {key}=")))
    }

    /// The value of `key` as a number.
    pub fn num(&self, key: &str) -> io::Result<u64> {
        self.get(key)?
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad {key}=")))
    }

    /// Take the inherited fd whose number is the value of `key`.
    pub fn fd(&self, key: &str) -> io::Result<OwnedFd> {
        let n = self.num(key)?;
        let raw = i32::try_from(n)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad {key}=")))?;
        sys::take_inherited_fd(raw)
    }
}
