// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title MaskMath
/// @notice The byte-exact encodings of DESIGN §4, shared with
///         coordinator/_encoding.py:
///
///  * vectors are uint32 elements in Z_2^32, little-endian, zero-padded to a
///    whole number of chunks of `chunkElems` elements (a multiple of 8);
///  * leaf(c) = keccak256(uint32 c big-endian ‖ chunk bytes);
///  * the Merkle tree is index-based: leaves padded with bytes32(0) to a power
///    of two, parent = keccak256(left ‖ right), a one-leaf tree's root is the
///    leaf;
///  * PRG(seed) is keccak256 in counter mode: block j = keccak256(seed ‖
///    uint256 j), and element g is the little-endian uint32 at bytes
///    [4(g mod 8), 4(g mod 8) + 4) of block ⌊g / 8⌋.
///
/// Arithmetic works on 32-byte words holding 8 lanes: `toLanes` swaps the
/// bytes of each 4-byte lane so that lane carries run the EVM's way, and
/// `laneAdd`/`laneSub` add or subtract 8 elements mod 2^32 at once (SWAR).
library MaskMath {
    uint256 private constant H = 0x8000000080000000800000008000000080000000800000008000000080000000;
    uint256 private constant M8 = 0xFF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00FF00;
    uint256 private constant M16 = 0xFFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000;

    /// @notice Swap the byte order inside each 4-byte lane (an involution).
    function toLanes(uint256 w) internal pure returns (uint256) {
        w = ((w & M8) >> 8) | ((w & ~M8) << 8);
        return ((w & M16) >> 16) | ((w & ~M16) << 16);
    }

    /// @notice Lane-wise a + b mod 2^32.
    function laneAdd(uint256 a, uint256 b) internal pure returns (uint256) {
        // Adding the low 31 bits of each lane cannot carry into the next lane.
        unchecked {
            return ((a & ~H) + (b & ~H)) ^ ((a ^ b) & H);
        }
    }

    /// @notice Lane-wise a - b mod 2^32.
    function laneSub(uint256 a, uint256 b) internal pure returns (uint256) {
        // (a | H) >= 2^31 > (b & ~H) in every lane, so no borrow crosses lanes.
        unchecked {
            return ((a | H) - (b & ~H)) ^ ((a ^ ~b) & H);
        }
    }

    /// @notice PRG block j of `seed`, in lane form.
    function prgBlock(bytes32 seed, uint256 j) internal pure returns (uint256 w) {
        assembly ("memory-safe") {
            mstore(0x00, seed)
            mstore(0x20, j)
            w := keccak256(0x00, 0x40)
        }
        w = toLanes(w);
    }

    /// @notice The Merkle leaf of chunk `index`.
    function leaf(uint256 index, bytes calldata chunk) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(uint32(index), chunk));
    }

    /// @notice Whether `leafHash` sits at `index` under `root`.
    function verify(bytes32 root, bytes32 leafHash, uint256 index, bytes32[] calldata proof)
        internal
        pure
        returns (bool)
    {
        bytes32 h = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            h = (index & 1) == 0
                ? keccak256(abi.encodePacked(h, proof[i]))
                : keccak256(abi.encodePacked(proof[i], h));
            index >>= 1;
        }
        return index == 0 && h == root;
    }

    /// @notice Word `k` of a calldata chunk, in lane form.
    function chunkWord(bytes calldata chunk, uint256 k) internal pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := calldataload(add(chunk.offset, mul(k, 32)))
        }
        w = toLanes(w);
    }

    /// @notice acc[k] += word k of `chunk` (lane form), for every word of acc.
    /// @dev Hot loop of the chunk proof, in assembly: no bounds checks (acc
    ///      and chunk lengths are checked by the caller) and no call overhead.
    function accumulate(uint256[] memory acc, bytes calldata chunk) internal pure {
        assembly ("memory-safe") {
            let words := mload(acc)
            let ptr := add(acc, 0x20)
            let src := chunk.offset
            for { let k := 0 } lt(k, words) { k := add(k, 1) } {
                let w := calldataload(add(src, shl(5, k)))
                w := or(shr(8, and(w, M8)), shl(8, and(w, not(M8))))
                w := or(shr(16, and(w, M16)), shl(16, and(w, not(M16))))
                let q := add(ptr, shl(5, k))
                let a := mload(q)
                mstore(q, xor(add(and(a, not(H)), and(w, not(H))), and(xor(a, w), H)))
            }
        }
    }

    /// @notice acc -= PRG(seed) (or += when `plus`) over blocks
    ///         [firstBlock, firstBlock + acc.length).
    function applyMask(uint256[] memory acc, bytes32 seed, uint256 firstBlock, bool plus) internal pure {
        assembly ("memory-safe") {
            let words := mload(acc)
            let ptr := add(acc, 0x20)
            mstore(0x00, seed)
            for { let k := 0 } lt(k, words) { k := add(k, 1) } {
                mstore(0x20, add(firstBlock, k))
                let m := keccak256(0x00, 0x40)
                m := or(shr(8, and(m, M8)), shl(8, and(m, not(M8))))
                m := or(shr(16, and(m, M16)), shl(16, and(m, not(M16))))
                let q := add(ptr, shl(5, k))
                let a := mload(q)
                switch plus
                case 0 { a := xor(sub(or(a, H), and(m, not(H))), and(xor(a, not(m)), H)) }
                default { a := xor(add(and(a, not(H)), and(m, not(H))), and(xor(a, m), H)) }
                mstore(q, a)
            }
        }
    }

    /// @notice One word of the next global adapter (DESIGN §3.6), lane-wise
    ///         (a + trunc(int32(s) / n)) mod 2^32, a = previous adapter, s =
    ///         Σx, n = Σ n_u >= 1 (lane form in and out). Mirrors
    ///         coordinator._encoding.next_adapter.
    function nextAdapterWord(uint256 a, uint256 s, int256 n) internal pure returns (uint256 out) {
        // Each lane is read as 32 bits and masked back to 32 bits; with n >= 1,
        // |trunc(s / n)| <= 2^31, so nothing here can overflow int256.
        unchecked {
            for (uint256 sh = 0; sh < 256; sh += 32) {
                int256 si = int256(int32(uint32(s >> sh)));
                int256 ai = int256(uint256(uint32(a >> sh)));
                out |= (uint256(ai + si / n) & 0xFFFFFFFF) << sh;
            }
        }
    }
}
