// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase} from "./TestBase.sol";
import {MaskMath} from "../lib/MaskMath.sol";
import {X25519} from "../lib/X25519.sol";

/// @notice Fuzz tests of the encoding libraries' algebra.
contract EncodingTest is TestBase {
    /// @dev Lane arithmetic equals eight independent uint32 operations.
    function testFuzz_laneAddSubMatchUint32(uint256 a, uint256 b) public pure {
        uint256 s = MaskMath.laneAdd(a, b);
        uint256 d = MaskMath.laneSub(a, b);
        for (uint256 i = 0; i < 8; ++i) {
            uint32 x = uint32(a >> (32 * i));
            uint32 y = uint32(b >> (32 * i));
            unchecked {
                assertEq(uint32(s >> (32 * i)), uint32(x + y), "lane add");
                assertEq(uint32(d >> (32 * i)), uint32(x - y), "lane sub");
            }
        }
        assertEq(MaskMath.laneSub(s, b), a, "sub undoes add");
    }

    function testFuzz_toLanesIsAnInvolution(uint256 w) public pure {
        assertEq(MaskMath.toLanes(MaskMath.toLanes(w)), w, "involution");
        assertEq(X25519.reverseBytes(X25519.reverseBytes(w)), w, "reverse involution");
    }

    /// @dev X25519 is a group action: k1·(k2·B) == k2·(k1·B).
    function testFuzz_x25519Commutes(bytes32 k1, bytes32 k2) public view {
        bytes32 base = bytes32(uint256(9) << 248); // u = 9, little-endian
        bytes32 a = X25519.scalarMult(k1, X25519.scalarMult(k2, base));
        bytes32 b = X25519.scalarMult(k2, X25519.scalarMult(k1, base));
        assertTrue(a == b, "DH agreement");
    }
}
