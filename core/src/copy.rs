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
//!
//! On x86-64, runs of 64 bytes or more go through [`wide::copy_blocks`]
//! instead: an inline-assembly loop of unaligned 16-byte SSE2 loads and
//! stores (part of the x86-64 baseline), or, from 512 bytes and where the
//! CPU and the OS support AVX (checked once, with `cpuid` and `xgetbv`), of
//! 32-byte AVX ones.
//! Measured on the project's EPYC VM, hot in cache, a 4 KiB copy takes
//! ~85 ns with SSE2 against ~140–180 ns word by word, 32 KiB ~730 ns
//! against ~1,200 ns (`rep movsb`, which glibc's `memcpy` uses from a few
//! KiB, took 1.5–2.3 µs for 4 KiB there); between processes, the busy-poll
//! one-way latency of a 32 KiB message went from 1.24–1.27x the raw
//! `memcpy` floor with SSE2 to 0.93–0.99x with AVX (`shmcast-bench --only
//! latency`). The compiler treats an `asm!` block as opaque code whose
//! effect must be one some sequence of Rust operations could have had; the
//! loop's is that of Relaxed 8-byte atomic loads and stores of the same
//! words this module accesses everywhere else (on the shared side the
//! words are 8-aligned), so the racy-safety argument above is unchanged.
//! The wide loops are left out under Miri (no inline assembly there) and in
//! fuzzing builds (ASan does not see into `asm!`): those run the word loop.

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

/// The wide copy loops, x86-64 only.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(miri),
    not(fuzzing)
))]
mod wide {
    use crate::sync::raw::AtomicU8;

    /// Bytes per iteration of [`copy_blocks`].
    pub(super) const BLOCK: usize = 64;

    /// Copies from this long take the AVX loop (where usable).
    const AVX_FROM: usize = 512;

    /// Copy `len` bytes, a non-zero multiple of [`BLOCK`], from `src` to
    /// `dst` with unaligned 32-byte (AVX) or 16-byte (SSE2) loads and stores.
    ///
    /// # Safety
    ///
    /// `src` is valid for reads and `dst` for writes of `len` bytes, the two
    /// ranges do not overlap, and any range in shared memory starts 8-aligned
    /// (see the module doc for why racing peers are then harmless).
    #[inline]
    pub(super) unsafe fn copy_blocks(dst: *mut u8, src: *const u8, len: usize) {
        debug_assert!(len != 0 && len % BLOCK == 0);
        // Short copies stay in the inline SSE2 loop: the AVX one is a call
        // (a `target_feature` function is not inlined into baseline code)
        // whose C-ABI clobbers make the caller spill its registers, which
        // costs more than 32-byte moves save on a few lines.
        if len >= AVX_FROM && avx_usable() {
            // SAFETY: AVX is supported by the CPU and enabled by the OS
            // (checked above); the rest is our caller's contract.
            unsafe { copy_blocks_avx(dst, src, len) }
        } else {
            // SAFETY: our caller's contract.
            unsafe { copy_blocks_sse2(dst, src, len) }
        }
    }

