//! The sleep / wake eventcount. No syscalls: this module decides *who* must
//! be woken and moves their wake words; the notify layer performs the wait
//! and the wake syscalls.
//!
//! # Protocol
//!
//! Receiver, after finding the ring empty ([`Receiver::prepare_wait`]):
//! 1. read its wake word `w` (broadcast: the channel-wide word; otherwise its
//!    entry's word);
//! 2. set its bit in the waiter bitmap (`fetch_or`, Release);
//! 3. `fence(SeqCst)`;
//! 4. re-check the ring; if something is there, clear the bit and receive;
//! 5. otherwise sleep until the wake word differs from `w` (or a timeout);
//!    then clear the bit ([`Receiver::finish_wait`]) and try again.
//!
//! Producer, after publishing (`seq` stored with Release)
//! ([`Producer::wake_set`](crate::Producer::wake_set)):
//! 1. `fence(SeqCst)`;
//! 2. load the bitmap (Acquire); no bit set: done, no write, no syscall;
//! 3. clear the bits of the receivers it wakes (`fetch_and`; a bit another
//!    producer cleared first is that producer's to wake), bump their wake
//!    word, and return them as a [`WakeSet`].
//!
//! **No lost wake-up.** The two fences are ordered in the single SeqCst
//! order. If the receiver's fence comes first, the producer's bitmap load
//! (after its fence) sees the bit (set before the receiver's fence). If the
//! producer's comes first, the receiver's re-check (after its fence) sees the
//! `seq` store (before the producer's fence), and it does not sleep. The
//! producer's `fetch_and` that takes the bit (Acquire) reads the receiver's
//! Release `fetch_or` (or a later value in its release sequence), so the
//! receiver's read of `w` happens before the producer's bump: `w` is the old
//! value, the word now differs, and the sleep returns at once (futex
//! compares the word inside the kernel). This is the io-uring
//! crate's `need_wakeup` argument (STYLE.md §4.4), with fences rather than
//! SeqCst accesses so loom checks it as written.
//!
//! **No needless wake-up.** While no receiver sleeps the bitmap is zero and
//! the producer stops at step 2.
//!
//! **One wake per publish.** Broadcast sleepers share the channel word: one
//! bump and (in the notify layer) one `FUTEX_WAKE` reach all of them. With
//! many futex sleepers the notify layer wakes one and leaves the others'
//! futex bitsets in [`WakeWords::relay`](crate::layout::WakeWords::relay)
//! for it to wake: the kernel wakes sleepers one by one, and the relay
//! moves that cost off the producer. The bump happens first either way, so
//! the argument above is unchanged: a sleeper not yet queued in the kernel
//! sees the moved word, one queued is woken by the producer or, later, by
//! the relay.

use core::fmt;

use crate::mode::Mode;
use crate::producer::Producer;
use crate::receiver::Receiver;
use crate::ring::{Ring, SubscriberId};
use crate::storage::Regions;
use crate::sync::atomic::{fence, AtomicU32, Ordering::*};

/// Largest bitmap (in words) a ring can have: `MAX_SUBSCRIBERS / 64`.
const MAX_WORDS: usize = (crate::layout::MAX_SUBSCRIBERS as usize).div_ceil(64);

/// A receiver's promise to sleep: the word to wait on and the value it had
/// before the receiver announced itself. Sleep while `word == expected`.
#[derive(Debug)]
pub struct WaitToken<'a> {
    word: &'a AtomicU32,
    expected: u32,
    broadcast: bool,
}

impl<'a> WaitToken<'a> {
    /// The futex word to wait on (in the control region).
    pub fn word(&self) -> &'a AtomicU32 {
        self.word
    }

    /// Sleep only while the word still holds this value.
    pub fn expected(&self) -> u32 {
        self.expected
    }

    /// Whether the word is the channel-wide broadcast word (shared by all
    /// broadcast sleepers) rather than the receiver's own.
    pub fn is_shared(&self) -> bool {
        self.broadcast
    }

    /// Whether the word has moved on (a wake happened since the token was
    /// taken). A backend that cannot compare atomically polls this.
    pub fn is_woken(&self) -> bool {
        // ORDERING(wake): Acquire; pairs with the Release bump in `bump`.
        self.word.load(Acquire) != self.expected
    }
}

