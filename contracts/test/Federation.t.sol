// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase, FraudProofsStandIn} from "./TestBase.sol";
import {FraudProofs} from "../FraudProofs.sol";
import {IFedRounds} from "../interfaces/IFedRounds.sol";
import {IPeerRegistry} from "../interfaces/IPeerRegistry.sol";
import {IPrivacyLedger} from "../interfaces/IPrivacyLedger.sol";
import {FedRounds} from "../FedRounds.sol";
import {PeerRegistry} from "../PeerRegistry.sol";
import {PrivacyLedger} from "../PrivacyLedger.sol";
import {MaskGraph} from "../lib/MaskGraph.sol";

/// @notice Drives the registry, ledger and rounds contracts with random
///         sequences of actions by eight actors, and keeps ghost variables
///         for the invariants in {FederationInvariants}. It also stands in
///         for the fraud-proof contract, so `voidResult` (the slashing path)
///         is exercised without crafting proofs (those have their own tests).
///         Results are posted with the canonical seed list (computed here
///         from the on-chain status flags and the mask graph, as an honest
///         aggregator would), and sometimes with a wrong one, which must be
///         refused; so bonds are posted, finalized, credited, voided and slashed.
contract FederationHandler is TestBase, FraudProofsStandIn {
    uint96 public constant STAKE = 1 ether;
    uint96 public constant BOND = 0.5 ether;
    uint64 public constant CAP = 1_000_000; // micro-ε: room for one round of config 1 (0.73), not two (1.23)
    uint256 public constant ACTORS = 8;

    PeerRegistry public registry;
    PrivacyLedger public ledger;
    FedRounds public rounds;
    address[] public actors;

    uint256 public ghostDeposited;
    uint256 public ghostCommitsTotal;
    uint256 public ghostRoundsFinal;
    uint256 public ghostPaidOut;
    uint256 public maxCommitsPerPeerRound;
    bool public phaseWentBack;
    uint256 public ghostResultsPosted;
    uint256 public ghostVoided;
    uint256 public ghostSlashed; // wei taken from voided bonds (reward + pool)
    uint256 public ghostBadSeedsRejected;
    bool public badSeedsAccepted;
    /// @dev What each account should be able to withdraw: a bond once its
    ///      round is FINAL, a challenger's reward once it proved fraud.
    mapping(address account => uint256 amount) public ghostOwed;
    mapping(uint256 round => bool done) public ghostFinalCounted;
    mapping(uint256 round => mapping(address peer => uint256 count)) public ghostCommits;
    mapping(uint256 round => uint256 rank) public ghostRank;
    mapping(address actor => uint256 index) private _actorIndex;

    constructor() {
        vm.deal(address(this), 1_000 ether);
        registry = new PeerRegistry(address(this), STAKE, 5);
        ledger = new PrivacyLedger(
            address(this), CAP, 10_000_000, [uint32(10126632), 4801692, 2252729, 1214110, 733718, 396981, 227839]
        );
        IFedRounds.Policy memory pol = _policy(BOND, 1_000_000);
        rounds = new FedRounds(address(this), registry, ledger, pol, bytes32(uint256(1)), bytes32(0));
        rounds.setFraudProofs(address(this));
        seedChecker = new FraudProofs(rounds);
        ledger.setCharger(address(rounds));
        registry.setSlasher(address(rounds));
        ledger.registerConfig(1, 50_000, 1_000, 10, [uint32(900_000), 700_000, 600_000, 500_000, 500_000, 500_000, 500_000]);
        for (uint256 i = 0; i < ACTORS; ++i) {
            address actor = address(uint160(0xA11CE + i));
            actors.push(actor);
            _actorIndex[actor] = i;
            vm.deal(actor, 100 ether); // a pranked call pays its value from the actor
        }
    }

    receive() external payable {}

    function _actor(uint256 seed) private view returns (address) {
        return actors[seed % ACTORS];
    }

    function _round() private view returns (uint256) {
        return rounds.currentRound();
    }

    function _track() private {
        uint256 r = _round();
        if (r == 0) return;
        IFedRounds.RoundView memory v = rounds.roundInfo(r);
        uint256 rank = uint256(v.attempt) * 16 + uint256(v.phase);
        if (rank < ghostRank[r]) phaseWentBack = true;
        ghostRank[r] = rank;
        // Opening round r finalizes r - 1 in the same call: look at both.
        if (r > 1) _trackFinal(r - 1);
        _trackFinal(r);
    }

    /// @dev The first time a round is seen FINAL, its bond is owed to its aggregator.
    function _trackFinal(uint256 r) private {
        if (ghostFinalCounted[r] || rounds.roundInfo(r).phase != IFedRounds.Phase.Final) return;
        ghostFinalCounted[r] = true;
        ghostRoundsFinal += 1;
        IFedRounds.ResultView memory res = rounds.resultOf(r);
        ghostOwed[res.aggregator] += res.bond;
    }

    /// @dev U3 (committed) and U2 \ U3 (shared, then dropped), as indices, ascending.
    function _sets(uint256 r) private view returns (uint16[] memory kept, uint16[] memory gone) {
        address[] memory list = rounds.participantsOf(r);
        kept = new uint16[](list.length);
        gone = new uint16[](list.length);
        uint256 nk;
        uint256 ng;
        for (uint256 i = 0; i < list.length; ++i) {
            uint256 st = rounds.statusOf(r, list[i]);
            if (st & (1 << 18) != 0) kept[nk++] = uint16(i);
            else if (st & (1 << 17) != 0) gone[ng++] = uint16(i);
        }
        assembly {
            mstore(kept, nk)
            mstore(gone, ng)
        }
    }

    /// @dev The canonical seed list for the round's U2/U3 (FedRounds._checkSeedSet's order).
    function _canonicalSeeds(uint256 r, uint256 salt) private view returns (IFedRounds.Seed[] memory seeds) {
        (uint16[] memory kept, uint16[] memory gone) = _sets(r);
        IFedRounds.RoundView memory v = rounds.roundInfo(r);
        uint256 k = MaskGraph.degree(v.n, v.t);
        uint256[] memory pos = MaskGraph.positions(v.seed, v.n, k);
        seeds = new IFedRounds.Seed[](kept.length * (gone.length + 1));
        uint256 at;
        for (uint256 i = 0; i < kept.length; ++i) {
            seeds[at++] = IFedRounds.Seed({u: kept[i], v: 0xFFFF, value: bytes32(salt + at)});
        }
        for (uint256 g = 0; g < gone.length; ++g) {
            for (uint256 i = 0; i < kept.length; ++i) {
                if (!MaskGraph.adjacent(pos, k, kept[i], gone[g])) continue;
                seeds[at++] = IFedRounds.Seed({u: kept[i], v: gone[g], value: bytes32(salt + at)});
            }
        }
        assembly {
            mstore(seeds, at)
        }
    }

    // ------------------------------------------------------------------ actions

    function register(uint256 a) external {
        address who = _actor(a);
        vm.prank(who);
        try registry.register{value: STAKE}(1, 7, bytes32(a)) {
            ghostDeposited += STAKE;
        } catch {}
        _track();
    }

    function leave(uint256 a) external {
        // Keep a quorum: leaving is only tried while more than six peers are registered.
        if (registry.peers().length <= 6) return;
        vm.prank(_actor(a));
        try registry.requestLeave() {} catch {}
        _track();
    }

    function withdrawStake(uint256 a) external {
        address who = _actor(a);
        uint256 stake = registry.peerInfo(who).stake;
        vm.prank(who);
        try registry.withdraw() {
            ghostPaidOut += stake;
        } catch {}
    }

    function open() external {
        try rounds.openRound(1, IFedRounds.Quant({vectorLength: 64, chunkElems: 64, fracBits: 16})) {} catch {}
        _track();
    }

    /// @dev The selection step: anyone, once the target block is mined.
    function select(uint256 wait) external {
        uint256 r = _round();
        vm.roll(block.number + 2 + wait % 2); // past the target block (openRound's + 1)
        try rounds.selectParticipants(r) {} catch {}
        _track();
    }

    function keys(uint256 a) external {
        uint256 r = _round(); // before the prank: it applies to the next call
        vm.prank(_actor(a));
        try rounds.postKeys(r, bytes32(a), bytes32(a + 1)) {} catch {}
        _track();
    }

    function shares(uint256 a) external {
        uint256 r = _round();
        vm.prank(_actor(a));
        try rounds.postShares(r, bytes32(a), bytes32(a + 2)) {} catch {}
        _track();
    }

    function commit(uint256 a, uint64 weight) external {
        address who = _actor(a);
        uint256 r = _round();
        vm.prank(who);
        try rounds.commit(r, bytes32(a), bytes32(a + 3), weight % 1000 + 1, 1) {
            ghostCommitsTotal += 1;
            uint256 c = ++ghostCommits[r][who];
            if (c > maxCommitsPerPeerRound) maxCommitsPerPeerRound = c;
        } catch {}
        _track();
    }

    function reveal(uint256 a) external {
        address who = _actor(a);
        uint256 r = _round();
        address[] memory list = rounds.participantsOf(r);
        uint256 self = (rounds.statusOf(r, who) & 0xFFFF);
        uint256 m = 0;
        uint16[] memory tmp = new uint16[](list.length);
        for (uint256 i = 0; i < list.length; ++i) {
            if (i + 1 != self && rounds.statusOf(r, list[i]) & (1 << 17) != 0) tmp[m++] = uint16(i);
        }
        uint16[] memory dealers = new uint16[](m);
        uint256[] memory vals = new uint256[](m);
        for (uint256 i = 0; i < m; ++i) {
            dealers[i] = tmp[i];
            vals[i] = a + i;
        }
        vm.prank(who);
        try rounds.reveal(r, dealers, vals) {} catch {}
        _track();
    }

    function postResult(uint256 a) external {
        uint256 r = _round();
        if (r == 0) return;
        IFedRounds.Seed[] memory seeds = _canonicalSeeds(r, a);
        // One post in five carries a wrong list: a seed dropped, or two swapped.
        bool wrong = a % 5 == 0 && seeds.length > 0;
        if (wrong) {
            if (seeds.length > 1 && (a >> 8) % 2 == 0) {
                (seeds[0], seeds[seeds.length - 1]) = (seeds[seeds.length - 1], seeds[0]);
            } else {
                IFedRounds.Seed[] memory shorter = new IFedRounds.Seed[](seeds.length - 1);
                for (uint256 i = 0; i < shorter.length; ++i) shorter[i] = seeds[i];
                seeds = shorter;
            }
        }
        vm.prank(_actor(a));
        try rounds.postResult{value: BOND}(r, bytes32(a), bytes32(a + 1), bytes32(a + 2), seeds) {
            ghostDeposited += BOND;
            ghostResultsPosted += 1;
            if (wrong) badSeedsAccepted = true;
        } catch (bytes memory err) {
            if (wrong && bytes4(err) == IFedRounds.RoundsBadSeeds.selector) ghostBadSeedsRejected += 1;
        }
        _track();
    }

    /// @dev Stands in for a proven fraud (this handler is the fraud-proof contract).
    function proveFraud(uint256 a) external {
        uint256 r = _round();
        if (r == 0) return;
        IFedRounds.ResultView memory res = rounds.resultOf(r);
        uint256 bond = res.bond;
        address challenger = _actor(a);
        try rounds.voidResult(r, challenger) {
            ghostVoided += 1;
            ghostSlashed += bond;
            // A self-challenge earns nothing (FedRounds: no recovering one's own bond).
            if (challenger != res.aggregator) {
                ghostOwed[challenger] += bond * rounds.policy().challengerRewardBps / 10_000;
            }
        } catch {}
        _track();
    }

    function roll(uint8 blocks) external {
        vm.roll(block.number + uint256(blocks % 12) + 1);
        try rounds.advance(_round()) {} catch {}
        _track();
    }

    function finalize() external {
        try rounds.finalize(_round()) {} catch {}
        _track();
    }

    function withdrawRewards(uint256 a) external {
        address who = _actor(a);
        uint256 amount = rounds.withdrawable(who);
        vm.prank(who);
        try rounds.withdraw() {
            ghostPaidOut += amount;
            ghostOwed[who] = 0;
        } catch {}
        _track();
    }

    /// @dev Eight steps of whatever the current phase needs (keys, shares,
    ///      commit, reveal, a result, letting a deadline pass, opening the
    ///      next round), so random sequences reach deep states: later rounds,
    ///      exhausted budgets, refunds, slashes.
    function progress(uint256 a, uint64 weight) external {
        for (uint256 j = 0; j < 8; ++j) {
            _step(uint256(keccak256(abi.encode(a, j))), weight);
        }
    }

    function _step(uint256 a, uint64 weight) private {
        uint256 r = _round();
        if (r == 0) {
            for (uint256 i = 0; i < ACTORS; ++i) this.register(i);
            this.open();
            return;
        }
        IFedRounds.Phase ph = rounds.roundInfo(r).phase;
        address[] memory list = rounds.participantsOf(r);
        uint256 who = a;
        uint256 coin = uint256(keccak256(abi.encode(a, "coin"))); // before `a` names an actor
        // Mostly act as a participant (productive steps); sometimes as anyone.
        if (a % 8 != 0 && list.length > 0) who = _actorIndex[list[(a >> 16) % list.length]];
        a = who;
        // (Phases numbered as before Selection existed, so the walk stays the one tuned for reach.)
        uint256 phOld = ph == IFedRounds.Phase.None ? 0 : uint256(ph) - 1;
        if (uint256(keccak256(abi.encode(a, r, phOld))) % 10 == 0) this.roll(uint8(a >> 8)); // deadlines pass too
        else if (ph == IFedRounds.Phase.Selection) this.select(a);
        else if (ph == IFedRounds.Phase.Keys) this.keys(a);
        else if (ph == IFedRounds.Phase.Shares) this.shares(a);
        else if (ph == IFedRounds.Phase.Commit) this.commit(a, weight);
        else if (ph == IFedRounds.Phase.Reveal) this.reveal(a);
        else if (ph == IFedRounds.Phase.Aggregate) this.postResult(a);
        // A first result is proven wrong half the time; the re-posted one stands,
        // so rounds still finalize (budgets allow only a few rounds here).
        else if (ph == IFedRounds.Phase.Challenge && coin % 2 == 0 && rounds.roundInfo(r).attempt == 0) {
            this.proveFraud(coin);
        }
        else if (ph == IFedRounds.Phase.Challenge) this.roll(uint8(a));
        else if (coin % 4 == 0) this.withdrawRewards(coin >> 8);
        else this.open();
    }

    // ------------------------------------------------------------------ views

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    /// @dev Σ withdrawable over everyone who can have a balance.
    function owedByRounds() external view returns (uint256 sum) {
        for (uint256 i = 0; i < ACTORS; ++i) {
            sum += rounds.withdrawable(actors[i]);
        }
        uint256 r = rounds.currentRound();
        if (r != 0 && rounds.roundInfo(r).phase == IFedRounds.Phase.Challenge) sum += rounds.resultOf(r).bond;
        sum += rounds.slashedPool();
    }
}