    /// # Safety
    ///
    /// As [`copy_blocks`], and the CPU and OS support AVX.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn copy_blocks_avx(dst: *mut u8, src: *const u8, len: usize) {
        if len == 0 {
            return;
        }
        // The loop reads exactly src..src+len and writes exactly
        // dst..dst+len (len a non-zero multiple of 64, so `sub` reaches 0
        // and ends it). `vzeroupper` (which leaves the upper halves clean
        // for SSE code that follows) changes the upper bits of *every*
        // vector register, so the block declares the C ABI's clobbers, all
        // vector registers at whatever width the target has, rather than
        // only the two it names: a caller compiled with AVX enabled may keep
        // a 256-bit value live across the copy (a review found that
        // miscompile with the two scratch registers declared alone).
        // `clobber_abi` needs explicit registers for the operands.
        // SAFETY: in bounds per the contract (above); no stack; clobbers declared.
        unsafe {
            core::arch::asm!(
                "2:",
                "vmovdqu ymm0, ymmword ptr [rsi]",
                "vmovdqu ymm1, ymmword ptr [rsi + 32]",
                "vmovdqu ymmword ptr [rdi], ymm0",
                "vmovdqu ymmword ptr [rdi + 32], ymm1",
                "add rsi, 64",
                "add rdi, 64",
                "sub rcx, 64",
                "jnz 2b",
                "vzeroupper",
                inout("rsi") src => _,
                inout("rdi") dst => _,
                inout("rcx") len => _,
                clobber_abi("C"),
                options(nostack),
            );
        }
    }

    /// # Safety
    ///
    /// As [`copy_blocks`].
    #[inline]
    pub(super) unsafe fn copy_blocks_sse2(dst: *mut u8, src: *const u8, len: usize) {
        if len == 0 {
            return;
        }
        // SAFETY: as in copy_blocks_avx, with 16-byte registers (SSE2 is
        // part of the x86-64 baseline).
        unsafe {
            core::arch::asm!(
                "2:",
                "movdqu {a}, xmmword ptr [{s}]",
                "movdqu {b}, xmmword ptr [{s} + 16]",
                "movdqu {c}, xmmword ptr [{s} + 32]",
                "movdqu {d}, xmmword ptr [{s} + 48]",
                "movdqu xmmword ptr [{t}], {a}",
                "movdqu xmmword ptr [{t} + 16], {b}",
                "movdqu xmmword ptr [{t} + 32], {c}",
                "movdqu xmmword ptr [{t} + 48], {d}",
                "add {s}, 64",
                "add {t}, 64",
                "sub {n}, 64",
                "jnz 2b",
                s = inout(reg) src => _,
                t = inout(reg) dst => _,
                n = inout(reg) len => _,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                d = out(xmm_reg) _,
                options(nostack),
            );
        }
    }

    /// Whether AVX may be used (see [`super::cpu_has`]).
    static AVX: AtomicU8 = AtomicU8::new(0);

    /// Whether the CPU supports AVX and the OS saves its registers.
    #[inline]
    pub(super) fn avx_usable() -> bool {
        super::cpu_has(&AVX, detect_avx)
    }

    #[cold]
    fn detect_avx() -> bool {
        // `__cpuid` is safe from Rust 1.87; our MSRV needs the block.
        #[allow(unused_unsafe)]
        // SAFETY: every x86-64 CPU has `cpuid`, and leaf 1 always exists.
        let leaf1 = unsafe { core::arch::x86_64::__cpuid(1) };
        let osxsave = leaf1.ecx & (1 << 27) != 0;
        let avx = leaf1.ecx & (1 << 28) != 0;
        if !(osxsave && avx) {
            return false;
        }
        let (lo, _hi): (u32, u32);
        // SAFETY: OSXSAVE is set, so `xgetbv` is enabled; it reads XCR0
        // into eax:edx and touches no memory.
        unsafe {
            core::arch::asm!(
                "xgetbv",
                in("ecx") 0u32,
                out("eax") lo,
                out("edx") _hi,
                options(nomem, nostack, preserves_flags),
            );
        }
        // XCR0 bit 1: SSE state, bit 2: AVX state; both saved by the OS.
        lo & 0b110 == 0b110
    }
}

/// Ask the CPU to bring the cache line holding `p` into this core's cache
/// in a writable state (x86-64 `PREFETCHW`, where the CPU has it; nothing
/// elsewhere). A hint only: `p` need not point anywhere valid, and no
/// memory is read or written, so it cannot race with a peer.
#[inline]
pub(crate) fn prefetch_for_write(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(fuzzing)))]
    if prefetchw::usable() {
        // PREFETCHW never faults, whatever the address, and changes no
        // register, flag or memory contents, only where the line is cached.
        // SAFETY: a hint (above), on a CPU that has it (checked above).
        unsafe {
            core::arch::asm!(
                "prefetchw [{}]",
                in(reg) p,
                options(nostack, preserves_flags, readonly)
            )
        };
    }
    let _ = p;
}

/// A CPU feature, checked once: `flag` caches `detect`'s answer (0 = not
/// checked yet, 1 = no, 2 = yes).
#[cfg(all(target_arch = "x86_64", not(miri), not(fuzzing)))]
#[inline]
fn cpu_has(flag: &crate::sync::raw::AtomicU8, detect: fn() -> bool) -> bool {
    // Relaxed: every thread that checks computes the same answer.
    match flag.load(Relaxed) {
        2 => true,
        1 => false,
        _ => {
            let yes = detect();
            flag.store(if yes { 2 } else { 1 }, Relaxed);
            yes
        }
    }
}

/// Whether the CPU has `PREFETCHW` (checked once).
#[cfg(all(target_arch = "x86_64", not(miri), not(fuzzing)))]
mod prefetchw {
    use crate::sync::raw::AtomicU8;

    /// See [`super::cpu_has`].
    static PRFCHW: AtomicU8 = AtomicU8::new(0);

