// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFedRounds} from "../interfaces/IFedRounds.sol";
import {FraudProofs} from "../FraudProofs.sol";

/// @notice The cheatcodes our Solidity tests use (Hardhat 3 / EDR implements
///         Foundry's cheatcode interface at the well-known address).
interface Vm {
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function roll(uint256 blockNumber) external;
    function fee(uint256 newBasefee) external;
    function setBlockhash(uint256 blockNumber, bytes32 blockHash) external;
    function deal(address account, uint256 balance) external;
    function store(address target, bytes32 slot, bytes32 value) external;
    function assume(bool condition) external pure;
    function expectRevert() external;
    function expectRevert(bytes4 selector) external;
    function expectRevert(bytes calldata revertData) external;
    function readFile(string calldata path) external view returns (string memory);
    function parseJsonBytes32(string calldata json, string calldata key) external pure returns (bytes32);
    function parseJsonBytes(string calldata json, string calldata key) external pure returns (bytes memory);
    function parseJsonUint(string calldata json, string calldata key) external pure returns (uint256);
    function parseJsonUintArray(string calldata json, string calldata key) external pure returns (uint256[] memory);
    function parseJsonBytes32Array(string calldata json, string calldata key)
        external
        pure
        returns (bytes32[] memory);
    function toString(uint256 value) external pure returns (string memory);
}

/// @notice Minimal test base: cheatcodes, assertions and invariant targets.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    address[] private _targets;

    function targetContract(address target) internal {
        _targets.push(target);
    }

    /// @dev Read by the invariant runner to pick which contracts to call.
    function targetContracts() public view returns (address[] memory) {
        return _targets;
    }

    /// @dev The rounds policy every contract test deploys: 5 participants,
    ///      t = 3, 8-block phases, a 4-block challenge window, 30 % reward, no
    ///      quorum grace; only the bond and the weight cap differ.
    function _policy(uint96 bond, uint32 maxWeight) internal pure returns (IFedRounds.Policy memory) {
        return IFedRounds.Policy({
            participants: 5,
            threshold: 3,
            keysBlocks: 8,
            sharesBlocks: 8,
            commitBlocks: 8,
            revealBlocks: 8,
            aggregateBlocks: 8,
            challengeBlocks: 4,
            challengerRewardBps: 3000,
            bond: bond,
            maxWeight: maxWeight,
            quorumGraceBps: 0,
            availabilityBlocks: 0
        });
    }

    function assertEq(uint256 a, uint256 b, string memory why) internal pure {
        if (a != b) revert(string.concat(why, ": ", _str(a), " != ", _str(b)));
    }

    function assertLe(uint256 a, uint256 b, string memory why) internal pure {
        if (a > b) revert(string.concat(why, ": ", _str(a), " > ", _str(b)));
    }

    function assertTrue(bool c, string memory why) internal pure {
        if (!c) revert(why);
    }

    function _str(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = abi.encodePacked(bytes1(uint8(48 + v % 10)), b);
            v /= 10;
        }
        return string(b);
    }
}

/// @notice For a test contract that stands in for the fraud-proof contract
///         (to call voidResult and the other hooks itself): postResult asks
///         the fraud-proof contract for the canonical seed list, so it
///         answers with a real FraudProofs' check (`seedChecker`, set up
///         with the rounds contract).
abstract contract FraudProofsStandIn {
    FraudProofs internal seedChecker;

    function checkSeedSet(uint256 round, IFedRounds.Seed[] calldata seeds) external view {
        seedChecker.checkSeedSet(round, seeds);
    }
}