/// @notice Invariants with ghost variables (Solady-style), over random action
///         sequences of {FederationHandler}.
contract FederationInvariants is TestBase {
    FederationHandler internal h;

    function setUp() public {
        h = new FederationHandler();
        targetContract(address(h));
    }

    /// @notice A peer's cumulative ε never exceeds its cap.
    function invariant_epsilonNeverExceedsCap() public view {
        for (uint256 i = 0; i < h.actorCount(); ++i) {
            assertLe(h.ledger().epsilonOf(h.actors(i)), h.CAP(), "epsilon above cap");
        }
    }

    /// @notice At most one commitment per peer per round.
    function invariant_oneCommitmentPerPeerPerRound() public view {
        assertLe(h.maxCommitsPerPeerRound(), 1, "double commit");
    }

    /// @notice Phases only move forward (a voided result re-opens aggregation
    ///         under a higher attempt number, so (attempt, phase) still grows).
    function invariant_phasesOnlyAdvance() public view {
        assertTrue(!h.phaseWentBack(), "phase went back");
    }

    /// @notice Bonds are credited only when their round is FINAL, a voided
    ///         (slashed) bond is never credited to its aggregator, and a
    ///         challenger gets exactly its reward: each account's withdrawable
    ///         balance is what the ghost ledger says it is owed.
    function invariant_bondsCreditedOnlyWhenFinal() public view {
        for (uint256 i = 0; i < h.actorCount(); ++i) {
            address who = h.actors(i);
            assertEq(h.rounds().withdrawable(who), h.ghostOwed(who), "withdrawable != owed");
        }
    }

    /// @notice A result whose seed list is not the canonical one is never accepted.
    function invariant_wrongSeedListsRefused() public view {
        assertTrue(!h.badSeedsAccepted(), "a wrong seed list was accepted");
    }

    /// @notice The registry is frozen exactly while the current round waits for its selection.
    function invariant_poolFrozenOnlyDuringSelection() public view {
        uint256 r = h.rounds().currentRound();
        bool selecting = r != 0 && h.rounds().roundInfo(r).phase == IFedRounds.Phase.Selection;
        assertTrue(h.registry().frozen() == selecting, "frozen iff selecting");
    }

    /// @notice Stakes and bonds are conserved: what went in is held or was paid out.
    function invariant_valueConserved() public view {
        PeerRegistry reg = h.registry();
        FedRounds rnd = h.rounds();
        assertEq(address(reg).balance, reg.totalStaked() + reg.slashedStake(), "registry holds stakes + slashed");
        assertEq(address(rnd).balance, h.owedByRounds(), "rounds holds bonds + owed + slashed");
        assertEq(h.ghostDeposited(), address(reg).balance + address(rnd).balance + h.ghostPaidOut(), "in == held + out");
    }
}