    #[inline]
    pub(super) fn usable() -> bool {
        super::cpu_has(&PRFCHW, detect)
    }

    #[cold]
    fn detect() -> bool {
        // `__cpuid` is safe from Rust 1.87; our MSRV needs the block.
        #[allow(unused_unsafe)]
        // SAFETY: every x86-64 CPU has `cpuid` and its extended leaf 0.
        let max = unsafe { core::arch::x86_64::__cpuid(0x8000_0000) }.eax;
        if max < 0x8000_0001 {
            return false;
        }
        #[allow(unused_unsafe)]
        // SAFETY: leaf 0x8000_0001 exists (checked above).
        let ext = unsafe { core::arch::x86_64::__cpuid(0x8000_0001) };
        // ECX bit 8: PRFCHW (3DNowPrefetch), which includes PREFETCHW.
        ext.ecx & (1 << 8) != 0
    }
}

/// Copy the whole 64-byte blocks of `len` bytes from `src` to `dst`;
/// returns how many bytes were copied (0 where there is no wide loop).
///
/// # Safety
///
/// As [`wide::copy_blocks`], for the first `len` bytes.
#[inline]
unsafe fn copy_wide(dst: *mut u8, src: *const u8, len: usize) -> usize {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "sse2",
        not(miri),
        not(fuzzing)
    ))]
    {
        let bulk = len & !(wide::BLOCK - 1);
        if bulk != 0 {
            // SAFETY: bulk <= len, so the caller's contract covers it.
            unsafe { wide::copy_blocks(dst, src, bulk) };
        }
        bulk
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "sse2",
        not(miri),
        not(fuzzing)
    )))]
    {
        let _ = (dst, src, len);
        0
    }
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
#[inline]
pub(crate) unsafe fn store_bytes(base: *mut u8, offset: usize, src: &[u8]) {
    if offset % 8 != 0 {
        // SAFETY: the same contract.
        return unsafe { store_bytes_general(base, offset, src) };
    }
    // SAFETY: base + offset is 8-aligned and valid for the bytes of `src`
    // rounded up to whole words (contract); `src` is caller memory.
    let done = unsafe { copy_wide(base.add(offset), src.as_ptr(), src.len()) };
    let mut at = offset + done;
    let end = offset + src.len();
    while at + 8 <= end {
        let i = at - offset;
        let chunk: [u8; 8] = src[i..i + 8].try_into().expect("8 bytes");
        // SAFETY: at + 8 <= end, in bounds; `at` is 8-aligned.
        unsafe { word(base, at) }.store(u64::from_ne_bytes(chunk), Relaxed);
        at += 8;
    }
    if at < end {
        // SAFETY: at < end, so the word holding byte `at` is in bounds.
        let w = unsafe { word(base, at) };
        let mut bytes = w.load(Relaxed).to_ne_bytes();
        for (b, s) in bytes.iter_mut().zip(&src[at - offset..]) {
            *b = *s;
        }
        w.store(u64::from_ne_bytes(bytes), Relaxed);
    }
}

