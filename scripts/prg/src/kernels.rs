//! keccak-f[1600] over one (portable) or several (SIMD) counter blocks.

/// Which implementation computes the permutations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Portable,
    Avx2,
    Avx512,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }

    pub fn from_name(s: &str) -> Option<Kernel> {
        [Kernel::Portable, Kernel::Avx2, Kernel::Avx512].into_iter().find(|k| k.name() == s)
    }

    /// Whether this CPU has the instructions the kernel needs.
    pub fn available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The state of keccak256(seed ‖ uint256_be(counter)) before its one
/// permutation: 64 message bytes, then the pad10*1 bits of Keccak (0x01 …
/// 0x80, as the EVM's KECCAK256; not SHA3's 0x06) at the end of the 136-byte rate.
#[inline(always)]
pub fn initial_state(seed: &[u64; 4], counter: u64) -> [u64; 25] {
    let mut s = [0u64; 25];
    s[..4].copy_from_slice(seed);
    // bytes 32..56 of the uint256 are zero for a 64-bit counter; bytes 56..64
    // are its big-endian encoding, read as a little-endian lane.
    s[7] = counter.swap_bytes();
    s[8] = 0x01;
    s[16] = 0x80 << 56;
    s
}

pub fn seed_lanes(seed: &[u8; 32]) -> [u64; 4] {
    core::array::from_fn(|i| u64::from_le_bytes(seed[8 * i..8 * i + 8].try_into().unwrap()))
}

/// Calls `sink(j, first four lanes of block first + j)` for j in 0..blocks, in order.
pub fn run(k: Kernel, seed: &[u8; 32], first: u64, blocks: usize, sink: &mut dyn FnMut(usize, &[u64; 4])) {
    let sl = seed_lanes(seed);
    let done = match k {
        Kernel::Portable => 0,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if k.available() => unsafe { x86::avx2_blocks(&sl, first, blocks, sink) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if k.available() => unsafe { x86::avx512_blocks(&sl, first, blocks, sink) },
        _ => 0,
    };
    for j in done..blocks {
        let mut s = initial_state(&sl, first + j as u64);
        keccak::f1600(&mut s);
        sink(j, &[s[0], s[1], s[2], s[3]]);
    }
}

/// Round constants of keccak-f[1600] (FIPS 202 §3.2.5).
pub const RC: [u64; 24] = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808a, 0x8000000080008000,
    0x000000000000808b, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008a, 0x0000000000000088, 0x0000000080008009, 0x000000008000000a,
    0x000000008000808b, 0x800000000000008b, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800a, 0x800000008000000a,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
];

/// ρ offsets by lane index x + 5y.
pub const RHO: [u32; 25] = [
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
];

/// The operations the permutation needs on a vector of independent lanes.
pub trait Lanes: Copy {
    unsafe fn splat(x: u64) -> Self;
    unsafe fn xor(a: Self, b: Self) -> Self;
    unsafe fn xor3(a: Self, b: Self, c: Self) -> Self;
    unsafe fn rol(a: Self, n: u32) -> Self;
    /// a ^ (!b & c)
    unsafe fn chi(a: Self, b: Self, c: Self) -> Self;
}

impl Lanes for u64 {
    #[inline(always)]
    unsafe fn splat(x: u64) -> Self { x }
    #[inline(always)]
    unsafe fn xor(a: Self, b: Self) -> Self { a ^ b }
    #[inline(always)]
    unsafe fn xor3(a: Self, b: Self, c: Self) -> Self { a ^ b ^ c }
    #[inline(always)]
    unsafe fn rol(a: Self, n: u32) -> Self { a.rotate_left(n) }
    #[inline(always)]
    unsafe fn chi(a: Self, b: Self, c: Self) -> Self { a ^ (!b & c) }
}