/// @notice Fuzzed examples of single rules.
contract FederationFuzz is TestBase {
    FederationHandler internal h;

    function setUp() public {
        h = new FederationHandler();
    }

    /// @dev Any stake below the minimum is refused with the named error.
    function testFuzz_stakeBelowMinimumReverts(uint96 stake) public {
        stake = stake % h.STAKE();
        vm.deal(address(this), stake);
        PeerRegistry reg = h.registry();
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryStakeTooLow.selector, uint256(stake), uint256(h.STAKE())));
        reg.register{value: stake}(1, 7, bytes32(0));
    }

    /// @dev Modalities outside text|image|behaviour are refused.
    function testFuzz_badModalitiesRevert(uint8 m) public {
        vm.assume(m == 0 || m > 7);
        PeerRegistry reg = h.registry();
        vm.deal(address(this), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IPeerRegistry.RegistryBadModalities.selector, m));
        reg.register{value: 1 ether}(1, m, bytes32(0));
    }
}

/// @notice The commit-time budget guard: FedRounds.commit charges the ledger
///         last and reverts with LedgerBudgetExceeded when the charge would
///         pass the cap, undoing the whole commit. Selection applies
///         canAfford, so through the contracts alone a selected peer can
///         always afford its commit; to reach the guard the test raises the
///         peer's spent budget between selection and commit (vm.store into
///         PrivacyLedger's `_spent`, slot 2: charger 0, _configs 1).
contract FederationBudgetAtCommit is TestBase {
    function test_overBudgetCommitRevertsWithLedgerBudgetExceeded() public {
        FederationHandler h = new FederationHandler();
        for (uint256 i = 0; i < h.ACTORS(); ++i) h.register(i);
        h.open();
        h.select(0);
        FedRounds rounds = h.rounds();
        uint256 r = rounds.currentRound();
        address[] memory list = rounds.participantsOf(r);
        for (uint256 i = 0; i < h.ACTORS(); ++i) {
            for (uint256 j = 0; j < list.length; ++j) {
                if (h.actors(i) == list[j]) h.keys(i);
            }
        }
        for (uint256 i = 0; i < h.ACTORS(); ++i) {
            for (uint256 j = 0; j < list.length; ++j) {
                if (h.actors(i) == list[j]) h.shares(i);
            }
        }
        assertTrue(rounds.roundInfo(r).phase == IFedRounds.Phase.Commit, "in Commit");
        address peer = list[0];
        PrivacyLedger ledger = h.ledger();
        uint256 cap = h.CAP();
        uint256 packed = uint256(1) << 224; // the prepared flag
        for (uint256 i = 0; i < 7; ++i) {
            packed |= cap << (32 * i);
        }
        vm.store(address(ledger), keccak256(abi.encode(peer, uint256(2))), bytes32(packed));
        assertEq(ledger.rdpOf(peer)[6], cap, "the storage write landed in _spent");
        uint64 spent = ledger.epsilonOf(peer);
        assertTrue(!ledger.canAfford(peer, 1), "the peer can no longer afford the round");
        uint64 wouldBe = ledger.epsilonAfter(peer, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IPrivacyLedger.LedgerBudgetExceeded.selector, peer, wouldBe, uint64(cap))
        );
        vm.prank(peer);
        rounds.commit(r, bytes32(uint256(1)), bytes32(uint256(2)), 7, 1);
        assertEq(uint256(rounds.commitHashOf(r, peer)), 0, "no commitment kept");
        assertEq(rounds.roundInfo(r).nCommits, 0, "no commit counted");
        assertEq(rounds.roundInfo(r).weightSum, 0, "no weight added");
        assertEq(ledger.epsilonOf(peer), spent, "nothing charged");
        // Another participant commits as usual.
        vm.prank(list[1]);
        rounds.commit(r, bytes32(uint256(3)), bytes32(uint256(4)), 7, 1);
        assertEq(rounds.roundInfo(r).nCommits, 1, "the other commit counted");
    }
}

