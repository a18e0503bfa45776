//! Multicast (competing consumers): read the shared head `h`, check
//! `seq == h + 1`, copy the payload out with a racy-safe copy, then CAS
//! `head h -> h + 1`. The winner keeps its copy; a loser discards it and
//! tries the next position. Because the head only moves after the copy, a
//! receiver that dies mid-read blocks nobody (unlike claiming first, as
//! crossbeam's ArrayQueue does). The copy may race with a producer reusing
//! the slot once someone else advanced the head; then our CAS fails (the head
//! is no longer `h`, and it never moves back), so a torn copy is never
//! delivered.

use crate::error::TryRecvError;
use crate::receiver::{MessageInfo, Receiver, SlotSnapshot};
use crate::storage::Regions;
use crate::sync::atomic::{fence, Ordering::*};
use crate::sync::Backoff;

/// Most turns of one `try_recv`'s loop.
const MAX_TURNS: u64 = 4096;

pub(crate) fn try_recv<R: Regions>(
    rx: &Receiver<R>,
    buf: &mut [u8],
) -> Result<MessageInfo, TryRecvError> {
    let ring = &rx.ring;
    let geo = &ring.geo;
    let hdr = ring.regions.header();
    let backoff = Backoff::new();
    // Each failed CAS means another receiver consumed a message, so the loop
    // makes global progress; the bound only guards against a peer that keeps
    // rewriting the head (then we report Empty and the caller retries). It
    // is capped so that a `try_recv` stays short in a big ring too (a peer
    // that parked the head on a reused slot made one take 4 × capacity
    // backed-off turns: seconds at 2^20 slots); the skip records a call
    // steps over are consumed, so the next call goes on from there.
    for _ in 0..(4 * geo.capacity() + 64).min(MAX_TURNS) {
        let h = hdr.head.load(Relaxed);
        let slot = ring.regions.slot(geo.slot_of(h));
        // ORDERING(publish): Relaxed load + Acquire fence (the data region
        // may be mapped read-only); pairs with the Release store of seq in
        // Producer::publish.
        let seq = slot.seq.load(Relaxed);
        fence(Acquire);
        if seq != h.wrapping_add(1) {
            let ahead = seq.wrapping_sub(h.wrapping_add(1));
            if ahead != 0 && ahead < (1 << 63) {
                // The slot was reused: our head value is stale. Reload.
                backoff.spin();
                continue;
            }
            return Err(rx.empty_or_closed());
        }
        let snap = SlotSnapshot::read(slot, geo.max_message());
        let deliver = snap.flags & crate::layout::SLOT_FLAG_SKIP == 0;
        let n = if deliver { snap.len.min(buf.len()) } else { 0 };
        // SAFETY: n <= len <= max_message <= payload_room. Not exclusive: the
        // slot may be reused under us if we lose the CAS below.
        unsafe {
            ring.regions
                .read_payload(geo.slot_of(h), 0, &mut buf[..n], false)
        };
        // ORDERING(head): Release on success; pairs with the Acquire load of
        // head in Producer::claim_inner, so our copy happens before the
        // slot's reuse. Relaxed on failure: the copy is thrown away.
        match hdr
            .head
            .compare_exchange(h, h.wrapping_add(1), Release, Relaxed)
        {
            Ok(_) => {
                if !deliver {
                    continue; // A skip record: consumed, nothing to hand out.
                }
                let count = rx.received.get().wrapping_add(1);
                rx.received.set(count);
                ring.regions
                    .entry(rx.joined.id.index())
                    .received
                    .store(count, Relaxed);
                return Ok(snap.info(h, n));
            }
            Err(_) => backoff.spin(),
        }
    }
    Err(TryRecvError::Empty)
}