/// [`store_bytes`] for any offset (a partial first word).
///
/// # Safety
///
/// As [`store_bytes`].
#[cold]
unsafe fn store_bytes_general(base: *mut u8, offset: usize, src: &[u8]) {
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
    // Whole 64-byte blocks, where there is a wide loop. base + at is
    // 8-aligned (at % 8 == 0 or at == end here) and in bounds with the
    // end - at bytes after it; `src` has those bytes from index at - offset;
    // a caller's slice never overlaps shared memory it is copying into.
    // SAFETY: as just said: both ranges valid and disjoint, shared side 8-aligned.
    at += unsafe { copy_wide(base.add(at), src.as_ptr().add(at - offset), end - at) };
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
#[inline]
pub(crate) unsafe fn load_bytes(base: *const u8, offset: usize, dst: &mut [u8]) {
    if offset % 8 != 0 {
        // SAFETY: the same contract.
        return unsafe { load_bytes_general(base, offset, dst) };
    }
    let len = dst.len();
    // SAFETY: as in store_bytes, with the roles of the two sides swapped.
    let done = unsafe { copy_wide(dst.as_mut_ptr(), base.add(offset), len) };
    let base = base.cast_mut();
    let mut at = offset + done;
    let end = offset + len;
    while at + 8 <= end {
        let i = at - offset;
        // SAFETY: as in store_bytes; we only load through the pointer.
        let bytes = unsafe { word(base, at) }.load(Relaxed).to_ne_bytes();
        let d: &mut [u8; 8] = (&mut dst[i..i + 8]).try_into().expect("8 bytes");
        *d = bytes;
        at += 8;
    }
    if at < end {
        // SAFETY: as in store_bytes; we only load through the pointer.
        let bytes = unsafe { word(base, at) }.load(Relaxed).to_ne_bytes();
        for (d, b) in dst[at - offset..].iter_mut().zip(bytes) {
            *d = b;
        }
    }
}

/// [`load_bytes`] for any offset (a partial first word).
///
/// # Safety
///
/// As [`load_bytes`].
#[cold]
unsafe fn load_bytes_general(base: *const u8, offset: usize, dst: &mut [u8]) {
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
    // SAFETY: as in store_bytes, with the roles of the two sides swapped.
    at += unsafe { copy_wide(dst.as_mut_ptr().add(at - offset), base.add(at), end - at) };
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

    /// `PREFETCHW` is used exactly where the CPU has it, and as a hint it
    /// is harmless at any address, mapped or not.
    #[cfg(all(target_arch = "x86_64", not(miri), not(fuzzing)))]
    #[test]
    fn prefetch_for_write_is_a_hint() {
        extern crate std;
        // Linux names the CPUID bit (PRFCHW) `3dnowprefetch`.
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap();
        let listed = flags.split_whitespace().any(|f| f == "3dnowprefetch");
        assert_eq!(prefetchw::usable(), listed);
        let mut line = [0u8; 64];
        prefetch_for_write(line.as_ptr());
        prefetch_for_write(core::ptr::null());
        prefetch_for_write(usize::MAX as *const u8);
        line[0] = 1;
        assert_eq!(line[0], 1);
    }

    /// Both wide loops, whichever one `copy_blocks` picks on this machine.
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "sse2",
        not(miri),
        not(fuzzing)
    ))]
    #[test]
    fn sse2_and_avx_loops_copy_exactly() {
        let src: [u8; 4104] = core::array::from_fn(|i| (i * 31 + 7) as u8);
        for len in [64, 128, 192, 4096] {
            for skew in [0, 1, 8] {
                let mut dst = [0xEEu8; 4112];
                // SAFETY: both ranges are in bounds and disjoint.
                unsafe {
                    wide::copy_blocks_sse2(dst.as_mut_ptr().add(1), src.as_ptr().add(skew), len)
                };
                assert_eq!(&dst[1..1 + len], &src[skew..skew + len]);
                assert_eq!(dst[0], 0xEE);
                assert_eq!(dst[1 + len], 0xEE);
                if wide::avx_usable() {
                    let mut dst2 = [0xEEu8; 4112];
                    // SAFETY: as above, and AVX is usable.
                    unsafe {
                        wide::copy_blocks_avx(dst2.as_mut_ptr().add(1), src.as_ptr().add(skew), len)
                    };
                    assert_eq!(dst2, dst);
                }
            }
        }
    }

    #[test]
    fn round_trip_every_offset_and_length() {
        // Lengths past 3 x 64 bytes cover the wide loop (x86-64) with every
        // head and tail remainder; misaligned caller slices too.
        const ROOM: usize = 320;
        let mut shared = [0u64; ROOM / 8];
        let base = shared.as_mut_ptr().cast::<u8>();
        let mut src_buf = [0u8; 260];
        let mut out_buf = [0u8; 260];
        for offset in 0..17 {
            for len in 0..220 {
                let skew = (offset + len) % 5;
                for (i, b) in src_buf.iter_mut().enumerate() {
                    *b = (i * 7 + offset + len) as u8;
                }
                let src = &src_buf[skew..skew + len];
                // Bytes around the write must survive it.
                let mut before = [0u8; ROOM];
                // SAFETY: ROOM bytes of `shared`, 8-aligned.
                unsafe { load_bytes(base, 0, &mut before) };
                // SAFETY: offset + len < 240 <= ROOM bytes of `shared`.
                unsafe { store_bytes(base, offset, src) };
                let out = &mut out_buf[skew..skew + len];
                // SAFETY: as above.
                unsafe { load_bytes(base, offset, out) };
                assert_eq!(&*out, src, "offset {offset} len {len}");
                let mut after = [0u8; ROOM];
                // SAFETY: as above.
                unsafe { load_bytes(base, 0, &mut after) };
                assert_eq!(&after[..offset], &before[..offset]);
                assert_eq!(&after[offset + len..], &before[offset + len..]);
                assert_eq!(&after[offset..offset + len], src);
            }
        }
    }
}
