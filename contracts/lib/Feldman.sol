// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Feldman
/// @notice Feldman commitments over BN254's G1 through the EIP-196 precompiles
///         (ecAdd 0x06, 150 gas; ecMul 0x07, 6,000 gas): a share (x, s) of a
///         dealer's polynomial with commitments C_0 … C_{t-1} (C_j = a_j·G)
///         is valid iff s·G = Σ_j x^j·C_j, and a claimed secret iff
///         secret·G = C_0. Points are 64 bytes, x ‖ y big-endian (the
///         precompiles' encoding; infinity is 64 zero bytes), as
///         coordinator/_feldman.py encodes them; `commitments` is their
///         concatenation, t·64 bytes. A commitment that is not a G1 point
///         makes a precompile fail: every function here then answers false
///         (the dealer's fault) and never reverts.
library Feldman {
    /// @notice BN254's group order: shares and secrets are below it.
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @notice BN254's base-field prime: point coordinates are below it.
    uint256 internal constant Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583;
    // EIP-1108 prices with headroom; a bounded stipend so nothing can burn a proof's gas.
    uint256 private constant MUL_GAS = 10_000;
    uint256 private constant ADD_GAS = 1_000;

    /// @notice Whether (x, share) lies on the polynomial committed to by
    ///         exactly `threshold` points. Horner from C_{t-1}: t - 1 ecMul by
    ///         x and t - 1 ecAdd, plus share·G.
    function verifyShare(bytes memory commitments, uint256 threshold, uint256 x, uint256 share)
        internal
        view
        returns (bool)
    {
        if (threshold == 0 || commitments.length != threshold * 64) return false;
        if (x == 0 || x >= R || share >= R) return false;
        if (!_allValid(commitments, threshold)) return false;
        (uint256 ax, uint256 ay) = _point(commitments, threshold - 1);
        bool ok = true;
        for (uint256 j = threshold - 1; ok && j > 0; --j) {
            (ax, ay, ok) = _mul(ax, ay, x);
            (uint256 cx, uint256 cy) = _point(commitments, j - 1);
            if (ok) (ax, ay, ok) = _add(ax, ay, cx, cy);
        }
        if (!ok) return false;
        (uint256 sx, uint256 sy, bool ok2) = _mul(1, 2, share);
        return ok2 && sx == ax && sy == ay;
    }

    /// @notice Whether `secret` is the committed f(0): secret·G = C_0 (and
    ///         every other commitment is a G1 point, as a share check would
    ///         require: a dealer whose commitments are malformed is at fault).
    function secretMatches(bytes memory commitments, uint256 threshold, uint256 secret)
        internal
        view
        returns (bool)
    {
        if (threshold == 0 || commitments.length != threshold * 64 || secret >= R) return false;
        if (!_allValid(commitments, threshold)) return false;
        (uint256 cx, uint256 cy) = _point(commitments, 0);
        (uint256 sx, uint256 sy, bool ok) = _mul(1, 2, secret);
        return ok && sx == cx && sy == cy;
    }

    /// @dev Checked before any precompile call: a precompile given an invalid
    ///      point fails and burns the gas it was given.
    function _allValid(bytes memory commitments, uint256 threshold) private pure returns (bool) {
        for (uint256 j = 0; j < threshold; ++j) {
            (uint256 px, uint256 py) = _point(commitments, j);
            if (!_valid(px, py)) return false;
        }
        return true;
    }

    /// @notice Whether (px, py) is the point at infinity or on y² = x³ + 3
    ///         with both coordinates below Q (G1 has cofactor 1).
    function _valid(uint256 px, uint256 py) private pure returns (bool) {
        if (px >= Q || py >= Q) return false;
        if (px == 0 && py == 0) return true;
        return mulmod(py, py, Q) == addmod(mulmod(mulmod(px, px, Q), px, Q), 3, Q);
    }

    function _point(bytes memory commitments, uint256 j) private pure returns (uint256 px, uint256 py) {
        assembly ("memory-safe") {
            let p := add(add(commitments, 32), mul(j, 64))
            px := mload(p)
            py := mload(add(p, 32))
        }
    }

    function _mul(uint256 px, uint256 py, uint256 k) private view returns (uint256 rx, uint256 ry, bool ok) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, px)
            mstore(add(m, 0x20), py)
            mstore(add(m, 0x40), k)
            ok := staticcall(MUL_GAS, 0x07, m, 0x60, m, 0x40)
            rx := mload(m)
            ry := mload(add(m, 0x20))
        }
    }

    function _add(uint256 ax, uint256 ay, uint256 bx, uint256 by)
        private
        view
        returns (uint256 rx, uint256 ry, bool ok)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, ax)
            mstore(add(m, 0x20), ay)
            mstore(add(m, 0x40), bx)
            mstore(add(m, 0x60), by)
            ok := staticcall(ADD_GAS, 0x06, m, 0x80, m, 0x40)
            rx := mload(m)
            ry := mload(add(m, 0x20))
        }
    }
}
