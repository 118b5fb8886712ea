// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ModExp
/// @notice base^exponent mod modulus through the modexp precompile (EIP-198),
///         used by X25519 (the final inversion).
library ModExp {
    function modexp(uint256 base, uint256 exponent, uint256 modulus) internal view returns (uint256 r) {
        bool ok;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0x20)
            mstore(add(m, 0x20), 0x20)
            mstore(add(m, 0x40), 0x20)
            mstore(add(m, 0x60), base)
            mstore(add(m, 0x80), exponent)
            mstore(add(m, 0xa0), modulus)
            ok := staticcall(gas(), 0x05, m, 0xc0, m, 0x20)
            r := mload(m)
        }
        require(ok);
    }
}