/// keccak-f[1600] on each lane of `a` (θ ρ π χ ι, 24 rounds).
#[inline(always)]
pub unsafe fn permute<T: Lanes>(a: &mut [T; 25]) {
    for &rc in RC.iter() {
        let c: [T; 5] = core::array::from_fn(|x| {
            T::xor(T::xor3(a[x], a[x + 5], a[x + 10]), T::xor(a[x + 15], a[x + 20]))
        });
        let d: [T; 5] = core::array::from_fn(|x| T::xor(c[(x + 4) % 5], T::rol(c[(x + 1) % 5], 1)));
        let mut b = a.clone();
        for y in 0..5 {
            for x in 0..5 {
                // π: lane (x, y) goes to (y, 2x + 3y)
                b[y + 5 * ((2 * x + 3 * y) % 5)] = T::rol(T::xor(a[x + 5 * y], d[x]), RHO[x + 5 * y]);
            }
        }
        for y in 0..5 {
            for x in 0..5 {
                a[x + 5 * y] = T::chi(b[x + 5 * y], b[(x + 1) % 5 + 5 * y], b[(x + 2) % 5 + 5 * y]);
            }
        }
        a[0] = T::xor(a[0], T::splat(rc));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{permute, Lanes, RC};
    use core::arch::x86_64::*;

    #[derive(Clone, Copy)]
    struct V4(__m256i);
    #[derive(Clone, Copy)]
    struct V8(__m512i);

    impl Lanes for V4 {
        #[inline(always)]
        unsafe fn splat(x: u64) -> Self { V4(_mm256_set1_epi64x(x as i64)) }
        #[inline(always)]
        unsafe fn xor(a: Self, b: Self) -> Self { V4(_mm256_xor_si256(a.0, b.0)) }
        #[inline(always)]
        unsafe fn xor3(a: Self, b: Self, c: Self) -> Self { V4(_mm256_xor_si256(_mm256_xor_si256(a.0, b.0), c.0)) }
        #[inline(always)]
        unsafe fn rol(a: Self, n: u32) -> Self {
            // constant after unrolling; LLVM turns these into immediate shifts
            let l = _mm256_sllv_epi64(a.0, _mm256_set1_epi64x(n as i64));
            let r = _mm256_srlv_epi64(a.0, _mm256_set1_epi64x((64 - n) as i64));
            V4(_mm256_or_si256(l, r))
        }
        #[inline(always)]
        unsafe fn chi(a: Self, b: Self, c: Self) -> Self { V4(_mm256_xor_si256(a.0, _mm256_andnot_si256(b.0, c.0))) }
    }

    impl Lanes for V8 {
        #[inline(always)]
        unsafe fn splat(x: u64) -> Self { V8(_mm512_set1_epi64(x as i64)) }
        #[inline(always)]
        unsafe fn xor(a: Self, b: Self) -> Self { V8(_mm512_xor_si512(a.0, b.0)) }
        #[inline(always)]
        unsafe fn xor3(a: Self, b: Self, c: Self) -> Self { V8(_mm512_ternarylogic_epi64::<0x96>(a.0, b.0, c.0)) }
        #[inline(always)]
        unsafe fn rol(a: Self, n: u32) -> Self { V8(_mm512_rolv_epi64(a.0, _mm512_set1_epi64(n as i64))) }
        #[inline(always)]
        unsafe fn chi(a: Self, b: Self, c: Self) -> Self { V8(_mm512_ternarylogic_epi64::<0xD2>(a.0, b.0, c.0)) }
    }

    const _: () = assert!(RC.len() == 24);

    /// Whole batches of 4 blocks; returns how many blocks it did.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2_blocks(seed: &[u64; 4], first: u64, blocks: usize,
                              sink: &mut dyn FnMut(usize, &[u64; 4])) -> usize {
        const W: usize = 4;
        let mut j = 0;
        while j + W <= blocks {
            let ctr: [u64; W] = core::array::from_fn(|i| (first + (j + i) as u64).swap_bytes());
            let mut s = [V4::splat(0); 25];
            for i in 0..4 {
                s[i] = V4::splat(seed[i]);
            }
            s[7] = V4(_mm256_loadu_si256(ctr.as_ptr() as *const __m256i));
            s[8] = V4::splat(0x01);
            s[16] = V4::splat(0x80 << 56);
            permute(&mut s);
            let mut o = [[0u64; W]; 4];
            for l in 0..4 {
                _mm256_storeu_si256(o[l].as_mut_ptr() as *mut __m256i, s[l].0);
            }
            for i in 0..W {
                sink(j + i, &[o[0][i], o[1][i], o[2][i], o[3][i]]);
            }
            j += W;
        }
        j
    }

    /// Whole batches of 8 blocks; returns how many blocks it did.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512_blocks(seed: &[u64; 4], first: u64, blocks: usize,
                                sink: &mut dyn FnMut(usize, &[u64; 4])) -> usize {
        const W: usize = 8;
        let mut j = 0;
        while j + W <= blocks {
            let ctr: [u64; W] = core::array::from_fn(|i| (first + (j + i) as u64).swap_bytes());
            let mut s = [V8::splat(0); 25];
            for i in 0..4 {
                s[i] = V8::splat(seed[i]);
            }
            s[7] = V8(_mm512_loadu_si512(ctr.as_ptr() as *const __m512i));
            s[8] = V8::splat(0x01);
            s[16] = V8::splat(0x80 << 56);
            permute(&mut s);
            let mut o = [[0u64; W]; 4];
            for l in 0..4 {
                _mm512_storeu_si512(o[l].as_mut_ptr() as *mut __m512i, s[l].0);
            }
            for i in 0..W {
                sink(j + i, &[o[0][i], o[1][i], o[2][i], o[3][i]]);
            }
            j += W;
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_permutation_equals_rustcrypto() {
        let mut x: [u64; 25] = core::array::from_fn(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut y = x;
        keccak::f1600(&mut x);
        unsafe { permute(&mut y) };
        assert_eq!(x, y);
    }

    #[test]
    fn known_answer_zero_seed_counter_zero() {
        // keccak256 of 64 zero bytes (a standard vector)
        let mut s = initial_state(&[0; 4], 0);
        keccak::f1600(&mut s);
        let mut d = [0u8; 32];
        for i in 0..4 {
            d[8 * i..8 * i + 8].copy_from_slice(&s[i].to_le_bytes());
        }
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5");
    }

    #[test]
    fn vector_kernels_equal_portable() {
        let seed: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for k in [Kernel::Avx2, Kernel::Avx512] {
            if !k.available() {
                continue;
            }
            for (first, n) in [(0u64, 0usize), (0, 1), (5, 7), (9, 8), (1 << 33, 9), (u64::MAX - 40, 41 * 8), (3, 1000)] {
                let mut a = vec![1u32; n];
                let mut b = vec![1u32; n];
                crate::apply(Kernel::Portable, &seed, first, &mut a, crate::Op::Add);
                crate::apply(k, &seed, first, &mut b, crate::Op::Add);
                assert_eq!(a, b, "{k:?} first={first} n={n}");
            }
        }
    }
}
