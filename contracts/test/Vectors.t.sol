// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase} from "./TestBase.sol";
import {MaskMath} from "../lib/MaskMath.sol";
import {X25519} from "../lib/X25519.sol";

/// @notice Checks the vectors Python generated (coordinator/protocol/_vectors.py,
///         contracts/test/vectors/encoding.json) with the Solidity libraries.
contract VectorsTest is TestBase {
    uint256 internal constant COUNT = 4;
    string internal json;

    function setUp() public {
        json = vm.readFile("contracts/test/vectors/encoding.json");
    }

    function _k(string memory kind, uint256 i, string memory field) internal pure returns (string memory) {
        return string.concat(".", kind, "_", vm.toString(i), ".", field);
    }

    function test_prgVectors() public view {
        for (uint256 i = 0; i < COUNT; ++i) {
            bytes32 seed = vm.parseJsonBytes32(json, _k("prg", i, "seed"));
            uint256 first = vm.parseJsonUint(json, _k("prg", i, "first"));
            uint256 blocks = vm.parseJsonUint(json, _k("prg", i, "blocks"));
            bytes memory want = vm.parseJsonBytes(json, _k("prg", i, "out"));
            assertEq(want.length, 32 * blocks, "prg length");
            for (uint256 j = 0; j < blocks; ++j) {
                uint256 w = MaskMath.toLanes(MaskMath.prgBlock(seed, first + j));
                uint256 expected;
                assembly ("memory-safe") {
                    expected := mload(add(add(want, 32), mul(j, 32)))
                }
                assertEq(w, expected, "prg block");
            }
        }
    }

    function test_merkleVectors() public view {
        for (uint256 i = 0; i < COUNT; ++i) {
            uint256 index = vm.parseJsonUint(json, _k("merkle", i, "index"));
            bytes memory chunk = vm.parseJsonBytes(json, _k("merkle", i, "chunk"));
            bytes32 leaf = vm.parseJsonBytes32(json, _k("merkle", i, "leaf"));
            bytes32 root = vm.parseJsonBytes32(json, _k("merkle", i, "root"));
            bytes32[] memory proof = vm.parseJsonBytes32Array(json, _k("merkle", i, "proof"));
            assertTrue(keccak256(abi.encodePacked(uint32(index), chunk)) == leaf, "leaf");
            assertTrue(this.verify(root, leaf, index, proof), "proof");
            if (proof.length > 0) assertTrue(!this.verify(root, leaf, index ^ 1, proof), "wrong index");
        }
    }

    function verify(bytes32 root, bytes32 leaf, uint256 index, bytes32[] calldata proof) external pure returns (bool) {
        return MaskMath.verify(root, leaf, index, proof);
    }

    function test_x25519Vectors() public view {
        for (uint256 i = 0; i < COUNT; ++i) {
            bytes32 k = vm.parseJsonBytes32(json, _k("x25519", i, "k"));
            bytes32 u = vm.parseJsonBytes32(json, _k("x25519", i, "u"));
            bytes32 want = vm.parseJsonBytes32(json, _k("x25519", i, "out"));
            assertTrue(X25519.scalarMult(k, u) == want, "x25519");
        }
    }
}
