//! What works here: is io_uring allowed (sysctl `kernel.io_uring_disabled`,
//! seccomp in containers), which opcodes the kernel has, whether
//! `pidfd_getfd` may be used on peers (Yama `ptrace_scope`). Probed once per
//! process; [`select`] picks a backend with the reason for any fallback.

use std::sync::OnceLock;

use io_uring::{opcode, IoUring, Probe as OpProbe};

use crate::{BackendKind, Unsupported, ENV_BACKEND};

const YAMA_1: &str = "Yama kernel.yama.ptrace_scope=1 lets only ancestors pidfd_getfd this process's ring; call shmcast_uring_notify::allow_ptrace_from_peers() to allow any process of this uid (PR_SET_PTRACER_ANY)";

static PTRACE_ALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Let any process of our uid take this process's receiver rings with
/// `pidfd_getfd`, which `MSG_RING` producers need under Yama
/// `ptrace_scope=1`: `prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)`. This
/// relaxes ptrace protection for the whole process (any same-uid process
/// may then ptrace it), so it is never done implicitly.
pub fn allow_ptrace_from_peers() -> Result<(), rustix::io::Errno> {
    rustix::process::set_ptracer(rustix::process::PTracer::Any)?;
    PTRACE_ALLOWED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// What the probe found.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `Err(reason)` if no io_uring can be set up here.
    pub uring: Result<(), String>,
    /// `IORING_OP_FUTEX_WAIT` / `FUTEX_WAKE` (Linux 6.7+).
    pub futex_ops: bool,
    /// `IORING_OP_MSG_RING` (Linux 5.18+).
    pub msg_ring_op: bool,
    /// `Err(reason)` if producers cannot take a receiver's ring fd with
    /// `pidfd_getfd` (Yama `ptrace_scope` 2 or 3 without privilege).
    pub pidfd_getfd: Result<(), String>,
}

fn run_probe() -> Probe {
    let uring = match IoUring::new(4) {
        Ok(ring) => Ok(ring),
        Err(e) => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into());
            Err(format!(
                "io_uring_setup failed ({e}); sysctl kernel.io_uring_disabled={sysctl} (a seccomp filter, e.g. a container's, can also refuse it)"
            ))
        }
    };
    let (futex_ops, msg_ring_op) = match &uring {
        Ok(ring) => {
            let mut p = OpProbe::new();
            if ring.submitter().register_probe(&mut p).is_ok() {
                (
                    p.is_supported(opcode::FutexWait::CODE)
                        && p.is_supported(opcode::FutexWake::CODE),
                    p.is_supported(opcode::MsgRingData::CODE),
                )
            } else {
                (false, false)
            }
        }
        Err(_) => (false, false),
    };
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let root = rustix::process::geteuid().is_root();
    let pidfd_getfd = match scope {
        0 | 1 => Ok(()),
        2 if root => Ok(()),
        s => Err(format!(
            "Yama kernel.yama.ptrace_scope={s} forbids pidfd_getfd on peers"
        )),
    };
    Probe {
        uring: uring.map(|_| ()),
        futex_ops,
        msg_ring_op,
        pidfd_getfd,
    }
}

/// The probe of this process (run once).
pub fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(run_probe)
}

impl Probe {
    /// Whether `kind` works here; `eventfds` says whether the channel hands
    /// out eventfds.
    pub fn check(&self, kind: BackendKind, eventfds: bool) -> Result<(), Unsupported> {
        let no = |reason: String| {
            Err(Unsupported {
                kind: Some(kind),
                reason,
            })
        };
        match kind {
            BackendKind::Futex => Ok(()),
            BackendKind::UringFutex => match &self.uring {
                Err(r) => no(r.clone()),
                Ok(()) if !self.futex_ops => {
                    no("the kernel lacks IORING_OP_FUTEX_WAIT (Linux 6.7+)".into())
                }
                Ok(()) => Ok(()),
            },
            BackendKind::MsgRing => match (&self.uring, &self.pidfd_getfd) {
                (Ok(()), Err(r))
                    if r.as_str() == YAMA_1
                        && PTRACE_ALLOWED.load(std::sync::atomic::Ordering::Relaxed) =>
                {
                    if self.msg_ring_op {
                        Ok(())
                    } else {
                        no("the kernel lacks IORING_OP_MSG_RING (Linux 5.18+)".into())
                    }
                }
                (Err(r), _) | (_, Err(r)) => no(r.clone()),
                (Ok(()), Ok(())) if !self.msg_ring_op => {
                    no("the kernel lacks IORING_OP_MSG_RING (Linux 5.18+)".into())
                }
                _ => Ok(()),
            },
            BackendKind::Eventfd if !eventfds => {
                no("the channel was created without eventfds (ChannelBuilder::eventfds)".into())
            }
            BackendKind::Eventfd => Ok(()),
        }
    }
}

/// The backend chosen, and why, if it is not the one asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The backend to use.
    pub kind: BackendKind,
    /// Set when the requested backend (argument or [`ENV_BACKEND`]) could
    /// not be used: what was asked and why it fell back.
    pub fallback: Option<Unsupported>,
}

/// Choose a backend: `requested` (else the [`ENV_BACKEND`] variable, else
/// the default, futex) if it works here, otherwise futex, which always
/// works, with the reason in [`Selection::fallback`]. An unparsable
/// environment value is reported the same way.
pub fn select(requested: Option<BackendKind>, eventfds: bool) -> Selection {
    let from_env = std::env::var(ENV_BACKEND).ok().filter(|s| !s.is_empty());
    let wanted = match (requested, from_env) {
        (Some(k), _) => k,
        (None, Some(s)) => match s.parse::<BackendKind>() {
            Ok(k) => k,
            Err(e) => {
                return Selection {
                    kind: BackendKind::Futex,
                    fallback: Some(Unsupported {
                        kind: None,
                        reason: format!("{ENV_BACKEND}={:?} names no notify backend (use futex, uring-futex, msg-ring or eventfd)", e.0),
                    }),
                }
            }
        },
        (None, None) => BackendKind::Futex,
    };
    match probe().check(wanted, eventfds) {
        Ok(()) => Selection {
            kind: wanted,
            fallback: None,
        },
        Err(why) => Selection {
            kind: BackendKind::Futex,
            fallback: Some(why),
        },
    }
}
