//! Racy-safe byte copies in and out of shared payloads.
//!
//! A payload slot may be written by a peer process at any moment (a hostile
//! sender, or a producer reusing the slot while a multicast receiver that
//! lost its CAS is still copying). Plain `copy_nonoverlapping` over such
//! memory is a data race, which is undefined behaviour in Rust's memory model
//! even if the bytes are thrown away afterwards. So every access to payload
//! bytes here is an atomic access with `Relaxed` ordering, and always of the
//! *same size*: whole 8-byte words (Rust forbids racing atomic accesses of
//! different sizes to the same bytes). Payloads start 8-aligned (slots are
//! 64-aligned, the slot header is 32 bytes) and their room is a multiple of
//! 8, so every byte of a payload belongs to exactly one word of it. A write
//! that covers part of a word loads the word, changes its bytes and stores
//! it back: the writer owns the slot, so no other write can interleave
//! (a peer that writes anyway only garbles its own message).
//!
//! Relaxed is enough because payload bytes never carry synchronisation
//! themselves: they are ordered by the slot's `seq` (Release store by the
//! producer, Acquire by the receiver), and a copy that raced is discarded or
//! clamped by the caller. Word loads are also what a read-only mapping
//! allows (Rust permits Relaxed atomic loads of at most 8 bytes there).
//! On x86-64 and aarch64 a Relaxed word load or store is a plain `mov` /
//! `ldr` / `str`.

use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::raw::AtomicU64;

/// The word of the payload at `base` that holds byte `at`.
///
/// # Safety
///
/// `base` is 8-aligned and the word `at / 8` lies within the memory the
/// caller vouched for.
#[inline]
unsafe fn word<'a>(base: *mut u8, at: usize) -> &'a AtomicU64 {
    // SAFETY: per the contract, base + (at & !7) is 8-aligned, in bounds,
    // and only ever accessed atomically as a u64.
    unsafe { AtomicU64::from_ptr(base.add(at & !7).cast::<u64>()) }
}

/// Copy `src` into the payload at `base`, starting at byte `offset`.
///
/// # Safety
///
/// `base` is 8-aligned and valid for reads and writes of
/// `(offset + src.len())` rounded up to a multiple of 8 bytes for the
/// duration of the call; those bytes are only ever accessed as atomic u64
/// words by anyone in this process (every accessor uses this module). The
/// caller owns the slot (no concurrent writer in this process).
pub(crate) unsafe fn store_bytes(base: *mut u8, offset: usize, src: &[u8]) {
    let end = offset + src.len();
    let mut at = offset;
    // A partial first word: merge into what is there.
    if at % 8 != 0 && at < end {
        let start = at % 8;
        let n = (8 - start).min(end - at);
        // SAFETY: at < end, so the word holding byte `at` is in bounds.
        let w = unsafe { word(base, at) };
        let mut bytes = w.load(Relaxed).to_ne_bytes();
        bytes[start..start + n].copy_from_slice(&src[..n]);
        w.store(u64::from_ne_bytes(bytes), Relaxed);
        at += n;
    }
    // Whole words: constant-size conversions, so each is one load from
    // `src` and one store (no per-word memcpy call).
    while at + 8 <= end {
        let i = at - offset;
        let chunk: [u8; 8] = src[i..i + 8].try_into().expect("8 bytes");
        let v = u64::from_ne_bytes(chunk);
        // SAFETY: at + 8 <= end, in bounds; `at` is 8-aligned here.
        unsafe { word(base, at) }.store(v, Relaxed);
        at += 8;
    }
    // A partial last word.
    if at < end {
        let n = end - at;
        // SAFETY: at < end.
        let w = unsafe { word(base, at) };
        let mut bytes = w.load(Relaxed).to_ne_bytes();
        bytes[..n].copy_from_slice(&src[at - offset..]);
        w.store(u64::from_ne_bytes(bytes), Relaxed);
    }
}

/// Copy `dst.len()` bytes of the payload at `base`, starting at byte
/// `offset`, into `dst`.
///
/// # Safety
///
/// `base` is 8-aligned and valid for reads of `(offset + dst.len())`
/// rounded up to a multiple of 8 bytes for the duration of the call (it may
/// be mapped read-only). Concurrent writers are allowed (that is the
/// point); the bytes read are then unspecified but initialised.
pub(crate) unsafe fn load_bytes(base: *const u8, offset: usize, dst: &mut [u8]) {
    let end = offset + dst.len();
    let base = base.cast_mut();
    let mut at = offset;
    if at % 8 != 0 && at < end {
        let start = at % 8;
        let n = (8 - start).min(end - at);
        // SAFETY: as in store_bytes; we only load through the pointer.
        let bytes = unsafe { word(base, at) }.load(Relaxed).to_ne_bytes();
        dst[..n].copy_from_slice(&bytes[start..start + n]);
        at += n;
    }
    while at + 8 <= end {
        let i = at - offset;
        // SAFETY: as in store_bytes; we only load through the pointer.
        let bytes = unsafe { word(base, at) }.load(Relaxed).to_ne_bytes();
        let d: &mut [u8; 8] = (&mut dst[i..i + 8]).try_into().expect("8 bytes");
        *d = bytes;
        at += 8;
    }
    if at < end {
        let n = end - at;
        // SAFETY: as in store_bytes; we only load through the pointer.
        let bytes = unsafe { word(base, at) }.load(Relaxed).to_ne_bytes();
        dst[at - offset..].copy_from_slice(&bytes[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_offset_and_length() {
        let mut shared = [0u64; 16];
        let base = shared.as_mut_ptr().cast::<u8>();
        for offset in 0..17 {
            for len in 0..40 {
                let src: [u8; 40] = core::array::from_fn(|i| (i * 7 + offset + len) as u8);
                // Bytes around the write must survive it.
                let mut before = [0u8; 128];
                // SAFETY: 128 bytes of `shared`, 8-aligned.
                unsafe { load_bytes(base, 0, &mut before) };
                // SAFETY: offset + len <= 56 < 128 bytes of `shared`.
                unsafe { store_bytes(base, offset, &src[..len]) };
                let mut out = [0u8; 40];
                // SAFETY: as above.
                unsafe { load_bytes(base, offset, &mut out[..len]) };
                assert_eq!(&out[..len], &src[..len], "offset {offset} len {len}");
                let mut after = [0u8; 128];
                // SAFETY: as above.
                unsafe { load_bytes(base, 0, &mut after) };
                assert_eq!(&after[..offset], &before[..offset]);
                assert_eq!(&after[offset + len..], &before[offset + len..]);
            }
        }
    }
}
