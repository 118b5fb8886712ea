// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase, FraudProofsStandIn} from "./TestBase.sol";
import {FraudProofs} from "../FraudProofs.sol";
import {FedRounds} from "../FedRounds.sol";
import {PeerRegistry} from "../PeerRegistry.sol";
import {PrivacyLedger} from "../PrivacyLedger.sol";
import {IFedRounds} from "../interfaces/IFedRounds.sol";
import {IPeerRegistry} from "../interfaces/IPeerRegistry.sol";

/// @notice Issue 12: the contract's own decisions against hostile openers,
///         weights and aggregators (the Python tests in
///         tests/test_adversarial.py play the same attacks end to end).
///         This contract stands in for the fraud-proof contract.
contract AdversarialTest is TestBase, FraudProofsStandIn {
    uint96 internal constant STAKE = 1 ether;
    uint96 internal constant BOND = 1 ether;
    uint32 internal constant MAX_WEIGHT = 1000;
    uint256 internal constant PEERS = 7;

    PeerRegistry internal registry;
    PrivacyLedger internal ledger;
    FedRounds internal rounds;
    address[] internal actors;

    receive() external payable {}

    function setUp() public {
        vm.deal(address(this), 1_000 ether);
        registry = new PeerRegistry(address(this), STAKE, 2);
        ledger = new PrivacyLedger(
            address(this), 1_000_000_000, 10_000_000, [uint32(10126632), 4801692, 2252729, 1214110, 733718, 396981, 227839]
        );
        IFedRounds.Policy memory pol = _policy(BOND, MAX_WEIGHT);
        rounds = new FedRounds(address(this), registry, ledger, pol, bytes32(0), bytes32(0));
        rounds.setFraudProofs(address(this));
        seedChecker = new FraudProofs(rounds);
        ledger.setCharger(address(rounds));
        registry.setSlasher(address(rounds));
        ledger.registerConfig(1, 50_000, 1_000, 10, [uint32(9_000), 7_000, 6_000, 5_000, 5_000, 5_000, 5_000]);
        for (uint256 i = 0; i < PEERS; ++i) {
            address a = address(uint160(0xBEEF00 + i));
            actors.push(a);
            vm.deal(a, 100 ether);
            vm.prank(a);
            registry.register{value: STAKE}(1, 7, bytes32(i));
        }
    }

    function _quant(uint16 chunkElems, uint8 fracBits) internal pure returns (IFedRounds.Quant memory) {
        return IFedRounds.Quant({vectorLength: 64, chunkElems: chunkElems, fracBits: fracBits});
    }

    /// @dev Opens round 1 and brings it to Aggregate with every participant acting.
    function _toAggregate() internal returns (uint256 r, address[] memory list) {
        r = _open(_quant(64, 16));
        list = rounds.participantsOf(r);
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postKeys(r, bytes32(i + 1), bytes32(i + 2));
        }
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postShares(r, bytes32(i), bytes32(i));
        }
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.commit(r, bytes32(i), bytes32(i), 10, 1);
        }
        for (uint256 i = 0; i < list.length; ++i) {
            uint16[] memory d = new uint16[](1);
            uint256[] memory v = new uint256[](1);
            d[0] = uint16(i);
            v[0] = i;
            vm.prank(list[i]);
            rounds.reveal(r, d, v);
        }
    }

    /// @dev openRound, then the selection from the next block's hash.
    function _open(IFedRounds.Quant memory q) internal returns (uint256 r) {
        r = rounds.openRound(1, q);
        vm.roll(block.number + 2);
        rounds.selectParticipants(r);
    }

    function _seeds(uint256 n) internal pure returns (IFedRounds.Seed[] memory seeds) {
        seeds = new IFedRounds.Seed[](n);
        for (uint256 i = 0; i < n; ++i) {
            seeds[i] = IFedRounds.Seed({u: uint16(i), v: 0xFFFF, value: bytes32(i)});
        }
    }

    function testFuzz_hostileFracBitsRejected(uint8 fracBits) public {
        vm.assume(fracBits < 8 || fracBits > 24);
        vm.expectRevert(IFedRounds.RoundsBadQuant.selector);
        rounds.openRound(1, _quant(64, fracBits));
    }

    function test_chunkTooLargeForTheProofRejected() public {
        vm.expectRevert(IFedRounds.RoundsBadQuant.selector);
        rounds.openRound(1, _quant(8192, 16));
    }

    function test_outsiderCannotOpenAndPeersCannotChangeQuant() public {
        uint256 r = _open(_quant(64, 16));
        vm.roll(block.number + 9);
        rounds.advance(r); // nobody posted keys: the round fails
        address outsider = address(0xD00D);
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsUnauthorized.selector, outsider));
        rounds.openRound(1, _quant(64, 16));
        vm.prank(actors[0]);
        vm.expectRevert(IFedRounds.RoundsBadQuant.selector);
        rounds.openRound(1, _quant(64, 31));
        vm.prank(actors[0]);
        assertEq(_open(_quant(64, 16)), 2, "a registered peer opens with the fixed quant");
    }

    function testFuzz_weightAboveCapRejected(uint64 weight) public {
        vm.assume(weight > MAX_WEIGHT);
        uint256 r = _open(_quant(64, 16));
        address[] memory list = rounds.participantsOf(r);
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postKeys(r, bytes32(i + 1), bytes32(i + 2));
        }
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postShares(r, bytes32(i), bytes32(i));
        }
        vm.prank(list[0]);
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsWeightTooLarge.selector, weight, MAX_WEIGHT));
        rounds.commit(r, bytes32(0), bytes32(0), weight, 1);
    }

    function test_pendingResultLocksStakeAndASlashedBondNeverReturns() public {
        (uint256 r, address[] memory list) = _toAggregate();
        address liar = actors[6];
        vm.prank(liar);
        rounds.postResult{value: BOND}(r, bytes32(0), bytes32(0), bytes32(0), _seeds(list.length));
        assertEq(registry.locksOf(liar), 1, "stake held");
        vm.prank(liar);
        registry.requestLeave();
        vm.roll(block.number + 3);
        vm.prank(liar);
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryStakeLocked.selector, liar));
        registry.withdraw();
        rounds.voidResult(r, liar); // a self-challenge
        assertEq(rounds.withdrawable(liar), 0, "no reward for challenging oneself");
        assertEq(rounds.slashedPool(), BOND, "the whole bond is slashed");
        assertEq(registry.locksOf(liar), 0, "hold released");
        assertTrue(registry.peerInfo(liar).quarantined, "quarantined");
        rounds.sweepSlashed(address(0x7EA5));
        assertEq(rounds.withdrawable(address(0x7EA5)), BOND, "swept to the treasury");
        assertEq(rounds.withdrawable(liar), 0, "never back to the slashed");
    }

    function test_fiveProvenFraudsFailTheRound() public {
        (uint256 r, address[] memory list) = _toAggregate();
        for (uint256 k = 0; k < 5; ++k) {
            vm.prank(actors[k]);
            rounds.postResult{value: BOND}(r, bytes32(0), bytes32(0), bytes32(0), _seeds(list.length));
            rounds.voidResult(r, address(this));
        }
        IFedRounds.RoundView memory v = rounds.roundInfo(r);
        assertTrue(v.phase == IFedRounds.Phase.Failed, "failed");
        assertTrue(v.failReason == IFedRounds.FailReason.TooManyFrauds, "reason");
    }
}
