// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {RealFederation} from "./RealFederation.sol";
import {FedRounds} from "../FedRounds.sol";
import {FraudProofs} from "../FraudProofs.sol";
import {PeerRegistry} from "../PeerRegistry.sol";
import {PrivacyLedger} from "../PrivacyLedger.sol";
import {IFedRounds} from "../interfaces/IFedRounds.sol";
import {IFraudProofs} from "../interfaces/IFraudProofs.sol";
import {IPeerRegistry} from "../interfaces/IPeerRegistry.sol";

/// @notice Issue 12 item 2: a cheating dealer, decided by the real rounds and
///         fraud-proof contracts. A share leaf for a holder outside the
///         dealer's neighbourhood in U1 (here: index 6 of a 5-participant
///         round, in the padding of the 10-leaf tree) is refused in a proof;
///         a dealer fault clears a posted result and returns its bond in full;
///         only the fraud-proof contract can record one, and only from Reveal
///         to Challenge. The Python tests in tests/test_dealing.py play the
///         same attacks end to end with real keys and shares.
contract DealingTest is RealFederation {
    uint96 internal constant STAKE = 1 ether;
    uint96 internal constant BOND = 1 ether;
    bytes32 internal constant SHARE_DOMAIN = keccak256("fedledger.share.v1");
    bytes32 internal constant FELDMAN_DOMAIN = keccak256("fedledger.feldman.v1");

    function setUp() public {
        _deploy(_policy(BOND, 1000), STAKE, 6);
    }

    function _leaf(uint256 r, address dealer, uint16 holder, uint8 kind, uint256 value) internal view returns (bytes32) {
        return keccak256(abi.encode(SHARE_DOMAIN, block.chainid, address(rounds), r, dealer, holder, kind, value));
    }

    /// @dev A 16-leaf tree, all zero but `leaves[at]`; its root and the proof of `at`.
    function _tree(bytes32 leaf, uint256 at) internal pure returns (bytes32 root, bytes32[] memory proof) {
        bytes32[] memory leaves = new bytes32[](16);
        leaves[at] = leaf;
        return _treeOf(leaves, at);
    }

    function _treeOf(bytes32[] memory leaves, uint256 at) internal pure returns (bytes32 root, bytes32[] memory proof) {
        bytes32[] memory level = leaves;
        proof = new bytes32[](4);
        uint256 idx = at;
        for (uint256 d = 0; d < 4; ++d) {
            proof[d] = level[idx ^ 1];
            bytes32[] memory next = new bytes32[](level.length / 2);
            for (uint256 i = 0; i < next.length; ++i) {
                next[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
            level = next;
            idx /= 2;
        }
        root = level[0];
    }

    /// @dev k·G on BN254 through the ecMul precompile (64 bytes, x ‖ y).
    function _g1(uint256 k) internal view returns (bytes memory out) {
        (bool ok, bytes memory ret) = address(7).staticcall(abi.encode(uint256(1), uint256(2), k));
        require(ok && ret.length == 64, "ecMul");
        out = ret;
    }

    /// @dev Feldman commitments of the self-seed polynomial 5 + 7x + 11x² and
    ///      the key polynomial 13 + 17x + 19x² (t = 3), self seed first.
    function _commitments() internal view returns (bytes memory) {
        return bytes.concat(_g1(5), _g1(7), _g1(11), _g1(13), _g1(17), _g1(19));
    }

    function _commitLeaf(uint256 r, address dealer, bytes memory points) internal view returns (bytes32) {
        return keccak256(abi.encode(FELDMAN_DOMAIN, block.chainid, address(rounds), r, dealer, keccak256(points)));
    }

    function _noCommitments() internal pure returns (IFraudProofs.Commitments memory c) {
        c.proof = new bytes32[](0);
    }

    /// @dev Round 1 to Aggregate; participant 0 posts `root0` as its share
    /// @dev openRound, then the selection from the next block's hash.
    function _open(IFedRounds.Quant memory q) internal returns (uint256 r) {
        r = rounds.openRound(1, q);
        vm.roll(block.number + 2);
        rounds.selectParticipants(r);
    }

    ///      root and drops before committing; everyone else acts.
    function _round(bytes32 root0) internal returns (uint256 r, address[] memory list) {
        (r, list) = _openDefault();
        _play(r, list, root0);
    }

    function _openDefault() internal returns (uint256 r, address[] memory list) {
        r = _open(IFedRounds.Quant({vectorLength: 64, chunkElems: 64, fracBits: 16}));
        list = rounds.participantsOf(r);
    }

    /// @dev Everyone posts keys and shares (participant 0's share root is `root0`): the round is in Commit.
    function _toCommit(uint256 r, address[] memory list, bytes32 root0) internal {
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postKeys(r, bytes32(i + 1), bytes32(i + 2));
        }
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postShares(r, bytes32(i), i == 0 ? root0 : bytes32(i));
        }
    }

    function _play(uint256 r, address[] memory list, bytes32 root0) internal {
        _toCommit(r, list, root0);
        for (uint256 i = 1; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.commit(r, bytes32(i), bytes32(i), 10, 1);
        }
        vm.roll(block.number + 9);
        rounds.advance(r);
        for (uint256 i = 1; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.reveal(r, new uint16[](0), new uint256[](0));
        }
    }

    function test_aShareLeafBeyondTheParticipantsIsRefused() public {
        // The leaf names the dealer's address, known once the round opens.
        uint256 r = _open(IFedRounds.Quant({vectorLength: 64, chunkElems: 64, fracBits: 16}));
        address[] memory list = rounds.participantsOf(r);
        (bytes32 root, bytes32[] memory proof) = _tree(_leaf(r, list[0], 6, 1, 42), 2 * 6 + 1);
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postKeys(r, bytes32(i + 1), bytes32(i + 2));
        }
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postShares(r, bytes32(i), i == 0 ? root : bytes32(i));
        }
        for (uint256 i = 1; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.commit(r, bytes32(i), bytes32(i), 10, 1);
        }
        vm.roll(block.number + 9);
        rounds.advance(r);
        IFraudProofs.ShareProof memory share = IFraudProofs.ShareProof({holder: 6, value: 42, proof: proof});
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadHolder.selector, 0));
        fraud.proveBadShare(r, 0, 1, share, _noCommitments());
        // The same leaf under an in-range holder index is simply not in the tree.
        share = IFraudProofs.ShareProof({holder: 2, value: 42, proof: proof});
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadShare.selector, 0));
        fraud.proveBadShare(r, 0, 1, share, _noCommitments());
    }

    /// @dev Round to Reveal with participant 0's share root over its
    ///      commitments (leaf 2n = 10) and `share` as holder 2's self-seed leaf (4).
    function _badShareRound(uint256 share)
        internal
        returns (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c)
    {
        return _badDealing(share, true);
    }

    /// @dev Participant 0 deals `share` as holder 2's self-seed leaf (4) under
    ///      a root over its commitments (leaf 2n = 10); the round is played to
    ///      Reveal (`toReveal`) or left in Commit with nobody committed.
    function _badDealing(uint256 share, bool toReveal)
        internal
        returns (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c)
    {
        (r, list) = _openDefault();
        bytes32[] memory leaves = new bytes32[](16);
        leaves[4] = _leaf(r, list[0], 2, 0, share);
        leaves[10] = _commitLeaf(r, list[0], _commitments());
        (bytes32 root, bytes32[] memory shareProof) = _treeOf(leaves, 4);
        (, bytes32[] memory commitProof) = _treeOf(leaves, 10);
        if (toReveal) _play(r, list, root);
        else _toCommit(r, list, root);
        sp = IFraudProofs.ShareProof({holder: 2, value: share, proof: shareProof});
        c = IFraudProofs.Commitments({points: _commitments(), proof: commitProof});
    }

    function test_aDealerFaultClearsAPostedResultAndReturnsTheBond() public {
        (uint256 r, address[] memory list) = _round(bytes32(0));
        address agg = list[1];
        // The canonical list: self seeds of U3 (1..4), then pairs (u, 0).
        IFedRounds.Seed[] memory seeds = new IFedRounds.Seed[](8);
        for (uint256 i = 0; i < 4; ++i) {
            seeds[i] = IFedRounds.Seed({u: uint16(i + 1), v: 0xFFFF, value: bytes32(i)});
            seeds[4 + i] = IFedRounds.Seed({u: uint16(i + 1), v: 0, value: bytes32(i)});
        }
        vm.prank(agg);
        rounds.postResult{value: BOND}(r, bytes32(0), bytes32(0), bytes32(0), seeds);
        assertEq(registry.locksOf(agg), 1, "stake held while pending");
        // Only the fraud-proof contract records a dealer fault.
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsUnauthorized.selector, address(this)));
        rounds.dealerFault(r, list[0], address(this));
        vm.prank(address(fraud));
        rounds.dealerFault(r, list[0], address(0xC0FFEE));
        IFedRounds.RoundView memory v = rounds.roundInfo(r);
        assertTrue(v.phase == IFedRounds.Phase.Failed, "failed");
        assertTrue(v.failReason == IFedRounds.FailReason.DealerFault, "reason");
        assertEq(rounds.withdrawable(agg), BOND, "bond back in full");
        assertEq(rounds.slashedPool(), 0, "nothing slashed");
        assertEq(registry.locksOf(agg), 0, "hold released");
        assertTrue(!registry.peerInfo(agg).quarantined, "aggregator not blamed");
        assertTrue(registry.peerInfo(list[0]).quarantined, "dealer quarantined");
        assertTrue(rounds.resultOf(r).aggregator == address(0), "result cleared");
        // The round is over: no second fault, no finalization.
        vm.prank(address(fraud));
        vm.expectRevert(
            abi.encodeWithSelector(
                IFedRounds.RoundsWrongPhase.selector, r, IFedRounds.Phase.Reveal, IFedRounds.Phase.Failed
            )
        );
        rounds.dealerFault(r, list[0], address(this));
    }

    function test_aDealerFaultBeforeRevealIsRefused() public {
        uint256 r = _open(IFedRounds.Quant({vectorLength: 64, chunkElems: 64, fracBits: 16}));
        address[] memory list = rounds.participantsOf(r);
        vm.prank(address(fraud));
        vm.expectRevert(
            abi.encodeWithSelector(IFedRounds.RoundsWrongPhase.selector, r, IFedRounds.Phase.Reveal, IFedRounds.Phase.Keys)
        );
        rounds.dealerFault(r, list[0], address(this));
    }

    function test_aDealerFaultProofNeedsADroppedDealerItsPostedKeysAndItsCommitments() public {
        (uint256 r,) = _round(bytes32(0));
        IFraudProofs.Commitments memory none = _noCommitments();
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadIndex.selector, 1));
        fraud.proveDealerFault(r, 1, none, 0, bytes32(uint256(2)), bytes32(uint256(3))); // 1 committed
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadIndex.selector, 9));
        fraud.proveDealerFault(r, 9, none, 0, bytes32(0), bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadKeys.selector, 0));
        fraud.proveDealerFault(r, 0, none, 0, bytes32(uint256(1)), bytes32(uint256(3)));
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadCommitments.selector, 0));
        fraud.proveDealerFault(r, 0, none, 0, bytes32(uint256(1)), bytes32(uint256(2)));
    }

    function test_aBadShareSlashesItsDealerAndTheRoundGoesOn() public {
        // f(3) = 5 + 7·3 + 11·9 = 125 is holder 2's self-seed share; 126 is off the polynomial.
        (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c) =
            _badShareRound(126);
        IFedRounds.Phase before = rounds.roundInfo(r).phase;
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsUnauthorized.selector, address(this)));
        rounds.badShare(r, list[0], address(this));
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadIndex.selector, 0));
        fraud.proveBadShare(r, 0, 2, sp, c); // no third polynomial
        fraud.proveBadShare(r, 0, 0, sp, c);
        assertTrue(registry.peerInfo(list[0]).quarantined, "dealer quarantined");
        assertEq(registry.peerInfo(list[0]).stake, 0, "dealer slashed");
        assertEq(rounds.roundInfo(r).nExcluded, 0, "after Commit: not excluded");
        assertTrue(rounds.roundInfo(r).phase == before, "the round goes on");
        assertTrue(before != IFedRounds.Phase.Failed, "not failed");
    }

    function test_aShareOnTheCommittedPolynomialIsNoBadShare() public {
        (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c) =
            _badShareRound(125);
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudNotProven.selector, r));
        fraud.proveBadShare(r, 0, 0, sp, c);
        // Nor against the key polynomial's commitments with the seed's leaf.
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadShare.selector, 0));
        fraud.proveBadShare(r, 0, 1, sp, c);
        // Commitments that are not under the dealer's root prove nothing.
        c.points = bytes.concat(_g1(6), _g1(7), _g1(11), _g1(13), _g1(17), _g1(19));
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadCommitments.selector, 0));
        fraud.proveBadShare(r, 0, 0, sp, c);
        assertTrue(!registry.peerInfo(list[0]).quarantined, "honest dealer not quarantined");
        assertEq(registry.peerInfo(list[0]).stake, STAKE, "honest dealer keeps its stake");
        assertEq(registry.slashedStake(), 0, "nothing slashed");
    }

    // -------------------------------------------- slashing and exclusion

    /// @dev Round to Commit (nobody committed yet) with participant 0's share
    ///      root over its commitments and `share` as holder 2's self-seed leaf.
    function _badDealingToCommit(uint256 share)
        internal
        returns (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c)
    {
        (r, list, sp, c) = _badDealing(share, false);
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Commit, "in Commit");
    }

    function _commitFrom(uint256 r, address[] memory list, uint256 from, uint256 to) internal {
        for (uint256 i = from; i < to; ++i) {
            vm.prank(list[i]);
            rounds.commit(r, bytes32(i), bytes32(i), 10, 1);
        }
    }

    function _assertStakesHeld() internal view {
        assertEq(address(registry).balance, registry.totalStaked() + registry.slashedStake(), "balance");
    }

    function test_aBadShareBeforeItsCommitSlashesAndExcludesItsDealer() public {
        (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c) =
            _badDealingToCommit(126);
        uint256 staked = registry.totalStaked();
        fraud.proveBadShare(r, 0, 0, sp, c);
        assertEq(registry.peerInfo(list[0]).stake, 0, "stake slashed");
        assertTrue(registry.peerInfo(list[0]).quarantined, "dealer quarantined");
        assertEq(registry.slashedStake(), STAKE, "slashed stake");
        assertEq(registry.totalStaked(), staked - STAKE, "out of totalStaked");
        _assertStakesHeld();
        assertEq(rounds.roundInfo(r).nExcluded, 1, "excluded");
        assertTrue(rounds.statusOf(r, list[0]) & (1 << 20) != 0, "excluded flag");
        // Proven again: nothing more to slash, no second exclusion.
        fraud.proveBadShare(r, 0, 0, sp, c);
        assertEq(registry.slashedStake(), STAKE, "no double slash");
        assertEq(registry.totalStaked(), staked - STAKE, "no double count");
        assertEq(rounds.roundInfo(r).nExcluded, 1, "no double exclusion");
        vm.prank(list[0]);
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsDealerExcluded.selector, r, list[0]));
        rounds.commit(r, bytes32(0), bytes32(0), 10, 1);
        // The last of the others' commits ends Commit: nobody waits for the dealer.
        uint64 deadline = rounds.roundInfo(r).deadline;
        _commitFrom(r, list, 1, list.length);
        IFedRounds.RoundView memory v = rounds.roundInfo(r);
        assertTrue(v.phase == IFedRounds.Phase.Reveal, "Reveal without waiting");
        assertLe(block.number, deadline, "before the commit deadline");
        assertEq(v.nCommits, list.length - 1, "U3 without the dealer");
    }

    function test_aBadShareProvenWhenOnlyTheDealerIsMissingEndsCommitAtOnce() public {
        (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c) =
            _badDealingToCommit(126);
        _commitFrom(r, list, 1, list.length);
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Commit, "waiting for the dealer");
        fraud.proveBadShare(r, 0, 0, sp, c);
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Reveal, "Reveal at once");
        assertEq(registry.peerInfo(list[0]).stake, 0, "stake slashed");
    }

    function test_aBadShareAfterItsCommitSlashesButKeepsTheDealerInTheRound() public {
        (uint256 r, address[] memory list, IFraudProofs.ShareProof memory sp, IFraudProofs.Commitments memory c) =
            _badDealingToCommit(126);
        _commitFrom(r, list, 0, 1);
        fraud.proveBadShare(r, 0, 0, sp, c);
        assertEq(registry.peerInfo(list[0]).stake, 0, "stake slashed");
        assertTrue(registry.peerInfo(list[0]).quarantined, "dealer quarantined");
        assertEq(rounds.roundInfo(r).nExcluded, 0, "not excluded");
        assertTrue(rounds.statusOf(r, list[0]) & (1 << 20) == 0, "no excluded flag");
        _commitFrom(r, list, 1, list.length);
        IFedRounds.RoundView memory v = rounds.roundInfo(r);
        assertTrue(v.phase == IFedRounds.Phase.Reveal, "Reveal");
        assertEq(v.nCommits, list.length, "the dealer stays in U3");
        _assertStakesHeld();
    }

    function test_slashedStakeIsOnlyTakenBySlasherAndSweptByGovernor() public {
        address peer = actors[0];
        vm.prank(peer);
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryUnauthorized.selector, peer));
        registry.slash(peer);
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryUnauthorized.selector, address(this)));
        registry.slash(peer); // the governor quarantines, never slashes
        vm.expectRevert(IPeerRegistry.RegistryNothingSlashed.selector);
        registry.sweepSlashedStake(address(0xD00D));
        vm.prank(address(rounds));
        registry.slash(peer);
        vm.prank(address(rounds));
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryNotRegistered.selector, address(0xBAD)));
        registry.slash(address(0xBAD));
        _assertStakesHeld();
        // The slashed peer leaves with what is left of its stake: nothing.
        uint256 had = peer.balance;
        vm.prank(peer);
        registry.requestLeave();
        vm.roll(block.number + 3);
        vm.prank(peer);
        registry.withdraw();
        assertEq(peer.balance, had, "nothing paid out");
        assertEq(registry.slashedStake(), STAKE, "the slashed stake stays");
        _assertStakesHeld();
        vm.prank(peer);
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryUnauthorized.selector, peer));
        registry.sweepSlashedStake(peer);
        registry.sweepSlashedStake(address(0xD00D));
        assertEq(address(0xD00D).balance, STAKE, "swept");
        assertEq(registry.slashedStake(), 0, "pool empty");
        _assertStakesHeld();
    }
}
