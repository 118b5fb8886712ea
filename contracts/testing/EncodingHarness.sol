// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Feldman} from "../lib/Feldman.sol";
import {MaskGraph} from "../lib/MaskGraph.sol";
import {MaskMath} from "../lib/MaskMath.sol";
import {X25519} from "../lib/X25519.sol";

/// @title EncodingHarness
/// @notice Exposes the encoding libraries so tests can run the Solidity and
///         Python implementations on the same inputs. Not deployed in
///         production.
contract EncodingHarness {
    function graph(bytes32 seed, uint256 n, uint256 t) external pure returns (uint256 k, uint256[] memory pos) {
        k = MaskGraph.degree(n, t);
        pos = MaskGraph.positions(seed, n, k);
    }

    function leaf(uint256 index, bytes calldata chunk) external pure returns (bytes32) {
        return MaskMath.leaf(index, chunk);
    }

    function verify(bytes32 root, bytes32 leafHash, uint256 index, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return MaskMath.verify(root, leafHash, index, proof);
    }

    /// @notice PRG elements [8*firstBlock, 8*(firstBlock+blocks)) as LE bytes.
    function prg(bytes32 seed, uint256 firstBlock, uint256 blocks) external pure returns (bytes memory out) {
        out = new bytes(32 * blocks);
        for (uint256 j = 0; j < blocks; ++j) {
            uint256 w = MaskMath.toLanes(MaskMath.prgBlock(seed, firstBlock + j));
            assembly ("memory-safe") {
                mstore(add(add(out, 32), mul(j, 32)), w)
            }
        }
    }

    /// @notice Element-wise a + b and a - b mod 2^32 of two LE-encoded chunks.
    function addSub(bytes calldata a, bytes calldata b) external pure returns (bytes memory sum, bytes memory diff) {
        uint256 words = a.length / 32;
        sum = new bytes(a.length);
        diff = new bytes(a.length);
        for (uint256 k = 0; k < words; ++k) {
            uint256 x = MaskMath.chunkWord(a, k);
            uint256 y = MaskMath.chunkWord(b, k);
            uint256 s = MaskMath.toLanes(MaskMath.laneAdd(x, y));
            uint256 d = MaskMath.toLanes(MaskMath.laneSub(x, y));
            assembly ("memory-safe") {
                mstore(add(add(sum, 32), mul(k, 32)), s)
                mstore(add(add(diff, 32), mul(k, 32)), d)
            }
        }
    }

    /// @notice Element-wise next adapter of two LE-encoded chunks (MaskMath.nextAdapterWord).
    function nextAdapter(bytes calldata prev, bytes calldata sum, uint64 n) external pure returns (bytes memory out) {
        uint256 words = sum.length / 32;
        out = new bytes(sum.length);
        for (uint256 k = 0; k < words; ++k) {
            uint256 w = MaskMath.toLanes(
                MaskMath.nextAdapterWord(MaskMath.chunkWord(prev, k), MaskMath.chunkWord(sum, k), int256(uint256(n)))
            );
            assembly ("memory-safe") {
                mstore(add(add(out, 32), mul(k, 32)), w)
            }
        }
    }

    function x25519(bytes32 k, bytes32 u) external view returns (bytes32) {
        return X25519.scalarMult(k, u);
    }

    function x25519Gas(bytes32 k, bytes32 u) external view returns (uint256 used) {
        uint256 g = gasleft();
        X25519.scalarMult(k, u);
        used = g - gasleft();
    }

    /// @notice Gas of expanding and subtracting one PRG stream over `words` words.
    function maskGas(bytes32 seed, uint256 words) external view returns (uint256 used) {
        uint256[] memory acc = new uint256[](words);
        uint256 g = gasleft();
        MaskMath.applyMask(acc, seed, 0, false);
        used = g - gasleft();
    }

    /// @notice Feldman.verifyShare and the gas it used (coordinator/_feldman.py).
    function feldmanShare(bytes calldata commitments, uint256 threshold, uint256 x, uint256 share)
        external
        view
        returns (bool ok, uint256 used)
    {
        uint256 g = gasleft();
        ok = Feldman.verifyShare(commitments, threshold, x, share);
        used = g - gasleft();
    }

    /// @notice Feldman.secretMatches and the gas it used.
    function feldmanSecret(bytes calldata commitments, uint256 threshold, uint256 secret)
        external
        view
        returns (bool ok, uint256 used)
    {
        uint256 g = gasleft();
        ok = Feldman.secretMatches(commitments, threshold, secret);
        used = g - gasleft();
    }
}