impl<R: Regions> Receiver<R> {
    /// Announce that this receiver is about to sleep (steps 1–4 of the
    /// protocol). Returns `None` if there is something to receive after all
    /// (the bit is cleared again: just call `try_recv`), otherwise the token
    /// to sleep on. After sleeping, whatever woke it, call
    /// [`Receiver::finish_wait`].
    pub fn prepare_wait(&self) -> Option<WaitToken<'_>> {
        let hdr = self.ring.regions.header();
        let index = self.joined.id.index();
        let broadcast = self.ring.geo.mode() == Mode::Broadcast;
        let word = if broadcast {
            &hdr.wake.broadcast
        } else {
            &self.ring.regions.entry(index).wake
        };
        // Read before the bit is set: see the module doc.
        let expected = word.load(Relaxed);
        // ORDERING(eventcount): Release; pairs with the Acquire bitmap load in
        // `wake_after_publish`, so the read of `expected` above happens
        // before any bump that answers this bit.
        self.ring
            .regions
            .waiter_word(index / 64)
            .fetch_or(1 << (index % 64), Release);
        // ORDERING(eventcount): SeqCst fence; pairs with the fence in
        // `wake_after_publish`.
        fence(SeqCst);
        if self.is_ready() {
            self.finish_wait();
            return None;
        }
        Some(WaitToken {
            word,
            expected,
            broadcast,
        })
    }

    /// Withdraw from the waiter bitmap (after sleeping, or to cancel).
    pub fn finish_wait(&self) {
        let index = self.joined.id.index();
        self.ring
            .regions
            .waiter_word(index / 64)
            .fetch_and(!(1 << (index % 64)), Relaxed);
    }
}

/// Which sleepers a producer must wake, decided (and their wake words
/// bumped) by [`Producer::wake_set`](crate::Producer::wake_set).
#[derive(Clone, Copy)]
pub struct WakeSet {
    bits: [u64; MAX_WORDS],
    words: usize,
    broadcast: bool,
}

impl fmt::Debug for WakeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeSet")
            .field("broadcast", &self.broadcast)
            .field("count", &self.len())
            .finish()
    }
}

impl WakeSet {
    fn empty(broadcast: bool) -> Self {
        WakeSet {
            bits: [0; MAX_WORDS],
            words: 0,
            broadcast,
        }
    }

    /// Nobody to wake: no syscall needed.
    pub fn is_empty(&self) -> bool {
        self.bits[..self.words].iter().all(|&w| w == 0)
    }

    /// Number of receivers to wake.
    pub fn len(&self) -> usize {
        self.bits[..self.words]
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum()
    }

    /// Whether the woken receivers all sleep on the channel-wide broadcast
    /// word, so one wake of that word reaches them all.
    pub fn is_broadcast(&self) -> bool {
        self.broadcast
    }

    /// The receivers to wake.
    pub fn receivers(&self) -> impl Iterator<Item = SubscriberId> + '_ {
        self.bits[..self.words]
            .iter()
            .enumerate()
            .flat_map(|(w, &bits)| {
                (0..64)
                    .filter(move |b| bits & (1 << b) != 0)
                    .map(move |b| SubscriberId((w * 64 + b) as u32))
            })
    }

    /// A 32-bit mask of the woken receivers for `FUTEX_WAKE_BITSET` on the
    /// broadcast word (receiver `i` waits with bit `i % 32`).
    pub fn futex_mask(&self) -> u32 {
        let mut mask = 0u32;
        for id in self.receivers() {
            mask |= 1 << (id.0 % 32);
        }
        mask
    }
}

fn bump(word: &AtomicU32) {
    // ORDERING(wake): Release; pairs with the Acquire load in
    // WaitToken::is_woken (and the kernel's own ordering for futex waits).
    word.fetch_add(1, Release);
}

/// Producer side of the protocol (steps 1–3). `published` is the number of
/// messages just published (multicast wakes up to that many sleepers);
/// `target` restricts the wake to one receiver.
pub(crate) fn wake_after_publish<R: Regions>(
    ring: &Ring<R>,
    published: u64,
    target: Option<SubscriberId>,
) -> WakeSet {
    let mode = ring.geo.mode();
    let words = ring.geo.bitmap_words();
    let mut set = WakeSet::empty(mode == Mode::Broadcast);
    set.words = words;
    // ORDERING(eventcount): SeqCst fence; pairs with the fence in
    // Receiver::prepare_wait (module doc).
    fence(SeqCst);
    let mut seen = [0u64; MAX_WORDS];
    let mut any = false;
    for (w, slot) in seen.iter_mut().enumerate().take(words) {
        // ORDERING(eventcount): Acquire; pairs with the Release fetch_or in
        // prepare_wait.
        *slot = ring.regions.waiter_word(w).load(Acquire) & table_bits(ring, w);
        any |= *slot != 0;
    }
    if !any {
        return set;
    }
    if let Some(t) = target {
        let (w, b) = (t.index() / 64, 1u64 << (t.index() % 64));
        if w < words && seen[w] & b != 0 && take_bits(ring, w, b) != 0 {
            set.bits[w] = b;
        }
    } else {
        match mode {
            Mode::Broadcast | Mode::Unicast => {
                for (w, &bits) in seen.iter().enumerate().take(words) {
                    if bits != 0 {
                        set.bits[w] = take_bits(ring, w, bits);
                    }
                }
            }
            Mode::Multicast => pick_round_robin(ring, &seen[..words], published, &mut set),
        }
    }
    if set.is_empty() {
        return set;
    }
    if set.broadcast {
        bump(&ring.regions.header().wake.broadcast);
    } else {
        for id in set.receivers() {
            bump(&ring.regions.entry(id.index()).wake);
        }
    }
    set
}

