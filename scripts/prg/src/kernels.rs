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
/// Generic over the sink so that each use is compiled into the kernels' loops.
#[inline]
pub fn run<F: FnMut(usize, &[u64; 4])>(k: Kernel, seed: &[u8; 32], first: u64, blocks: usize, sink: &mut F) {
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

/// ρ offsets by lane index x + 5y (inlined as literals in `permute`).
#[cfg_attr(not(test), allow(dead_code))]
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

/// keccak-f[1600] on each lane of `a` (θ ρ π χ ι, 24 rounds), as loops: the
/// readable form, kept as the tests' check on `permute`.
#[cfg(test)]
pub unsafe fn permute_loops<T: Lanes>(a: &mut [T; 25]) {
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

/// keccak-f[1600] on each lane of `a`: the loops of `permute_loops`, unrolled
/// by hand so every index and rotation is a constant for every vector width.
#[inline(always)]
pub unsafe fn permute<T: Lanes>(a: &mut [T; 25]) {
    for &rc in RC.iter() {
        let c0 = T::xor(T::xor3(a[0], a[5], a[10]), T::xor(a[15], a[20]));
        let c1 = T::xor(T::xor3(a[1], a[6], a[11]), T::xor(a[16], a[21]));
        let c2 = T::xor(T::xor3(a[2], a[7], a[12]), T::xor(a[17], a[22]));
        let c3 = T::xor(T::xor3(a[3], a[8], a[13]), T::xor(a[18], a[23]));
        let c4 = T::xor(T::xor3(a[4], a[9], a[14]), T::xor(a[19], a[24]));
        let d0 = T::xor(c4, T::rol(c1, 1));
        let d1 = T::xor(c0, T::rol(c2, 1));
        let d2 = T::xor(c1, T::rol(c3, 1));
        let d3 = T::xor(c2, T::rol(c4, 1));
        let d4 = T::xor(c3, T::rol(c0, 1));
        let b0 = T::xor(a[0], d0);
        let b1 = T::rol(T::xor(a[6], d1), 44);
        let b2 = T::rol(T::xor(a[12], d2), 43);
        let b3 = T::rol(T::xor(a[18], d3), 21);
        let b4 = T::rol(T::xor(a[24], d4), 14);
        let b5 = T::rol(T::xor(a[3], d3), 28);
        let b6 = T::rol(T::xor(a[9], d4), 20);
        let b7 = T::rol(T::xor(a[10], d0), 3);
        let b8 = T::rol(T::xor(a[16], d1), 45);
        let b9 = T::rol(T::xor(a[22], d2), 61);
        let b10 = T::rol(T::xor(a[1], d1), 1);
        let b11 = T::rol(T::xor(a[7], d2), 6);
        let b12 = T::rol(T::xor(a[13], d3), 25);
        let b13 = T::rol(T::xor(a[19], d4), 8);
        let b14 = T::rol(T::xor(a[20], d0), 18);
        let b15 = T::rol(T::xor(a[4], d4), 27);
        let b16 = T::rol(T::xor(a[5], d0), 36);
        let b17 = T::rol(T::xor(a[11], d1), 10);
        let b18 = T::rol(T::xor(a[17], d2), 15);
        let b19 = T::rol(T::xor(a[23], d3), 56);
        let b20 = T::rol(T::xor(a[2], d2), 62);
        let b21 = T::rol(T::xor(a[8], d3), 55);
        let b22 = T::rol(T::xor(a[14], d4), 39);
        let b23 = T::rol(T::xor(a[15], d0), 41);
        let b24 = T::rol(T::xor(a[21], d1), 2);
        a[0] = T::chi(b0, b1, b2);
        a[1] = T::chi(b1, b2, b3);
        a[2] = T::chi(b2, b3, b4);
        a[3] = T::chi(b3, b4, b0);
        a[4] = T::chi(b4, b0, b1);
        a[5] = T::chi(b5, b6, b7);
        a[6] = T::chi(b6, b7, b8);
        a[7] = T::chi(b7, b8, b9);
        a[8] = T::chi(b8, b9, b5);
        a[9] = T::chi(b9, b5, b6);
        a[10] = T::chi(b10, b11, b12);
        a[11] = T::chi(b11, b12, b13);
        a[12] = T::chi(b12, b13, b14);
        a[13] = T::chi(b13, b14, b10);
        a[14] = T::chi(b14, b10, b11);
        a[15] = T::chi(b15, b16, b17);
        a[16] = T::chi(b16, b17, b18);
        a[17] = T::chi(b17, b18, b19);
        a[18] = T::chi(b18, b19, b15);
        a[19] = T::chi(b19, b15, b16);
        a[20] = T::chi(b20, b21, b22);
        a[21] = T::chi(b21, b22, b23);
        a[22] = T::chi(b22, b23, b24);
        a[23] = T::chi(b23, b24, b20);
        a[24] = T::chi(b24, b20, b21);
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
    pub unsafe fn avx2_blocks<F: FnMut(usize, &[u64; 4])>(seed: &[u64; 4], first: u64, blocks: usize,
                              sink: &mut F) -> usize {
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
    pub unsafe fn avx512_blocks<F: FnMut(usize, &[u64; 4])>(seed: &[u64; 4], first: u64, blocks: usize,
                                sink: &mut F) -> usize {
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
        let mut z = x;
        keccak::f1600(&mut x);
        unsafe { permute(&mut y) };
        unsafe { permute_loops(&mut z) };
        assert_eq!(x, y);
        assert_eq!(x, z);
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
