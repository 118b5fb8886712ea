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

/// @notice Issue 12 item 7: a committer that withholds its masked vector.
///         Decided by the real rounds and fraud-proof contracts: in the
///         Availability phase anyone challenges a committer with a bond; the
///         committer (or anyone holding the vector) answers with the whole
///         vector on-chain, checked against its committed chunk root, and
///         takes the bond; unanswered at the window's end it leaves U3 before
///         any reveal, is slashed and quarantined, and the challenger takes
///         its bond back. tests/test_availability.py plays it end to end.
contract AvailabilityTest is RealFederation {
    uint96 internal constant STAKE = 1 ether;
    uint96 internal constant BOND = 0.5 ether;
    uint32 internal constant WINDOW = 8;
    uint64 internal constant WEIGHT = 10;

    address internal challenger = address(0xC4A11);
    address internal answerer = address(0xA45E4);

    function setUp() public {
        IFedRounds.Policy memory pol = _policy(BOND, 1000);
        pol.availabilityBlocks = WINDOW;
        _deploy(pol, STAKE, 5);
        vm.deal(challenger, 10 ether);
        vm.deal(answerer, 10 ether);
    }

    /// @dev Participant i's masked vector: 64 elements, one chunk of 256 bytes.
    function _vector(uint256 i) internal pure returns (bytes memory v) {
        v = new bytes(256);
        for (uint256 k = 0; k < 256; ++k) {
            v[k] = bytes1(uint8(uint256(keccak256(abi.encode(i, k)))));
        }
    }

    /// @dev A one-chunk vector's root is its only leaf: keccak(uint32 0 ‖ chunk).
    function _root(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(uint32(0), _vector(i)));
    }

    /// @dev Round 1 with everyone's keys and shares: in Commit.
    function _toCommit() internal returns (uint256 r, address[] memory list) {
        r = rounds.openRound(1, IFedRounds.Quant({vectorLength: 64, chunkElems: 64, fracBits: 16}));
        vm.roll(block.number + 2);
        rounds.selectParticipants(r);
        list = rounds.participantsOf(r);
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postKeys(r, bytes32(i + 1), bytes32(i + 2));
        }
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.postShares(r, bytes32(i), bytes32(i));
        }
    }

    /// @dev Round 1 with everyone's keys, shares and commits: in Availability.
    function _toAvailability() internal returns (uint256 r, address[] memory list) {
        (r, list) = _toCommit();
        for (uint256 i = 0; i < list.length; ++i) {
            vm.prank(list[i]);
            rounds.commit(r, bytes32(i), _root(i), WEIGHT, 1);
        }
        assertEq(uint8(rounds.roundInfo(r).phase), uint8(IFedRounds.Phase.Availability), "all committed: Availability");
    }

    function _challenge(uint256 r, address peer, uint256 i) internal {
        vm.prank(challenger);
        fraud.challengeAvailability{value: BOND}(r, peer, bytes32(i), _root(i), WEIGHT);
    }

    function _toReveal(uint256 r) internal {
        vm.roll(rounds.roundInfo(r).deadline + 1);
        rounds.advance(r);
    }

    function test_anUnansweredCommitterLeavesU3BeforeAnyRevealAndIsSlashed() public {
        (uint256 r, address[] memory list) = _toAvailability();
        _challenge(r, list[1], 1);
        assertEq(rounds.roundInfo(r).nCommits, 4, "a challenged committer does not count");
        // The committer itself cannot reveal anything yet: reveals wait for Reveal.
        vm.prank(list[1]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFedRounds.RoundsWrongPhase.selector, r, IFedRounds.Phase.Reveal, IFedRounds.Phase.Availability
            )
        );
        rounds.reveal(r, new uint16[](0), new uint256[](0));
        _toReveal(r);
        IFedRounds.RoundView memory info = rounds.roundInfo(r);
        assertEq(uint8(info.phase), uint8(IFedRounds.Phase.Reveal), "the round goes on");
        assertEq(info.nCommits, 4, "U3 without the withholder");
        assertEq(info.weightSum, 4 * WEIGHT, "its weight left the sum");
        uint256 st = rounds.statusOf(r, list[1]);
        assertEq(st & (1 << 18), 0, "not committed any more");
        assertTrue(st & (1 << 17) != 0, "still in U2: a dropout after shares");
        assertEq(uint256(rounds.commitHashOf(r, list[1])), 0, "its commitment is cleared");
        IPeerRegistry.Peer memory p = registry.peerInfo(list[1]);
        assertEq(p.stake, 0, "slashed");
        assertTrue(p.quarantined, "quarantined");
        // It cannot reveal (it is not in U3); the others can.
        vm.prank(list[1]);
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsMissedStep.selector, r, list[1]));
        rounds.reveal(r, new uint16[](0), new uint256[](0));
        vm.prank(list[0]);
        rounds.reveal(r, new uint16[](0), new uint256[](0));
        // The challenger takes its bond back, once.
        uint256 before = challenger.balance;
        fraud.reclaimAvailabilityBond(r, list[1]);
        assertEq(challenger.balance - before, BOND, "bond back to the challenger");
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudNotChallenged.selector, r, list[1]));
        fraud.reclaimAvailabilityBond(r, list[1]);
    }

    function test_anAnswerKeepsTheCommitterAndPaysTheAnswerer() public {
        (uint256 r, address[] memory list) = _toAvailability();
        _challenge(r, list[2], 2);
        // Nothing to reclaim while the challenge is open.
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudStillAvailable.selector, r, list[2]));
        fraud.reclaimAvailabilityBond(r, list[2]);
        uint256 before = answerer.balance;
        uint256 challengerBefore = challenger.balance;
        vm.fee(1 gwei);
        vm.prank(answerer);
        fraud.answerAvailability(r, list[2], bytes32(uint256(2)), _root(2), WEIGHT, _vector(2));
        uint256 fee = 1 gwei * (40 * 256 + 150_000);
        assertEq(answerer.balance - before, fee, "the answerer is paid its calldata at the base fee");
        assertEq(challenger.balance - challengerBefore, BOND - fee, "the challenger gets the rest back");
        assertEq(rounds.roundInfo(r).nCommits, 5, "back in U3");
        // Answered for good: no second challenge, no second answer, no reclaim.
        vm.prank(challenger);
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsAlreadyActed.selector, r, list[2]));
        fraud.challengeAvailability{value: BOND}(r, list[2], bytes32(uint256(2)), _root(2), WEIGHT);
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudNotChallenged.selector, r, list[2]));
        fraud.answerAvailability(r, list[2], bytes32(uint256(2)), _root(2), WEIGHT, _vector(2));
        _toReveal(r);
        IFedRounds.RoundView memory info = rounds.roundInfo(r);
        assertEq(info.nCommits, 5, "nobody dropped");
        assertEq(info.weightSum, 5 * WEIGHT, "every weight counts");
        assertEq(registry.peerInfo(list[2]).stake, STAKE, "an answering committer keeps its stake");
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudNotChallenged.selector, r, list[2]));
        fraud.reclaimAvailabilityBond(r, list[2]);
    }

    /// @dev At a base fee where the answer costs more than the bond, the fee
    ///      is the bond: nothing is owed beyond what the challenger put up.
    function test_theAnswerFeeNeverExceedsTheBond() public {
        (uint256 r, address[] memory list) = _toAvailability();
        _challenge(r, list[2], 2);
        uint256 before = answerer.balance;
        uint256 challengerBefore = challenger.balance;
        vm.fee(1 ether);
        vm.prank(answerer);
        fraud.answerAvailability(r, list[2], bytes32(uint256(2)), _root(2), WEIGHT, _vector(2));
        assertEq(answerer.balance - before, BOND, "capped at the bond");
        assertEq(challenger.balance, challengerBefore, "nothing back");
        assertEq(address(fraud).balance, 0, "nothing left behind");
    }

    function test_anAnswerMustBeTheCommittedVector() public {
        (uint256 r, address[] memory list) = _toAvailability();
        _challenge(r, list[3], 3);
        bytes memory wrong = _vector(3);
        wrong[17] ^= 0x01;
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadData.selector, r, list[3]));
        fraud.answerAvailability(r, list[3], bytes32(uint256(3)), _root(3), WEIGHT, wrong);
        // Short data, and data under another committer's root.
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadData.selector, r, list[3]));
        fraud.answerAvailability(r, list[3], bytes32(uint256(3)), _root(3), WEIGHT, new bytes(252));
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadCommitment.selector, r, list[3]));
        fraud.answerAvailability(r, list[3], bytes32(uint256(3)), _root(4), WEIGHT, _vector(4));
        // A forged weight would move the weight sum: refused.
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadCommitment.selector, r, list[3]));
        fraud.answerAvailability(r, list[3], bytes32(uint256(3)), _root(3), WEIGHT + 1, _vector(3));
        // Too late: the window is over, the committer is dropped.
        vm.roll(rounds.roundInfo(r).deadline + 1);
        vm.expectRevert();
        fraud.answerAvailability(r, list[3], bytes32(uint256(3)), _root(3), WEIGHT, _vector(3));
        rounds.advance(r);
        assertEq(rounds.roundInfo(r).nCommits, 4, "dropped at the deadline");
    }

    function test_challengesAreBondedBoundAndTimely() public {
        (uint256 r, address[] memory list) = _toAvailability();
        vm.prank(challenger);
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudWrongBond.selector, BOND - 1, BOND));
        fraud.challengeAvailability{value: BOND - 1}(r, list[0], bytes32(0), _root(0), WEIGHT);
        // The fields must be the committer's (its weight is what leaves the sum).
        vm.prank(challenger);
        vm.expectRevert(abi.encodeWithSelector(IFraudProofs.FraudBadCommitment.selector, r, list[0]));
        fraud.challengeAvailability{value: BOND}(r, list[0], bytes32(0), _root(0), WEIGHT + 5);
        // Only the fraud-proof contract moves a committer in or out.
        vm.expectRevert(abi.encodeWithSelector(IFedRounds.RoundsUnauthorized.selector, address(this)));
        rounds.setChallenged(r, list[0], WEIGHT, true);
        // Past half the window the committer would have no time to answer.
        vm.roll(rounds.roundInfo(r).deadline - WINDOW / 2 + 1);
        vm.prank(challenger);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFedRounds.RoundsChallengeTooLate.selector, r, rounds.roundInfo(r).deadline - WINDOW / 2
            )
        );
        fraud.challengeAvailability{value: BOND}(r, list[0], bytes32(0), _root(0), WEIGHT);
    }

    /// @dev A window too short to answer in, a free challenge, or a vector
    ///      too long for one answer transaction is refused up front.
    function test_policyAndQuantizationKeepAnAnswerPossible() public {
        IFedRounds.Policy memory pol = _policy(BOND, 1000);
        pol.availabilityBlocks = 3;
        vm.expectRevert(IFedRounds.RoundsBadPolicy.selector);
        new FedRounds(address(this), registry, ledger, pol, bytes32(0), bytes32(0));
        pol = _policy(0, 1000);
        pol.availabilityBlocks = WINDOW;
        vm.expectRevert(IFedRounds.RoundsBadPolicy.selector);
        new FedRounds(address(this), registry, ledger, pol, bytes32(0), bytes32(0));
        vm.expectRevert(IFedRounds.RoundsBadQuant.selector);
        rounds.openRound(1, IFedRounds.Quant({vectorLength: (1 << 16) + 1, chunkElems: 64, fracBits: 16}));
        rounds.openRound(1, IFedRounds.Quant({vectorLength: 1 << 16, chunkElems: 64, fracBits: 16}));
    }

    function test_noChallengeOutsideAvailability() public {
        (uint256 r, address[] memory list) = _toCommit();
        vm.prank(list[0]);
        rounds.commit(r, bytes32(0), _root(0), WEIGHT, 1);
        // In Commit a late committer may still be uploading: no challenge yet.
        vm.prank(challenger);
        vm.expectRevert(
            abi.encodeWithSelector(
                IFedRounds.RoundsWrongPhase.selector, r, IFedRounds.Phase.Availability, IFedRounds.Phase.Commit
            )
        );
        fraud.challengeAvailability{value: BOND}(r, list[0], bytes32(0), _root(0), WEIGHT);
    }

    /// @dev For any set of challenged committers and any subset of them that
    ///      answers: U3 is exactly the unchallenged and the answered, the
    ///      weight sum is theirs, exactly the unanswered are slashed, and the
    ///      fraud-proof contract holds exactly the bonds not yet paid out.
    function testFuzz_challengesLeaveExactlyTheAnsweredAndUnchallenged(uint8 challenged, uint8 answered)
        public
    {
        (uint256 r, address[] memory list) = _toAvailability();
        uint256 held;
        for (uint256 i = 0; i < list.length; ++i) {
            if ((challenged >> i) & 1 == 0) continue;
            _challenge(r, list[i], i);
            held += BOND;
            if ((answered >> i) & 1 == 1) {
                vm.prank(answerer);
                fraud.answerAvailability(r, list[i], bytes32(i), _root(i), WEIGHT, _vector(i));
                held -= BOND;
            }
        }
        assertEq(address(fraud).balance, held, "bonds held = open challenges");
        _toReveal(r);
        uint256 kept;
        for (uint256 i = 0; i < list.length; ++i) {
            bool dropped = (challenged >> i) & 1 == 1 && (answered >> i) & 1 == 0;
            assertEq(registry.peerInfo(list[i]).stake, dropped ? 0 : STAKE, "slashed iff unanswered");
            assertEq(rounds.statusOf(r, list[i]) & (1 << 18) == 0 ? 1 : 0, dropped ? 1 : 0, "U3 membership");
            if (!dropped) ++kept;
            else fraud.reclaimAvailabilityBond(r, list[i]);
        }
        IFedRounds.RoundView memory info = rounds.roundInfo(r);
        if (kept < 3) {
            assertEq(uint8(info.phase), uint8(IFedRounds.Phase.Failed), "below t: failed");
        } else {
            assertEq(uint8(info.phase), uint8(IFedRounds.Phase.Reveal), "at least t: Reveal");
            assertEq(info.nCommits, kept, "nCommits = |U3|");
            assertEq(info.weightSum, kept * WEIGHT, "weightSum over U3");
        }
        assertEq(address(fraud).balance, 0, "every bond paid out");
    }

    /// @dev A round whose withholders leave fewer than t survivors fails
    ///      InsufficientCommits at the end of Availability, before any reveal.
    function test_droppingBelowThresholdFailsBeforeAnyReveal() public {
        (uint256 r, address[] memory list) = _toAvailability();
        _challenge(r, list[0], 0);
        _challenge(r, list[1], 1);
        _challenge(r, list[2], 2);
        _toReveal(r);
        IFedRounds.RoundView memory info = rounds.roundInfo(r);
        assertEq(uint8(info.phase), uint8(IFedRounds.Phase.Failed), "failed");
        assertEq(uint8(info.failReason), uint8(IFedRounds.FailReason.InsufficientCommits), "before any reveal");
        fraud.reclaimAvailabilityBond(r, list[0]);
    }
}