/// The bits of waiter word `w` that stand for entries of the table. The
/// last word has padding bits past the last entry, which a peer may set:
/// they name no receiver, so they are ignored (a wake set must only name
/// table entries; the notify layer indexes per-entry state with it).
fn table_bits<R: Regions>(ring: &Ring<R>, w: usize) -> u64 {
    let entries = ring.geo.max_subscribers().saturating_sub(w * 64);
    if entries >= 64 {
        u64::MAX
    } else {
        (1u64 << entries) - 1
    }
}

/// Clear `bits` in waiter word `w`; returns the ones that were still set
/// (those are ours to wake).
fn take_bits<R: Regions>(ring: &Ring<R>, w: usize, bits: u64) -> u64 {
    // ORDERING(eventcount): Acquire. The RMW that takes the bit is what
    // must synchronise with the receiver's Release fetch_or (the earlier
    // load may have seen a stale bit of a previous wait): then the
    // receiver's read of its expected value happens before our bump, and it
    // cannot sleep on the bumped value.
    ring.regions.waiter_word(w).fetch_and(!bits, Acquire) & bits
}

/// Multicast: wake up to `n` sleepers, starting after the last one woken.
fn pick_round_robin<R: Regions>(ring: &Ring<R>, seen: &[u64], n: u64, set: &mut WakeSet) {
    let total = seen.len() * 64;
    let rr = &ring.regions.header().wake.round_robin;
    // A peer may store anything in the cursor: reduce it into range.
    let start = rr.load(Relaxed) as usize % total;
    let mut woken = 0;
    let mut last = None;
    for k in 0..total {
        if woken >= n {
            break;
        }
        let i = (start + k) % total;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if seen[w] & b != 0 && take_bits(ring, w, b) != 0 {
            set.bits[w] |= b;
            woken += 1;
            last = Some(i);
        }
    }
    if let Some(i) = last {
        rr.store(((i + 1) % total) as u32, Relaxed);
    }
}

/// The first half of [`wake_after_publish`]: the fence and the bitmap
/// loads, without building a wake set. `false` means nobody sleeps and
/// nothing needs doing; `true` means call `wake_set` (which fences and
/// reads again, then takes the bits).
#[inline]
pub(crate) fn any_sleepers_after_publish<R: Regions>(ring: &Ring<R>) -> bool {
    // ORDERING(eventcount): SeqCst fence; pairs with the fence in
    // Receiver::prepare_wait, exactly as in `wake_after_publish`.
    fence(SeqCst);
    let words = ring.geo.bitmap_words();
    // One load per 64 entries and no masking while every word reads 0 (the
    // common case: nobody asleep). A bit a peer set beyond the table only
    // sends us to the exact, masked check below.
    let mut any = 0;
    for w in 0..words {
        any |= ring.regions.waiter_word(w).load(Relaxed);
    }
    any != 0 && any_in_table(ring, words)
}

/// The exact check: a waiter bit of an entry inside the table.
#[cold]
#[inline(never)]
fn any_in_table<R: Regions>(ring: &Ring<R>, words: usize) -> bool {
    (0..words).any(|w| ring.regions.waiter_word(w).load(Relaxed) & table_bits(ring, w) != 0)
}

/// Wake every sleeper (after `close`).
pub(crate) fn wake_all<R: Regions>(ring: &Ring<R>) -> WakeSet {
    let words = ring.geo.bitmap_words();
    let mut set = WakeSet::empty(ring.geo.mode() == Mode::Broadcast);
    set.words = words;
    fence(SeqCst);
    for w in 0..words {
        set.bits[w] = ring.regions.waiter_word(w).swap(0, AcqRel) & table_bits(ring, w);
    }
    if !set.is_empty() {
        if set.broadcast {
            bump(&ring.regions.header().wake.broadcast);
        } else {
            for id in set.receivers() {
                bump(&ring.regions.entry(id.index()).wake);
            }
        }
    }
    set
}

impl<R: Regions> Producer<R> {
    /// Whether any receiver is asleep or about to sleep (one load per 64
    /// table entries). For statistics; `wake_set` does the real check.
    pub fn has_sleepers(&self) -> bool {
        let ring = self.ring();
        (0..ring.geo.bitmap_words())
            .any(|w| ring.regions.waiter_word(w).load(Relaxed) & table_bits(ring, w) != 0)
    }
}
