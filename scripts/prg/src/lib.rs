//! fedledger's keccak256-CTR PRG (DESIGN §4, `coordinator._encoding.prg`).
//!
//! Block j of PRG(seed) is keccak256(seed ‖ uint256_be(j)); element g is the
//! little-endian uint32 at bytes [4(g mod 8), +4) of block ⌊g/8⌋. The message
//! is 64 bytes, so every block is one keccak-f[1600] permutation of a state
//! that is known in advance except for one lane (the counter's low 8 bytes):
//! we build that state directly instead of going through a hashing object.
//!
//! Kernels: `portable` is RustCrypto's `keccak::f1600`, one block at a time;
//! `avx2` (4 blocks) and `avx512` (8 blocks) run the same permutation on
//! independent counters in the lanes of a vector register. The vector kernels
//! are ours and are checked against `portable` at first use (and in the tests);
//! a mismatch disables them.

use std::sync::OnceLock;

mod kernels;

pub use kernels::Kernel;

/// Elements per block (32 bytes of a keccak256 digest).
pub const BLOCK_ELEMS: usize = 8;

/// What to do with each PRG element at position g of `out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Set,
    Add,
    Sub,
}

/// The best kernel this CPU runs that agrees with `portable`.
pub fn best_kernel() -> Kernel {
    static BEST: OnceLock<Kernel> = OnceLock::new();
    *BEST.get_or_init(|| {
        for k in [Kernel::Avx512, Kernel::Avx2] {
            if k.available() && self_check(k) {
                return k;
            }
        }
        Kernel::Portable
    })
}

fn self_check(k: Kernel) -> bool {
    let seed: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let n = 8 * 37 + 5; // more than one batch of every width, and a partial block
    for first in [0u64, 0xFFFF_FFFF_FFFF_FF00, 1 << 40] {
        let mut a = vec![0u32; n];
        let mut b = vec![0u32; n];
        apply(Kernel::Portable, &seed, first, &mut a, Op::Set);
        apply(k, &seed, first, &mut b, Op::Set);
        if a != b {
            return false;
        }
    }
    true
}

/// Applies elements [8·first, 8·first + out.len()) of PRG(seed) to `out`.
///
/// Panics if a counter would pass 2^64 − 1 (callers check; the Python side
/// falls back to its own path for such starts).
pub fn apply(k: Kernel, seed: &[u8; 32], first: u64, out: &mut [u32], op: Op) {
    let blocks = out.len().div_ceil(BLOCK_ELEMS) as u64;
    assert!(blocks == 0 || first.checked_add(blocks - 1).is_some(), "PRG counter overflows 64 bits");
    match op {
        Op::Set => apply_with(k, seed, first, out, |_, w| w),
        Op::Add => apply_with(k, seed, first, out, u32::wrapping_add),
        Op::Sub => apply_with(k, seed, first, out, u32::wrapping_sub),
    }
}

#[inline(always)]
fn apply_with(k: Kernel, seed: &[u8; 32], first: u64, out: &mut [u32], f: impl Fn(u32, u32) -> u32) {
    let blocks = out.len().div_ceil(BLOCK_ELEMS);
    let whole = out.len() / BLOCK_ELEMS;
    let (head, tail) = out.split_at_mut(whole * BLOCK_ELEMS);
    let mut sink = |j: usize, lanes: &[u64; 4]| {
        // lanes are little-endian: element 2i is the low half of lane i
        let dst: &mut [u32] = if j < whole { &mut head[j * BLOCK_ELEMS..(j + 1) * BLOCK_ELEMS] } else { &mut *tail };
        for (i, d) in dst.iter_mut().enumerate() {
            *d = f(*d, (lanes[i / 2] >> (32 * (i % 2))) as u32);
        }
    };
    kernels::run(k, seed, first, blocks, &mut sink);
}

/// The 32·blocks bytes of blocks first … first + blocks − 1.
pub fn blocks_bytes(k: Kernel, seed: &[u8; 32], first: u64, out: &mut [u8]) {
    assert!(out.len() % 32 == 0);
    let blocks = out.len() / 32;
    assert!(blocks == 0 || first.checked_add(blocks as u64 - 1).is_some(), "PRG counter overflows 64 bits");
    let mut sink = |j: usize, lanes: &[u64; 4]| {
        for (i, l) in lanes.iter().enumerate() {
            out[32 * j + 8 * i..32 * j + 8 * i + 8].copy_from_slice(&l.to_le_bytes());
        }
    };
    kernels::run(k, seed, first, blocks, &mut sink);
}

#[cfg(feature = "python")]
mod python;
