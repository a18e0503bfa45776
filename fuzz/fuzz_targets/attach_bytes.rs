//! Arbitrary control-region bytes and region sizes, first into the pure
//! `Geometry::decode`, then into the real attach path: memfds made from the
//! fuzz bytes (sealed, sometimes without the seals, sometimes with write
//! seals, sometimes not memfds at all, sometimes `O_RDONLY`), handed to
//! `shmcast::import` with a descriptor. A hostile creator, in other words.
//!
//! Asserts: no panic anywhere; a geometry that decode or import accepts
//! fits the regions exactly (`control_size == control_len`, `data_size ==
//! data_len`, capacity a power of two, slots and table inside, ...) and is
//! the very geometry `Geometry::new` computes for its parameters; a header
//! `Geometry::new` wrote is always accepted; import only accepts properly
//! sealed memfds and a descriptor that agrees with the header. Then the
//! attached ring is used (join, send, receive, sleep/wake) over whatever
//! else the creator put in the regions: lengths come back clamped.

#![no_main]

mod common;

use std::io::Write;
use std::mem::offset_of;
use std::os::fd::{AsRawFd, OwnedFd};

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use common::*;
use libfuzzer_sys::fuzz_target;
use rustix::fs::{self, MemfdFlags, OFlags, SealFlags};
use shmcast::handshake::Message;
use shmcast::{import, Role};
use shmcast_core::layout::{
    GeometryWords, CONTROL_HEADER_SIZE, DEFAULT_MAX_MESSAGE_CAP, HARD_MAX_MESSAGE, MAX_CAPACITY,
    MAX_SUBSCRIBERS, SLOT_ALIGN, SLOT_HEADER_SIZE, STATE_OPEN, SUBSCRIBER_ENTRY_SIZE,
};
use shmcast_core::{Geometry, HeaderWords, Mode};

/// Largest control region made (the largest valid one is ~132 KiB).
const CONTROL_LIMIT: u64 = 256 << 10;
/// Largest data region made (sparse: only touched pages cost memory).
const DATA_LIMIT: u64 = 16 << 20;

#[derive(Debug, Arbitrary)]
struct Input {
    header: Header,
    control_len: RegionLen,
    data_len: RegionLen,
    /// Extra stores into the regions (bitmap, entries, slots...).
    fills: Few<Fill, 8>,
    control_fd: FdSpec,
    data_fd: DataFd,
    descriptor: Descriptor,
    /// Lengths and cap for a second, memory-free call of `decode`.
    pure_lens: (u64, u64),
    pure_cap: Cap,
    ops: Few<AttachedOp, 12>,
}

/// The geometry words the creator wrote.
#[derive(Debug, Arbitrary)]
enum Header {
    /// What `Geometry::new` writes, possibly with one word bent.
    Valid {
        mode: AnyMode,
        capacity_log: CapacityLog,
        max_message: MessageSize,
        subscribers: Subscribers,
        bend: Option<(Word, Bend)>,
        open: bool,
    },
    /// Any 56 bytes.
    Raw([u8; 56]),
}

#[derive(Debug, Clone, Copy)]
struct CapacityLog(u32);
impl<'a> Arbitrary<'a> for CapacityLog {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(CapacityLog(u.int_in_range(0..=10)?))
    }
}

#[derive(Debug, Clone, Copy)]
struct MessageSize(u32);
impl<'a> Arbitrary<'a> for MessageSize {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(MessageSize(if bool::arbitrary(u)? {
            u.int_in_range(1..=100)?
        } else {
            u.int_in_range(1..=4096)?
        }))
    }
}

#[derive(Debug, Clone, Copy)]
struct Subscribers(u32);
impl<'a> Arbitrary<'a> for Subscribers {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(Subscribers(if bool::arbitrary(u)? {
            u.int_in_range(1..=8)?
        } else {
            u.int_in_range(1..=MAX_SUBSCRIBERS)?
        }))
    }
}

/// A word of `HeaderWords`.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Word {
    Magic,
    Version,
    Mode,
    Capacity,
    SlotStride,
    MaxMessage,
    MaxSubscribers,
    Flags,
    ControlSize,
    DataSize,
}

/// How a word is bent: replaced, or nudged (off-by-one and friends).
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Bend {
    Set(u64),
    Add(i8),
    Shift(i8),
}