/// @notice The handler reaches deep states; otherwise the invariants above
///         would hold vacuously.
contract FederationHandlerReach is TestBase {
    function test_progressReachesBudgetExhaustion() public {
        FederationHandler h = new FederationHandler();
        for (uint256 i = 0; i < 80; ++i) { // each round also takes a selection step
            h.progress(i * 7 + 3, uint64(i));
        }
        assertTrue(h.rounds().currentRound() >= 3, "several rounds");
        assertTrue(h.ghostCommitsTotal() >= 10, "commits happened");
        // Every actor has been charged up to where one more round would pass the cap.
        uint256 exhausted = 0;
        for (uint256 i = 0; i < h.actorCount(); ++i) {
            if (!h.ledger().canAfford(h.actors(i), 1)) exhausted++;
        }
        assertTrue(exhausted > 0, "some budget exhausted");
    }

    /// @dev The bond and slash paths are reached: results posted, rounds
    ///      finalized (bonds credited), results voided (bonds slashed), wrong
    ///      seed lists refused, rewards withdrawn.
    function test_progressReachesBondAndSlashPaths() public {
        FederationHandler h = new FederationHandler();
        // Walk 1 (i * 7 + 1): since the selection step, walk 3 no longer
        // posts two results in 50 steps; reach is seed-dependent.
        for (uint256 i = 0; i < 50; ++i) {
            h.progress(i * 7 + 1, uint64(i));
        }
        assertTrue(h.ghostResultsPosted() >= 2, "results posted");
        assertTrue(h.ghostRoundsFinal() >= 1, "rounds finalized");
        assertTrue(h.ghostVoided() >= 1, "results voided");
        assertTrue(h.ghostSlashed() >= h.BOND(), "bonds slashed");
        assertTrue(h.ghostBadSeedsRejected() >= 1, "wrong seed lists refused");
        assertTrue(h.ghostPaidOut() > 0, "rewards or stakes withdrawn");
    }
}
