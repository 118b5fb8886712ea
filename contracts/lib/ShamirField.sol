// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ModExp} from "./ModExp.sol";

/// @title ShamirField
/// @notice Lagrange interpolation at zero over the prime field of size
///         P = 2^256 - 2^32 - 977 (the secp256k1 base-field prime). Secrets
///         shared by peers — 256-bit self-mask seeds reduced mod P and clamped
///         X25519 secret keys (< 2^255) — are elements of this field.
///         Mirrors coordinator/_encoding.py (`shamir_*`).
library ShamirField {
    uint256 internal constant P =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;

    /// @notice Thrown when two shares have the same x-coordinate or one is zero.
    error ShamirBadPoints();

    /// @notice f(0) for the polynomial through the points (xs[i], ys[i]).
    /// @dev f(0) = sum_i y_i * prod_{j != i} x_j / (x_j - x_i). One modular
    ///      inversion for all points (batch inversion via the modexp
    ///      precompile), so the cost is quadratic in multiplications only.
    function interpolateAtZero(uint256[] memory xs, uint256[] memory ys) internal view returns (uint256 acc) {
        uint256 n = xs.length;
        uint256[] memory nums = new uint256[](n);
        uint256[] memory dens = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            (nums[i], dens[i]) = _basis(xs, i);
        }
        uint256[] memory invs = _batchInverse(dens);
        for (uint256 i = 0; i < n; ++i) {
            acc = addmod(acc, mulmod(mulmod(ys[i] % P, nums[i], P), invs[i], P), P);
        }
    }

    function _basis(uint256[] memory xs, uint256 i) private pure returns (uint256 num, uint256 den) {
        uint256 xi = xs[i];
        if (xi == 0 || xi >= P) revert ShamirBadPoints();
        num = 1;
        den = 1;
        for (uint256 j = 0; j < xs.length; ++j) {
            if (j == i) continue;
            uint256 xj = xs[j];
            if (xj == xi) revert ShamirBadPoints();
            num = mulmod(num, xj, P);
            den = mulmod(den, addmod(xj, P - xi, P), P);
        }
    }

    /// @dev Montgomery's trick: invert all of `a` with one exponentiation.
    function _batchInverse(uint256[] memory a) private view returns (uint256[] memory out) {
        uint256 n = a.length;
        out = new uint256[](n);
        uint256 acc = 1;
        for (uint256 i = 0; i < n; ++i) {
            out[i] = acc; // prefix product of a[0..i)
            acc = mulmod(acc, a[i], P);
        }
        uint256 inv = modInverse(acc);
        for (uint256 k = n; k > 0; --k) {
            uint256 i = k - 1;
            out[i] = mulmod(out[i], inv, P);
            inv = mulmod(inv, a[i], P);
        }
    }

    /// @notice a^(P-2) mod P (Fermat inverse).
    function modInverse(uint256 a) internal view returns (uint256) {
        if (a % P == 0) revert ShamirBadPoints();
        return ModExp.modexp(a, P - 2, P);
    }
}