/// A region's real size.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum RegionLen {
    /// What the header says (if it is not absurd).
    AsHeader,
    /// Off by a little.
    Near(i16),
    /// Anything up to the limit.
    Raw(u32),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Fill {
    /// A waiter-bitmap word.
    Bitmap(u8, u64),
    /// A word of a subscriber entry (`field` is taken modulo 16 words).
    Entry(u16, u8, u64),
    /// A word of the control header past the geometry words.
    Header(u8, u64),
    /// A word of a slot header or payload (`offset` in the data region).
    Data(u32, u64),
}

/// What the control fd is.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum FdSpec {
    Memfd(Seals),
    /// An `O_RDONLY` re-open of a properly sealed memfd.
    ReadOnly,
    /// Not a memfd at all.
    Pipe,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum DataFd {
    Memfd(Seals),
    ReadOnly,
    Pipe,
    /// The control memfd again.
    SameAsControl,
}

/// Seals to add (and whether the memfd allows sealing at all).
#[derive(Debug, Clone, Copy)]
struct Seals {
    sealing: bool,
    flags: SealFlags,
}

impl<'a> Arbitrary<'a> for Seals {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        // Mostly the right seals: the interesting paths are past them.
        let flags = match u.int_in_range(0u8..=3)? {
            0 => SealFlags::from_bits_truncate(u.int_in_range(0..=0x1f)?),
            _ => required(),
        };
        Ok(Seals {
            sealing: u.ratio(15u8, 16)?,
            flags,
        })
    }
}

fn required() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

