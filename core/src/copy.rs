//! Racy-safe byte copies in and out of shared payloads.
//!
//! A payload slot may be written by a peer process at any moment (a hostile
//! sender, or a producer reusing the slot while a multicast receiver that
//! lost its CAS is still copying). Plain `copy_nonoverlapping` over such
//! memory is a data race, which is undefined behaviour in Rust's memory model
//! even if the bytes are thrown away afterwards. So every access to payload
//! bytes here is an atomic access with `Relaxed` ordering: 8-byte words where
//! the address is aligned, single bytes at the unaligned edges. Relaxed is
//! enough because payload bytes never carry synchronisation themselves: they
//! are ordered by the slot's `seq` (Release store by the producer, Acquire
//! load by the receiver), and a copy that raced is discarded or clamped by the
//! caller. On x86-64 and aarch64 a Relaxed atomic load or store of a word is
//! an ordinary `mov` / `ldr`, so this costs no fences, only the vectorisation
//! a `memcpy` would have had.

use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::raw::{AtomicU64, AtomicU8};

/// Copy `src` into shared memory at `dst`.
///
/// # Safety
///
/// `dst` must be valid for writes of `src.len()` bytes for the duration of
/// the call, and those bytes may only ever be accessed atomically by others
/// (which holds for shared payloads: every accessor in this crate uses this
/// module, and other processes are outside our memory model).
pub(crate) unsafe fn store_bytes(dst: *mut u8, src: &[u8]) {
    let n = src.len();
    let mut i = 0;
    while i < n && (dst as usize + i) % 8 != 0 {
        // SAFETY: i < n, so dst + i is in the range the caller vouched for;
        // a u8 has alignment 1, so AtomicU8 needs no more than that.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Relaxed);
        i += 1;
    }
    while i + 8 <= n {
        let mut w = [0u8; 8];
        w.copy_from_slice(&src[i..i + 8]);
        // SAFETY: dst + i is 8-aligned (the loop above stopped there, and i
        // grows by 8) and dst + i .. dst + i + 8 lies within the caller's range.
        unsafe { AtomicU64::from_ptr(dst.add(i).cast::<u64>()) }
            .store(u64::from_ne_bytes(w), Relaxed);
        i += 8;
    }
    while i < n {
        // SAFETY: as in the first loop.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Relaxed);
        i += 1;
    }
}

/// Copy `dst.len()` bytes of shared memory at `src` into `dst`.
///
/// # Safety
///
/// `src` must be valid for reads of `dst.len()` bytes for the duration of the
/// call. Concurrent writers are allowed (that is the point); the bytes read
/// are then unspecified but initialised.
pub(crate) unsafe fn load_bytes(src: *const u8, dst: &mut [u8]) {
    let n = dst.len();
    let mut i = 0;
    while i < n && (src as usize + i) % 8 != 0 {
        // SAFETY: i < n keeps src + i within the caller's range; AtomicU8
        // has alignment 1. The pointer is only read through.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Relaxed);
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: src + i is 8-aligned and the 8 bytes lie within the
        // caller's range; we only load through the pointer.
        let w = unsafe { AtomicU64::from_ptr(src.add(i).cast::<u64>().cast_mut()) }.load(Relaxed);
        dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
        i += 8;
    }
    while i < n {
        // SAFETY: as in the first loop.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Relaxed);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_alignment_and_length() {
        let mut shared = [0u64; 16];
        let base = shared.as_mut_ptr().cast::<u8>();
        for offset in 0..9 {
            for len in 0..40 {
                let src: [u8; 40] = core::array::from_fn(|i| (i * 7 + offset + len) as u8);
                // SAFETY: offset + len <= 48 < 128 bytes of `shared`.
                unsafe { store_bytes(base.add(offset), &src[..len]) };
                let mut out = [0u8; 40];
                // SAFETY: as above.
                unsafe { load_bytes(base.add(offset), &mut out[..len]) };
                assert_eq!(&out[..len], &src[..len], "offset {offset} len {len}");
            }
        }
    }
}
