// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase, FraudProofsStandIn} from "./TestBase.sol";
import {FraudProofs} from "../FraudProofs.sol";
import {FedRounds} from "../FedRounds.sol";
import {PeerRegistry} from "../PeerRegistry.sol";
import {PrivacyLedger} from "../PrivacyLedger.sol";
import {IFedRounds} from "../interfaces/IFedRounds.sol";
import {IPeerRegistry} from "../interfaces/IPeerRegistry.sol";

/// @notice Issue 12 item 3: the selection is drawn from a pool frozen at
///         openRound with the hash of a block that did not exist then
///         (tests/test_selection.py plays the grinding attack end to end).
contract SelectionTest is TestBase, FraudProofsStandIn {
    uint96 internal constant STAKE = 1 ether;
    uint256 internal constant PEERS = 7;

    PeerRegistry internal registry;
    PrivacyLedger internal ledger;
    FedRounds internal rounds;
    address[] internal actors;

    function setUp() public {
        registry = new PeerRegistry(address(this), STAKE, 2);
        ledger = new PrivacyLedger(
            address(this), 1_000_000_000, 10_000_000, [uint32(10126632), 4801692, 2252729, 1214110, 733718, 396981, 227839]
        );
        IFedRounds.Policy memory pol = _policy(1 ether, 1000);
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
        vm.roll(block.number + 1);
    }

    function _open() internal returns (uint256) {
        return rounds.openRound(1, IFedRounds.Quant({vectorLength: 64, chunkElems: 64, fracBits: 16}));
    }

    function test_openRoundDrawsNobodyAndFreezesThePool() public {
        uint256 r = _open();
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Selection, "waiting for the seed");
        assertEq(rounds.participantsOf(r).length, 0, "nobody drawn at openRound");
        assertTrue(registry.frozen(), "pool frozen");
        (uint64 target, uint64 pool,) = rounds.selectionOf(r);
        assertEq(target, block.number + 1, "the next block seeds it");
        assertEq(pool, PEERS, "pool snapshot");
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsSelectionNotDue.selector, r, uint256(target)));
        rounds.selectParticipants(r);
        vm.roll(target);
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsSelectionNotDue.selector, r, uint256(target)));
        rounds.selectParticipants(r);
    }

    /// @dev The attack: once the target block is mined its hash (and so the
    ///      draw) is known; the attacker's accounts try to leave the pool, or
    ///      join it, to move the draw. Leaving is refused; a newcomer is
    ///      appended after the snapshot and never drawn.
    function test_knownHashCannotBeGroundByLeavingOrJoining() public {
        uint256 r = _open();
        vm.roll(block.number + 2);
        vm.prank(actors[0]);
        vm.expectRevert(IPeerRegistry.RegistryFrozen.selector);
        registry.requestLeave();
        vm.expectRevert(IPeerRegistry.RegistryFrozen.selector);
        registry.setEligibilityDelay(3);
        address sybil = address(0x5B1);
        vm.deal(sybil, 10 ether);
        vm.prank(sybil);
        registry.register{value: STAKE}(1, 7, bytes32(0));
        rounds.selectParticipants(r);
        address[] memory list = rounds.participantsOf(r);
        assertEq(list.length, 5, "five drawn");
        for (uint256 i = 0; i < list.length; ++i) {
            assertTrue(list[i] != sybil, "the newcomer is outside the snapshot");
        }
        assertTrue(!registry.frozen(), "thawed after the selection");
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Keys, "keys phase");
        vm.prank(actors[0]);
        registry.requestLeave();
    }

    function testFuzz_seedIsTheTargetBlockHash(bytes32 h) public {
        vm.assume(h != bytes32(0));
        uint256 r = _open();
        (uint64 target,,) = rounds.selectionOf(r);
        vm.roll(target + 1);
        vm.setBlockhash(target, h);
        rounds.selectParticipants(r);
        assertTrue(rounds.roundInfo(r).seed == keccak256(abi.encode(h, r, address(rounds))), "seed from blockhash");
        (,, uint64 selected) = rounds.selectionOf(r);
        assertEq(selected, target + 1, "selection block recorded");
    }

    function test_expiredWindowNamesANewBlock() public {
        uint256 r = _open();
        (uint64 target,,) = rounds.selectionOf(r);
        vm.roll(uint256(target) + 257);
        rounds.selectParticipants(r);
        (uint64 again,, uint64 selected) = rounds.selectionOf(r);
        assertEq(again, block.number + 1, "re-targeted");
        assertEq(selected, 0, "not selected");
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Selection, "still selecting");
        assertTrue(registry.frozen(), "still frozen");
        vm.roll(uint256(again) + 1);
        rounds.selectParticipants(r);
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Keys, "selected");
    }

    function test_eligibilityDelayAndOnlyTheRoundsContractFreezes() public {
        registry.setEligibilityDelay(5);
        address fresh = address(0xF4E5);
        vm.deal(fresh, 10 ether);
        vm.prank(fresh);
        registry.register{value: STAKE}(1, 7, bytes32(0));
        assertTrue(!registry.isEligible(fresh), "not eligible before the delay");
        assertTrue(registry.isEligibleAt(fresh, block.number + 5), "eligible after it");
        assertEq(registry.registeredBlock(fresh), block.number, "registration block kept");
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryUnauthorized.selector, address(this)));
        registry.setFrozen(true);
        vm.roll(block.number + 5);
        uint256 r = _open();
        vm.roll(block.number + 2);
        rounds.selectParticipants(r);
        assertEq(rounds.participantsOf(r).length, 5, "drawn");
    }
}