#[derive(Debug, Clone, Arbitrary)]
enum Descriptor {
    /// A `Welcome` that agrees with the regions (mode from the header).
    Consistent(RoleArb),
    /// A `Welcome` with its own idea of mode and sizes.
    Bent {
        role: RoleArb,
        mode: AnyMode,
        control: RegionLen,
        data: RegionLen,
    },
    /// Any bytes.
    Raw(Vec<u8>),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum RoleArb {
    Send,
    Recv,
    Both,
}

impl RoleArb {
    fn role(self) -> Role {
        match self {
            RoleArb::Send => Role::Send,
            RoleArb::Recv => Role::Recv,
            RoleArb::Both => Role::Both,
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Cap {
    Default,
    Hard,
    Raw(u32),
}

/// What is done with an attachment.
#[derive(Debug, Clone, Arbitrary)]
enum AttachedOp {
    Sender,
    Receiver,
    Send(Pick, Payload),
    Batch(Pick, Few<Payload, 4>),
    Recv(Pick, Len),
    Read(Pick, Len),
    Prepare(Pick),
    Finish(Pick),
    DropSender(Pick),
    DropReceiver(Pick),
}

fuzz_target!(|input: Input| run(input));

fn run(input: Input) {
    let (words, state, canonical) = header_words(&input.header);
    let control_len = region_len(input.control_len, words.control_size, CONTROL_LIMIT);
    let data_len = region_len(input.data_len, words.data_size, DATA_LIMIT);

    // 1. The pure decoder, on the real lengths and on arbitrary ones.
    let cap = match input.pure_cap {
        Cap::Default => DEFAULT_MAX_MESSAGE_CAP,
        Cap::Hard => HARD_MAX_MESSAGE,
        Cap::Raw(c) => c,
    };
    for (c, d) in [(control_len, data_len), input.pure_lens] {
        if let Ok(geo) = Geometry::decode(&words, c, d, cap) {
            check_geometry(&geo, &words, c, d, cap);
        }
    }
    let decoded = Geometry::decode(&words, control_len, data_len, DEFAULT_MAX_MESSAGE_CAP);
    if let Some(geo) = canonical {
        // A header Geometry::new wrote, on regions of its sizes: accepted.
        if control_len == geo.control_size() as u64 && data_len == geo.data_size() as u64 {
            assert_eq!(decoded, Ok(geo), "a valid header was refused");
        }
    }

    // 2. The real attach path.
    let mut control_bytes = vec![0u8; control_len as usize];
    let head = words.to_bytes();
    let n = head.len().min(control_bytes.len());
    control_bytes[..n].copy_from_slice(&head[..n]);
    let state_at = offset_of!(GeometryWords, state);
    if control_bytes.len() >= state_at + 4 {
        control_bytes[state_at..state_at + 4].copy_from_slice(&state.to_ne_bytes());
    }
    let mut data_fills = Vec::new();
    let subscribers_at = decoded
        .as_ref()
        .map_or(CONTROL_HEADER_SIZE + 128, Geometry::subscribers_offset);
    for fill in &input.fills.0 {
        let (at, value) = match *fill {
            Fill::Bitmap(w, v) => (CONTROL_HEADER_SIZE + 8 * (w as usize % 16), v),
            Fill::Entry(i, f, v) => (
                subscribers_at
                    + (i as usize % MAX_SUBSCRIBERS as usize) * SUBSCRIBER_ENTRY_SIZE
                    + 8 * (f as usize % 16),
                v,
            ),
            Fill::Header(w, v) => (128 + 8 * (w as usize % 48), v),
            Fill::Data(off, v) => {
                data_fills.push((off as u64 % data_len.max(1) / 8 * 8, v));
                continue;
            }
        };
        if let Some(dst) = control_bytes.get_mut(at..at + 8) {
            dst.copy_from_slice(&value.to_ne_bytes());
        }
    }
    let control_fd = match input.control_fd {
        FdSpec::Memfd(seals) => memfd(&control_bytes, control_len, &[], seals),
        FdSpec::ReadOnly => read_only(&memfd(&control_bytes, control_len, &[], sealed())),
        FdSpec::Pipe => pipe(),
    };
    let data_fd = match input.data_fd {
        DataFd::Memfd(seals) => memfd(&[], data_len, &data_fills, seals),
        DataFd::ReadOnly => read_only(&memfd(&[], data_len, &data_fills, sealed())),
        DataFd::Pipe => pipe(),
        DataFd::SameAsControl => control_fd.try_clone().expect("dup"),
    };
    let descriptor = match &input.descriptor {
        Descriptor::Consistent(role) => welcome(
            role.role(),
            Mode::from_code(words.mode).unwrap_or(Mode::Unicast),
            control_len,
            data_len,
        ),
        Descriptor::Bent {
            role,
            mode,
            control,
            data,
        } => welcome(
            role.role(),
            mode.0,
            region_len(*control, words.control_size, CONTROL_LIMIT),
            region_len(*data, words.data_size, DATA_LIMIT),
        ),
        Descriptor::Raw(bytes) => bytes.clone(),
    };
    let Ok(att) = import(&descriptor, control_fd, data_fd) else {
        return;
    };

    // Accepted: everything it was handed must have been right.
    let geo = *att.ring().geometry();
    check_geometry(&geo, &words, control_len, data_len, DEFAULT_MAX_MESSAGE_CAP);
    assert_eq!(decoded, Ok(geo), "import accepted what decode refuses");
    assert!(
        matches!(input.control_fd, FdSpec::Memfd(s) if s.sealing && seals_ok(s.flags)),
        "import accepted control fd {:?}",
        input.control_fd
    );
    match input.data_fd {
        DataFd::Memfd(s) => assert!(s.sealing && seals_ok(s.flags), "data seals {s:?}"),
        DataFd::ReadOnly => assert!(
            !att.role().can_send(),
            "a sender got a read-only data region"
        ),
        DataFd::Pipe => panic!("import accepted a pipe as the data region"),
        DataFd::SameAsControl => assert_eq!(control_len, data_len),
    }
    let Ok(Message::Welcome {
        role,
        mode,
        control_size,
        data_size,
        ..
    }) = Message::decode(&descriptor)
    else {
        panic!("import accepted a descriptor that is not a Welcome");
    };
    assert_eq!(att.role(), role);
    assert_eq!(att.mode(), mode);
    assert_eq!(geo.mode(), mode);
    assert_eq!((control_size, data_size), (control_len, data_len));

    // 3. Use it, over whatever else the creator left in the regions.
    use_attachment(&att, &geo, &input.ops.0);
}

fn use_attachment(att: &shmcast::Attachment, geo: &Geometry, ops: &[AttachedOp]) {
    let max = geo.max_message();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for op in ops {
        match op {
            AttachedOp::Sender => {
                if let Ok(s) = att.sender() {
                    assert!(att.role().can_send());
                    assert!(s.id().index() < geo.max_subscribers());
                    senders.push(s);
                }
            }
            AttachedOp::Receiver => {
                if let Ok(r) = att.receiver() {
                    assert!(att.role().can_recv());
                    assert!(r.id().index() < geo.max_subscribers());
                    receivers.push(r);
                }
            }
            AttachedOp::Send(p, data) => {
                if let Some(s) = p.of_mut(&mut senders) {
                    let got = s.try_send(&data.0);
                    assert!(got.is_err() || data.0.len() <= max);
                }
            }
            AttachedOp::Batch(p, msgs) => {
                if let Some(s) = p.of_mut(&mut senders) {
                    let refs: Vec<&[u8]> = msgs.0.iter().map(|m| m.0.as_slice()).collect();
                    if let Ok(k) = s.try_send_batch(&refs) {
                        assert!(k <= refs.len());
                    }
                }
            }
            AttachedOp::Recv(p, buf) => {
                if let Some(r) = p.of_mut(&mut receivers) {
                    let mut b = vec![0u8; buf.0];
                    if let Ok(info) = r.try_recv(&mut b) {
                        assert!(info.len <= buf.0 && info.len <= max, "{info:?}");
                        assert!(info.message_len <= max, "{info:?}");
                    }
                }
            }
            AttachedOp::Read(p, off) => {
                if let Some(r) = p.of_mut(&mut receivers) {
                    if let Ok(slot) = r.try_read() {
                        assert!(slot.len() <= max);
                        let mut w = [0u8; 8];
                        let n = slot.read_at(off.0, &mut w);
                        assert_eq!(n, slot.len().saturating_sub(off.0).min(8));
                    }
                }
            }
            AttachedOp::Prepare(p) => {
                if let Some(r) = p.of_mut(&mut receivers) {
                    let _ = r.prepare_wait().map(|t| t.is_woken());
                }
            }
            AttachedOp::Finish(p) => {
                if let Some(r) = p.of_mut(&mut receivers) {
                    r.finish_wait();
                }
            }
            AttachedOp::DropSender(p) => {
                if !senders.is_empty() {
                    drop(senders.swap_remove(p.0 as usize % senders.len()));
                }
            }
            AttachedOp::DropReceiver(p) => {
                if !receivers.is_empty() {
                    drop(receivers.swap_remove(p.0 as usize % receivers.len()));
                }
            }
        }
    }
}

/// Everything a geometry promises about the regions it describes.
fn check_geometry(geo: &Geometry, words: &HeaderWords, control_len: u64, data_len: u64, cap: u32) {
    assert_eq!(geo.control_size() as u64, control_len, "control size");
    assert_eq!(geo.data_size() as u64, data_len, "data size");
    let capacity = geo.capacity();
    assert!(capacity.is_power_of_two() && capacity <= MAX_CAPACITY);
    assert_eq!(geo.mask(), capacity - 1);
    assert!(geo.max_message() >= 1);
    assert!(geo.max_message() <= cap.min(HARD_MAX_MESSAGE) as usize);
    assert_eq!(geo.slot_stride() % SLOT_ALIGN, 0);
    assert!(geo.slot_stride() >= SLOT_HEADER_SIZE + geo.max_message());
    assert_eq!(geo.payload_room(), geo.slot_stride() - SLOT_HEADER_SIZE);
    assert_eq!(
        (capacity as usize).checked_mul(geo.slot_stride()),
        Some(geo.data_size()),
        "slots fill the data region exactly"
    );
    let subs = geo.max_subscribers();
    assert!((1..=MAX_SUBSCRIBERS as usize).contains(&subs));
    assert!(geo.bitmap_words() * 64 >= subs);
    assert!(geo.bitmap_offset() >= CONTROL_HEADER_SIZE);
    assert!(geo.bitmap_offset() + geo.bitmap_words() * 8 <= geo.subscribers_offset());
    assert_eq!(geo.subscribers_offset() % SUBSCRIBER_ENTRY_SIZE, 0);
    assert!(geo.subscribers_offset() + subs * SUBSCRIBER_ENTRY_SIZE <= geo.control_size());
    assert_eq!(geo.mode().code(), words.mode);
    assert_eq!(geo.header_words(), *words, "the header round-trips");
    assert_eq!(
        Geometry::new(geo.mode(), capacity, geo.max_message() as u32, subs as u32),
        Ok(*geo),
        "decode accepts only what new computes"
    );
}

/// The header words, the state word, and the geometry if the words are
/// exactly what `Geometry::new` writes.
fn header_words(h: &Header) -> (HeaderWords, u32, Option<Geometry>) {
    match h {
        Header::Raw(bytes) => (
            HeaderWords::from_bytes(bytes).expect("56 bytes"),
            STATE_OPEN,
            None,
        ),
        Header::Valid {
            mode,
            capacity_log,
            max_message,
            subscribers,
            bend,
            open,
        } => {
            let geo = Geometry::new(mode.0, 1 << capacity_log.0, max_message.0, subscribers.0)
                .expect("bounded parameters make a valid geometry");
            let mut w = geo.header_words();
            let state = if *open { STATE_OPEN } else { 2 };
            let Some((word, how)) = bend else {
                return (w, state, Some(geo));
            };
            let bent = |x: u64| match *how {
                Bend::Set(v) => v,
                Bend::Add(d) => x.wrapping_add(d as i64 as u64),
                Bend::Shift(s) if s >= 0 => x.checked_shl(s as u32 % 64).unwrap_or(0),
                Bend::Shift(s) => x >> (s.unsigned_abs() % 64),
            };
            let b32 = |x: u32| bent(x as u64) as u32;
            match word {
                Word::Magic => w.magic = bent(w.magic),
                Word::Version => w.version = b32(w.version),
                Word::Mode => w.mode = b32(w.mode),
                Word::Capacity => w.capacity = bent(w.capacity),
                Word::SlotStride => w.slot_stride = b32(w.slot_stride),
                Word::MaxMessage => w.max_message = b32(w.max_message),
                Word::MaxSubscribers => w.max_subscribers = b32(w.max_subscribers),
                Word::Flags => w.flags = b32(w.flags),
                Word::ControlSize => w.control_size = bent(w.control_size),
                Word::DataSize => w.data_size = bent(w.data_size),
            }
            let same = w == geo.header_words();
            (w, state, same.then_some(geo))
        }
    }
}

fn region_len(spec: RegionLen, header: u64, limit: u64) -> u64 {
    match spec {
        RegionLen::AsHeader if header <= limit => header,
        RegionLen::AsHeader => limit,
        RegionLen::Near(d) => header.wrapping_add(d as i64 as u64).min(limit),
        RegionLen::Raw(x) => x as u64 % (limit + 1),
    }
}

fn sealed() -> Seals {
    Seals {
        sealing: true,
        flags: required(),
    }
}

fn seals_ok(flags: SealFlags) -> bool {
    flags.contains(required()) && !flags.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE)
}

/// A memfd of `len` bytes starting with `bytes`, plus 8-byte `fills`, then sealed.
fn memfd(bytes: &[u8], len: u64, fills: &[(u64, u64)], seals: Seals) -> OwnedFd {
    let flags = if seals.sealing {
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING
    } else {
        MemfdFlags::CLOEXEC
    };
    let fd = fs::memfd_create("fuzz", flags).expect("memfd_create");
    fs::ftruncate(&fd, len).expect("ftruncate");
    let mut file = std::fs::File::from(fd.try_clone().expect("dup"));
    file.write_all(&bytes[..bytes.len().min(len as usize)])
        .expect("write");
    for &(at, v) in fills {
        if at + 8 <= len {
            rustix::io::pwrite(&fd, &v.to_ne_bytes(), at).expect("pwrite");
        }
    }
    // Without ALLOW_SEALING this fails (EPERM): the memfd has F_SEAL_SEAL only.
    let _ = fs::fcntl_add_seals(&fd, seals.flags);
    fd
}

fn read_only(fd: &OwnedFd) -> OwnedFd {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, fs::Mode::empty()).expect("reopen O_RDONLY")
}

fn pipe() -> OwnedFd {
    let (r, _w) = rustix::pipe::pipe().expect("pipe");
    r
}

fn welcome(role: Role, mode: Mode, control_size: u64, data_size: u64) -> Vec<u8> {
    Message::Welcome {
        role,
        mode,
        control_size,
        data_size,
        creator_uid: 0,
        eventfds: 0,
    }
    .encode()
}
