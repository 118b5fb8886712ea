// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ModExp} from "./ModExp.sol";

/// @title X25519
/// @notice The X25519 function of RFC 7748 (Montgomery ladder over
///         Curve25519), so a fraud proof can re-derive a pairwise mask seed
///         from a reconstructed secret key and a posted public key. Inputs and
///         output are the RFC's 32-byte little-endian encodings. Checked
///         against PyNaCl (libsodium) and the RFC's test vectors.
library X25519 {
    uint256 internal constant P = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed;
    uint256 internal constant A24 = 121665;

    /// @notice X25519(k, u) with RFC 7748 clamping of k and masking of u.
    function scalarMult(bytes32 kLe, bytes32 uLe) internal view returns (bytes32) {
        uint256 k = reverseBytes(uint256(kLe));
        k &= ~uint256(7);
        k &= (uint256(1) << 255) - 1;
        k |= uint256(1) << 254;
        uint256 u = reverseBytes(uint256(uLe)) & ((uint256(1) << 255) - 1);
        return bytes32(reverseBytes(ladder(k, u % P)));
    }

    /// @dev RFC 7748 §5 ladder; the step is in assembly to keep the
    ///      eleven live field elements off Solidity's stack limit.
    function ladder(uint256 k, uint256 x1) internal view returns (uint256) {
        uint256 x2;
        uint256 z2;
        assembly ("memory-safe") {
            let p := P
            x2 := 1
            z2 := 0
            let x3 := x1
            let z3 := 1
            let swap := 0
            for { let t := 255 } gt(t, 0) { t := sub(t, 1) } {
                let kt := and(shr(sub(t, 1), k), 1)
                swap := xor(swap, kt)
                // Constant-time-style conditional swap (timing is public on-chain anyway).
                let m := sub(0, swap)
                let dx := and(xor(x2, x3), m)
                x2 := xor(x2, dx)
                x3 := xor(x3, dx)
                let dz := and(xor(z2, z3), m)
                z2 := xor(z2, dz)
                z3 := xor(z3, dz)
                swap := kt
                let a := addmod(x2, z2, p)
                let aa := mulmod(a, a, p)
                let b := addmod(x2, sub(p, z2), p)
                let bb := mulmod(b, b, p)
                let e := addmod(aa, sub(p, bb), p)
                let da := mulmod(addmod(x3, sub(p, z3), p), a, p)
                let cb := mulmod(addmod(x3, z3, p), b, p)
                let s := addmod(da, cb, p)
                x3 := mulmod(s, s, p)
                let df := addmod(da, sub(p, cb), p)
                z3 := mulmod(x1, mulmod(df, df, p), p)
                x2 := mulmod(aa, bb, p)
                z2 := mulmod(e, addmod(aa, mulmod(A24, e, p), p), p)
            }
            let m := sub(0, swap)
            x2 := xor(x2, and(xor(x2, x3), m))
            z2 := xor(z2, and(xor(z2, z3), m))
        }
        return mulmod(x2, ModExp.modexp(z2, P - 2, P), P);
    }

    /// @notice Reverse the byte order of a 256-bit word (little <-> big endian).
    function reverseBytes(uint256 v) internal pure returns (uint256) {
        v = ((v & 0xFF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00) >> 8)
            | ((v & 0x00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF) << 8);
        v = ((v & 0xFFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000) >> 16)
            | ((v & 0x0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF) << 16);
        v = ((v & 0xFFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000) >> 32)
            | ((v & 0x00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF00000000FFFFFFFF) << 32);
        v = ((v & 0xFFFFFFFFFFFFFFFF0000000000000000FFFFFFFFFFFFFFFF0000000000000000) >> 64)
            | ((v & 0x0000000000000000FFFFFFFFFFFFFFFF0000000000000000FFFFFFFFFFFFFFFF) << 64);
        return (v >> 128) | (v << 128);
    }
}
