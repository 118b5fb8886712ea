// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFedRounds} from "./interfaces/IFedRounds.sol";
import {IFraudProofs} from "./interfaces/IFraudProofs.sol";
import {IPeerRegistry} from "./interfaces/IPeerRegistry.sol";
import {IPrivacyLedger} from "./interfaces/IPrivacyLedger.sol";
import {MaskGraph} from "./lib/MaskGraph.sol";

/// @title FedRounds
/// @notice See {IFedRounds}.
/// @dev Storage per round:
///      slot 0 (RoundView, stored as is): phase:8 | failReason:8 | n:16 | t:16 | nKeys:16 |
///             nShares:16 | nCommits:16 | nReveals:16 | dpConfig:32 |
///             deadline:64 | attempt:8 | nExcluded:16       (232 bits)
///      slot 1: vectorLength:32 | chunkElems:16 | fracBits:8 | weightSum:96 | openedBlock:64
///      slot 2: adapterCid; slot 3: seed; slot 4: adapterRoot (the Merkle
///      root of the fixed-point adapter the round starts from).
///      Per (round, peer) a packed status word — index+1 (bits 0-15), step
///      flags (16-19), the excluded (20) and challenged (21) flags and the top 224 bits of the commitment (32-255) —
///      written non-zero at selection, so later writes are cheap.
///      Value held = Σ active bonds + Σ withdrawable + slashedPool.
contract FedRounds is IFedRounds {
    uint256 private constant F_KEYS = 1 << 16;
    uint256 private constant F_SHARES = 1 << 17;
    uint256 private constant F_COMMITTED = 1 << 18;
    uint256 private constant F_REVEALED = 1 << 19;
    /// @dev A bad share of this dealer was proven before it committed.
    uint256 private constant F_EXCLUDED = 1 << 20;
    /// @dev A data-availability challenge of this committer is unanswered.
    uint256 private constant F_CHALLENGED = 1 << 21;
    /// @dev Bits 0-31 of a status word: index+1 and step flags; bits 32-255
    ///      hold the top 224 bits of the peer's commitment once it committed.
    uint256 private constant LOW = 0xFFFFFFFF;
    uint16 private constant SELF = 0xFFFF;
    bytes32 private constant COMMIT_DOMAIN = keccak256("fedledger.commit.v1");
    bytes32 private constant KEYS_DOMAIN = keccak256("fedledger.keys.v1");
    /// @dev Bounds on the quantization the governor fixes with round 1.
    ///      fracBits below 8 make updates useless (everyone's ε burnt on
    ///      rounding noise); above 24 the clip range 2^(31-f)/n leaves no
    ///      room for an update. MAX_PROOF_WORK bounds (seeds a chunk proof
    ///      may expand + member chunks it sums) × (chunk elements): ≈ 75 gas
    ///      each measured at n = 50, so 170k keeps the worst chunk proof
    ///      under 15M. MAX_CHUNK_ELEMS bounds the proof's memory.
    uint8 private constant MIN_FRAC_BITS = 8;
    uint8 private constant MAX_FRAC_BITS = 24;
    uint256 private constant MAX_PROOF_WORK = 170_000;
    uint256 private constant MAX_CHUNK_ELEMS = 4096;
    /// @dev With an Availability phase, a committer must be able to answer a
    ///      challenge with its whole vector in one transaction: 2^16 elements
    ///      (256 KiB of calldata and log) stay under EIP-7825's 2^24 gas cap.
    uint256 private constant MAX_ANSWER_ELEMS = 1 << 16;
    /// @dev The least Availability window: half of it is the time to answer.
    uint32 private constant MIN_AVAILABILITY_BLOCKS = 4;
    /// @dev Proven frauds a round tolerates before it fails (TooManyFrauds):
    ///      each costs its poster a bond, and the round cannot be held open forever.
    uint8 private constant MAX_ATTEMPTS = 5;
    /// @dev The selection seed is the hash of block openedBlock + 1 (or of the
    ///      block after a re-target), usable for the 256 blocks blockhash serves.
    uint64 private constant SELECTION_DELAY = 1;
    uint64 private constant BLOCKHASH_WINDOW = 256;

    /// @dev Per round: the block whose hash seeds the selection, the pool
    ///      size snapshotted at openRound, and the block it was selected in.
    struct Draw {
        uint64 targetBlock;
        uint64 poolSize;
        uint64 selectedBlock;
    }

    address public immutable governor;
    IPeerRegistry public immutable registry;
    IPrivacyLedger public immutable ledger;

    Policy private _policy;
    address public fraudProofs;
    uint256 public override currentRound;
    bytes32 public override globalAdapterCid;
    bytes32 public override globalAdapterRoot;
    Quant private _quant;
    uint256 public override slashedPool;

    mapping(uint256 round => RoundView) private _rounds;
    mapping(uint256 round => ResultView) private _results;
    mapping(uint256 round => Draw) private _draws;
    mapping(uint256 round => address[]) private _participants;
    mapping(uint256 round => mapping(address peer => uint256 status)) private _status;
    mapping(uint256 round => mapping(address peer => bytes32 keysHash)) private _keys;
    mapping(uint256 round => mapping(address peer => bytes32 root)) private _shareRoots;
    mapping(address account => uint256 amount) public override withdrawable;
    /// @dev Unanswered availability challenges of a round (Availability only).
    mapping(uint256 round => uint256 count) private _challenged;
    bytes32 public override dataSchema;

    constructor(
        address governor_,
        IPeerRegistry registry_,
        IPrivacyLedger ledger_,
        Policy memory policy_,
        bytes32 initialAdapterCid,
        bytes32 initialAdapterRoot
    ) {
        if (
            policy_.threshold == 0 || policy_.threshold > policy_.participants
                || policy_.challengerRewardBps > 5_000 || policy_.keysBlocks == 0 || policy_.sharesBlocks == 0
                || policy_.commitBlocks == 0 || policy_.revealBlocks == 0 || policy_.aggregateBlocks == 0
                || policy_.challengeBlocks == 0 || policy_.maxWeight == 0
                || (policy_.availabilityBlocks != 0
                    && (policy_.availabilityBlocks < MIN_AVAILABILITY_BLOCKS || policy_.bond == 0))
        ) revert RoundsBadPolicy();
        governor = governor_;
        registry = registry_;
        ledger = ledger_;
        _policy = policy_;
        globalAdapterCid = initialAdapterCid;
        globalAdapterRoot = initialAdapterRoot;
    }

    // ---------------------------------------------------------------- open

    /// @inheritdoc IFedRounds
    function openRound(uint32 dpConfig, Quant calldata quant) external override returns (uint256 round) {
        uint256 prev = currentRound;
        if (prev != 0) {
            _sync(prev);
            Phase ph = _rounds[prev].phase;
            if (ph != Phase.Final && ph != Phase.Failed) revert RoundsRoundActive(prev);
            // Only the governor or an eligible registered peer opens, and only
            // with the quantization the governor fixed with round 1.
            if (msg.sender != governor && !registry.isEligible(msg.sender)) revert RoundsUnauthorized(msg.sender);
            Quant memory q = _quant;
            if (quant.vectorLength != q.vectorLength || quant.chunkElems != q.chunkElems || quant.fracBits != q.fracBits)
            {
                revert RoundsBadQuant();
            }
        } else {
            if (msg.sender != governor) revert RoundsUnauthorized(msg.sender);
            _checkQuant(quant);
            _quant = quant;
            emit QuantFixed(quant.vectorLength, quant.chunkElems, quant.fracBits);
        }
        // Reverts LedgerUnknownConfig for a configuration the governor never registered.
        ledger.canAfford(msg.sender, dpConfig);
        round = prev + 1;
        currentRound = round;
        // Snapshot: the selection draws from the first `count` registry
        // entries, which stay put (leaves and withdrawals are frozen until the
        // selection). A small pool is checked for enough eligible peers now,
        // so a hopeless round reverts instead of freezing the registry.
        uint256 count = registry.peerCount();
        uint16 threshold = _policy.threshold;
        if (count <= 2 * uint256(_policy.participants)) {
            (, uint256 m) = _eligiblePool(count, dpConfig, block.number);
            if (m < threshold) revert RoundsNotEnoughEligible(m, threshold);
        } else if (count < threshold) {
            revert RoundsNotEnoughEligible(count, threshold);
        }
        RoundView storage r = _rounds[round];
        r.phase = Phase.Selection;
        r.t = threshold;
        r.dpConfig = dpConfig;
        r.vectorLength = quant.vectorLength;
        r.chunkElems = quant.chunkElems;
        r.fracBits = quant.fracBits;
        r.openedBlock = uint64(block.number);
        r.adapterCid = globalAdapterCid;
        r.adapterRoot = globalAdapterRoot;
        _draws[round].poolSize = uint64(count);
        registry.setFrozen(true);
        _schedule(round, r);
    }

    /// @dev Name the next block as the one whose hash seeds the selection:
    ///      nobody knows it while the pool can still change (it is frozen
    ///      from now on), and blockhash serves it for 256 blocks.
    function _schedule(uint256 round, RoundView storage r) private {
        uint64 target = uint64(block.number) + SELECTION_DELAY;
        _draws[round].targetBlock = target;
        r.deadline = target + BLOCKHASH_WINDOW;
        emit SelectionScheduled(round, target, _draws[round].poolSize);
        emit PhaseAdvanced(round, Phase.Selection, r.deadline);
    }

    /// @inheritdoc IFedRounds
    function selectParticipants(uint256 round) external override {
        RoundView storage r = _rounds[round];
        if (r.phase != Phase.Selection) revert RoundsWrongPhase(round, Phase.Selection, r.phase);
        Draw storage dr = _draws[round];
        uint64 target = dr.targetBlock;
        if (block.number <= target) revert RoundsSelectionNotDue(round, target);
        if (block.number > r.deadline) return _schedule(round, r); // blockhash(target) is gone
        bytes32 seed = keccak256(abi.encode(blockhash(target), round, address(this)));
        uint32 dpConfig = r.dpConfig;
        address[] memory chosen = _select(seed, dpConfig, dr.poolSize, r.openedBlock);
        dr.selectedBlock = uint64(block.number);
        r.seed = seed;
        r.n = uint16(chosen.length);
        registry.setFrozen(false);
        if (chosen.length < r.t) return _fail(round, r, FailReason.NotEnoughEligible);
        r.phase = Phase.Keys;
        r.deadline = uint64(block.number) + _policy.keysBlocks;
        address[] storage list = _participants[round];
        for (uint256 i = 0; i < chosen.length; ++i) {
            list.push(chosen[i]);
            _status[round][chosen[i]] = i + 1;
        }
        emit RoundOpened(
            round, r.adapterCid, dpConfig, seed, r.n, r.t, r.vectorLength, r.chunkElems, r.fracBits
        );
        emit ParticipantsSelected(round, chosen);
        emit PhaseAdvanced(round, Phase.Keys, r.deadline);
        for (uint256 i = 0; i < chosen.length; ++i) {
            ledger.prepare(chosen[i]);
        }
    }

    /// @dev The governor's quantization is bounded so that honest peers can
    ///      take part (fracBits) and the worst-case chunk proof — the most
    ///      seeds a surviving round can post, t self seeds plus at most
    ///      min(t, k) pairwise seeds per dropped peer — fits the gas target.
    function _checkQuant(Quant calldata quant) private view {
        uint256 n = _policy.participants;
        uint256 t = _policy.threshold;
        uint256 k = n > 1 ? MaskGraph.degree(n, t) : 0;
        uint256 seeds = t + (n - t) * (t < k ? t : k);
        if (
            quant.vectorLength == 0 || quant.chunkElems == 0 || quant.chunkElems % 8 != 0
                || quant.fracBits < MIN_FRAC_BITS || quant.fracBits > MAX_FRAC_BITS
                || quant.chunkElems > MAX_CHUNK_ELEMS || uint256(quant.chunkElems) * (seeds + n) > MAX_PROOF_WORK
                || (_policy.availabilityBlocks != 0 && quant.vectorLength > MAX_ANSWER_ELEMS)
        ) revert RoundsBadQuant();
    }

    /// @dev The first `count` registry entries that were eligible for a round
    ///      opened at `openedBlock` and can afford `dpConfig`, in registry order.
    function _eligiblePool(uint256 count, uint32 dpConfig, uint256 openedBlock)
        private
        view
        returns (address[] memory pool, uint256 m)
    {
        pool = new address[](count);
        for (uint256 i = 0; i < count; ++i) {
            address a = registry.peerAt(i);
            if (registry.isEligibleAt(a, openedBlock) && ledger.canAfford(a, dpConfig)) pool[m++] = a;
        }
    }

    /// @dev O(participants), not O(registered). The pool is the first `count`
    ///      registry entries (the snapshot openRound took); a peer is eligible
    ///      if it was registered long enough before `openedBlock`, is not
    ///      quarantined or leaving, and has budget left for `dpConfig`. A small
    ///      pool (at most twice the participants) is filtered for eligibility
    ///      and then partially Fisher–Yates shuffled by keccak256(seed, i). A
    ///      large pool is sampled: draw d picks peerAt(keccak256(seed, d) mod
    ///      count) and keeps it if eligible and not yet chosen, for at most
    ///      4 × participants draws. Everyone can recompute the selection
    ///      (coordinator/chain/_selection.py). May return fewer than t.
    function _select(bytes32 seed, uint32 dpConfig, uint256 count, uint256 openedBlock)
        private
        view
        returns (address[] memory chosen)
    {
        uint256 want = _policy.participants;
        if (count <= 2 * want) {
            (address[] memory pool, uint256 m) = _eligiblePool(count, dpConfig, openedBlock);
            uint256 n = m < want ? m : want;
            chosen = new address[](n);
            for (uint256 i = 0; i < n; ++i) {
                uint256 j = i + uint256(keccak256(abi.encode(seed, i))) % (m - i);
                (pool[i], pool[j]) = (pool[j], pool[i]);
                chosen[i] = pool[i];
            }
            return chosen;
        }
        chosen = new address[](want);
        // One bit per registered index marks a draw already seen (count / 256
        // words of memory: 8 words for 2,000 peers).
        uint256[] memory seen = new uint256[](count / 256 + 1);
        uint256 got = 0;
        for (uint256 d = 0; d < 4 * want && got < want; ++d) {
            uint256 j = uint256(keccak256(abi.encode(seed, d))) % count;
            uint256 bit = 1 << (j & 255);
            if (seen[j >> 8] & bit != 0) continue;
            seen[j >> 8] |= bit;
            address a = registry.peerAt(j);
            if (registry.isEligibleAt(a, openedBlock) && ledger.canAfford(a, dpConfig)) chosen[got++] = a;
        }
        assembly ("memory-safe") {
            mstore(chosen, got) // shrink to the peers found (got <= want)
        }
    }

    // ------------------------------------------------------------- actions

    /// @inheritdoc IFedRounds
    function postKeys(uint256 round, bytes32 encPk, bytes32 maskPk) external override {
        RoundView storage r = _enter(round, Phase.Keys);
        uint256 st = _participantStatus(round);
        if (st & F_KEYS != 0) revert RoundsAlreadyActed(round, msg.sender);
        _status[round][msg.sender] = st | F_KEYS;
        _keys[round][msg.sender] = keccak256(abi.encode(KEYS_DOMAIN, encPk, maskPk));
        emit KeysPosted(round, msg.sender, encPk, maskPk);
        if (++r.nKeys == r.n) _advance(round, r);
        else if (r.nKeys == _graceQuorum(r.t, r.n)) _quorumGrace(round, r, r.openedBlock);
    }

    /// @inheritdoc IFedRounds
    function postShares(uint256 round, bytes32 bundleCid, bytes32 shareRoot) external override {
        RoundView storage r = _enter(round, Phase.Shares);
        uint256 st = _participantStatus(round);
        if (st & F_KEYS == 0) revert RoundsMissedStep(round, msg.sender);
        if (st & F_SHARES != 0) revert RoundsAlreadyActed(round, msg.sender);
        _status[round][msg.sender] = st | F_SHARES;
        _shareRoots[round][msg.sender] = shareRoot;
        emit SharesPosted(round, msg.sender, bundleCid, shareRoot);
        if (++r.nShares == r.nKeys) _advance(round, r);
    }

    /// @inheritdoc IFedRounds
    function commit(uint256 round, bytes32 cidDigest, bytes32 chunksRoot, uint64 weight, uint32 dpConfig)
        external
        override
    {
        RoundView storage r = _enter(round, Phase.Commit);
        uint256 st = _participantStatus(round);
        if (st & F_COMMITTED != 0) revert RoundsAlreadyCommitted(round, msg.sender);
        if (st & F_EXCLUDED != 0) revert RoundsDealerExcluded(round, msg.sender);
        if (st & F_SHARES == 0) revert RoundsMissedStep(round, msg.sender);
        if (dpConfig != r.dpConfig) revert RoundsWrongDPConfig(dpConfig, r.dpConfig);
        if (weight == 0) revert RoundsZeroWeight();
        // A self-reported weight is capped by policy: at most 2^32 − 1 each,
        // so Σ over 2^16 participants stays below 2^48 (uint96 holds it), and
        // one peer's share of the average is at most cap / (cap + Σ others).
        if (weight > _policy.maxWeight) revert RoundsWeightTooLarge(weight, _policy.maxWeight);
        bytes32 c = commitmentHash(round, msg.sender, cidDigest, chunksRoot, weight, dpConfig);
        // The commitment shares the status slot (already non-zero since
        // selection): one warm rewrite instead of a fresh slot, which keeps
        // commit gas low and constant. 224 bits stay collision-resistant.
        _status[round][msg.sender] = (st & LOW) | F_COMMITTED | (uint256(c) & ~LOW);
        r.weightSum += weight;
        emit UpdateCommitted(round, msg.sender, cidDigest, chunksRoot, weight, dpConfig, c);
        bool local = ledger.modeOf(dpConfig) == IPrivacyLedger.DPMode.Local;
        // Excluded dealers (<= nShares: each is in U2) can never commit.
        uint256 able = r.nShares - r.nExcluded;
        if (++r.nCommits == able) _advance(round, r);
        else if (r.nCommits == _graceQuorum(r.t, able)) _quorumGrace(round, r, r.openedBlock);
        // Interaction last: reverts the whole commit if the budget is exhausted.
        // Distributed modes charge every survivor once U3 is fixed (_advance).
        if (local) ledger.charge(msg.sender, round, dpConfig);
    }

    /// @inheritdoc IFedRounds
    function reveal(uint256 round, uint16[] calldata dealers, uint256[] calldata shares) external override {
        RoundView storage r = _enter(round, Phase.Reveal);
        uint256 st = _participantStatus(round);
        if (st & F_COMMITTED == 0) revert RoundsMissedStep(round, msg.sender);
        if (st & F_REVEALED != 0) revert RoundsAlreadyActed(round, msg.sender);
        if (dealers.length != shares.length) revert RoundsBadDealer(dealers.length);
        address[] storage list = _participants[round];
        uint256 prev = 0;
        for (uint256 i = 0; i < dealers.length; ++i) {
            uint256 d = dealers[i];
            // Strictly increasing (no duplicates), a participant in U2. The
            // caller may name itself: its own share of its self-mask seed
            // counts towards t, so a round with exactly t survivors unmasks.
            if ((i > 0 && d <= prev) || d >= list.length) revert RoundsBadDealer(i);
            if (_status[round][list[d]] & F_SHARES == 0) revert RoundsBadDealer(i);
            prev = d;
        }
        _status[round][msg.sender] = st | F_REVEALED;
        emit SharesRevealed(round, msg.sender, dealers, shares);
        if (++r.nReveals == r.nCommits) _advance(round, r);
        else if (r.nReveals == _graceQuorum(r.t, r.nCommits)) {
            _quorumGrace(round, r, r.deadline - _policy.revealBlocks);
        }
    }

    /// @inheritdoc IFedRounds
    function postResult(
        uint256 round,
        bytes32 newAdapterCid,
        bytes32 maskedSumRoot,
        bytes32 resultRoot,
        Seed[] calldata seeds
    ) external payable override {
        RoundView storage r = _enter(round, Phase.Aggregate);
        if (msg.value < _policy.bond) revert RoundsBondTooLow(msg.value, _policy.bond);
        if (!registry.isEligible(msg.sender)) revert RoundsNotRegistered(msg.sender);
        // The canonical seed list (FraudProofs, where the proofs that use it live).
        IFraudProofs(fraudProofs).checkSeedSet(round, seeds);
        bytes32 sh = keccak256(abi.encode(seeds));
        _results[round] = ResultView({
            aggregator: msg.sender,
            bond: uint96(msg.value),
            newAdapterCid: newAdapterCid,
            maskedSumRoot: maskedSumRoot,
            resultRoot: resultRoot,
            seedsHash: sh
        });
        emit ResultPosted(round, msg.sender, r.attempt, newAdapterCid, maskedSumRoot, resultRoot, sh, msg.value, seeds);
        _advance(round, r);
        // The poster's stake stays in the registry until its result is final
        // or voided: leaving cannot take it out of reach of the proof.
        registry.setLock(msg.sender, true);
    }

    /// @inheritdoc IFedRounds
    function finalize(uint256 round) external override {
        _sync(round);
        RoundView storage r = _rounds[round];
        if (r.phase == Phase.Challenge) revert RoundsChallengeOpen(round, r.deadline);
        if (r.phase != Phase.Final) revert RoundsWrongPhase(round, Phase.Final, r.phase);
    }

    /// @inheritdoc IFedRounds
    function advance(uint256 round) external override {
        _sync(round);
    }

    /// @inheritdoc IFedRounds
    function voidResult(uint256 round, address challenger) external override {
        if (msg.sender != fraudProofs) revert RoundsUnauthorized(msg.sender);
        RoundView storage r = _rounds[round];
        if (r.phase != Phase.Challenge) revert RoundsWrongPhase(round, Phase.Challenge, r.phase);
        ResultView memory res = _results[round];
        // Self-challenge earns nothing; through another account it still
        // loses at least half the bond (challengerRewardBps <= 5000).
        uint256 reward = challenger == res.aggregator ? 0 : uint256(res.bond) * _policy.challengerRewardBps / 10_000;
        withdrawable[challenger] += reward;
        slashedPool += res.bond - reward;
        delete _results[round];
        r.attempt += 1;
        emit ResultVoided(round, res.aggregator, challenger, res.bond, reward);
        if (r.attempt >= MAX_ATTEMPTS) {
            _fail(round, r, FailReason.TooManyFrauds);
        } else {
            r.phase = Phase.Aggregate;
            r.deadline = uint64(block.number) + _policy.aggregateBlocks;
            emit PhaseAdvanced(round, Phase.Aggregate, r.deadline);
        }
        registry.setLock(res.aggregator, false);
        // Voiding never depends on the registry: the slash above stands even
        // if the poster could not be quarantined.
        try registry.quarantine(res.aggregator) {} catch {}
    }

    /// @inheritdoc IFedRounds
    function dealerFault(uint256 round, address dealer, address challenger) external override {
        if (msg.sender != fraudProofs) revert RoundsUnauthorized(msg.sender);
        _sync(round);
        RoundView storage r = _rounds[round];
        Phase ph = r.phase;
        if (ph != Phase.Reveal && ph != Phase.Aggregate && ph != Phase.Challenge) {
            revert RoundsWrongPhase(round, Phase.Reveal, ph);
        }
        // A result computed from the dealer's shares is the dealer's fault,
        // not the poster's: clear it and give the whole bond back.
        ResultView memory res = _results[round];
        if (res.aggregator != address(0)) {
            delete _results[round];
            withdrawable[res.aggregator] += res.bond;
        }
        emit DealerFaultProven(round, dealer, challenger, res.aggregator, res.bond);
        _fail(round, r, FailReason.DealerFault);
        if (res.aggregator != address(0)) registry.setLock(res.aggregator, false);
        // As in voidResult: the fault stands even if the registry refuses.
        try registry.quarantine(dealer) {} catch {}
    }

    /// @inheritdoc IFedRounds
    function badShare(uint256 round, address dealer, address challenger) external override {
        if (msg.sender != fraudProofs) revert RoundsUnauthorized(msg.sender);
        _sync(round);
        RoundView storage r = _rounds[round];
        Phase ph = r.phase;
        if (ph < Phase.Shares || ph > Phase.Challenge) revert RoundsWrongPhase(round, Phase.Shares, ph);
        // Before its commit the dealer leaves the round: in U2 (its shares
        // are out) but never in U3, i.e. unmasked as a dropout after shares,
        // from the honest holders' good shares of its mask key. After its
        // commit its contribution is fixed and it stays. Once per dealer.
        uint256 st = _status[round][dealer];
        bool excluded = ph <= Phase.Commit && st & (F_SHARES | F_COMMITTED | F_EXCLUDED) == F_SHARES;
        if (excluded) {
            _status[round][dealer] = st | F_EXCLUDED;
            ++r.nExcluded;
        }
        emit BadShareProven(round, dealer, challenger, excluded);
        // Commit does not wait for a commit that cannot come.
        if (excluded && ph == Phase.Commit && r.nCommits == r.nShares - r.nExcluded) _advance(round, r);
        // As in voidResult: the proof stands even if the registry refuses.
        try registry.slash(dealer) {} catch {}
    }

    /// @inheritdoc IFedRounds
    function setChallenged(uint256 round, address peer, uint64 weight, bool challenged) external override {
        if (msg.sender != fraudProofs) revert RoundsUnauthorized(msg.sender);
        RoundView storage r = _enter(round, Phase.Availability);
        uint256 st = _status[round][peer];
        // The weight is the committed one (the fraud-proof contract checked
        // it against the commitment). nCommits and weightSum never count a
        // challenged committer, so they are exact for U3 whatever the outcome.
        if (challenged) {
            if (st & F_COMMITTED == 0) revert RoundsMissedStep(round, peer);
            if (st & F_CHALLENGED != 0) revert RoundsAlreadyActed(round, peer);
            // Half the window is left to answer: an honest committer whose
            // vector is lost is never dropped without the time to post it.
            uint64 last = r.deadline - _policy.availabilityBlocks / 2;
            if (block.number > last) revert RoundsChallengeTooLate(round, last);
            _status[round][peer] = st | F_CHALLENGED;
            --r.nCommits;
            r.weightSum -= weight;
            ++_challenged[round];
        } else {
            if (st & F_CHALLENGED == 0) revert RoundsMissedStep(round, peer);
            _status[round][peer] = st ^ F_CHALLENGED;
            ++r.nCommits;
            r.weightSum += weight;
            --_challenged[round];
        }
    }

    /// @inheritdoc IFedRounds
    function sweepSlashed(address to) external override {
        if (msg.sender != governor) revert RoundsUnauthorized(msg.sender);
        uint256 amount = slashedPool;
        if (amount == 0) revert RoundsNothingSlashed();
        slashedPool = 0;
        withdrawable[to] += amount;
        emit SlashedSwept(to, amount);
    }

    /// @inheritdoc IFedRounds
    function setFraudProofs(address fraudProofs_) external override {
        if (msg.sender != governor) revert RoundsUnauthorized(msg.sender);
        if (fraudProofs != address(0)) revert RoundsFraudProofsAlreadySet(fraudProofs);
        fraudProofs = fraudProofs_;
        emit FraudProofsSet(fraudProofs_);
    }

    /// @inheritdoc IFedRounds
    function setDataSchema(bytes32 schemaHash) external override {
        if (msg.sender != governor) revert RoundsUnauthorized(msg.sender);
        if (dataSchema != bytes32(0) || schemaHash == bytes32(0)) revert RoundsDataSchemaAlreadySet(dataSchema);
        dataSchema = schemaHash;
        emit DataSchemaSet(schemaHash);
    }

    /// @inheritdoc IFedRounds
    function withdraw() external override {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert RoundsNothingToWithdraw(msg.sender);
        withdrawable[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok);
    }

    // ------------------------------------------------------------ internals

    function _enter(uint256 round, Phase expected) private returns (RoundView storage r) {
        _sync(round);
        r = _rounds[round];
        if (r.phase != expected) revert RoundsWrongPhase(round, expected, r.phase);
    }

    function _participantStatus(uint256 round) private view returns (uint256 st) {
        st = _status[round][msg.sender];
        if (st == 0) revert RoundsNotParticipant(round, msg.sender);
    }

    /// @dev Apply every transition whose deadline has passed.
    function _sync(uint256 round) private {
        RoundView storage r = _rounds[round];
        while (r.phase != Phase.None && r.phase < Phase.Final && block.number > r.deadline) {
            _advance(round, r);
        }
    }

    /// @dev Move to the next phase, or fail the round below threshold.
    function _advance(uint256 round, RoundView storage r) private {
        Phase ph = r.phase;
        uint16 t = r.t;
        if (ph == Phase.Selection) {
            _schedule(round, r); // nobody selected within the window: name a new block
        } else if (ph == Phase.Keys) {
            if (r.nKeys < t) return _fail(round, r, FailReason.InsufficientKeys);
            _enterPhase(round, r, Phase.Shares, _policy.sharesBlocks);
        } else if (ph == Phase.Shares) {
            if (r.nShares < t) return _fail(round, r, FailReason.InsufficientShares);
            _enterPhase(round, r, Phase.Commit, _policy.commitBlocks);
        } else if (ph == Phase.Commit || ph == Phase.Availability) {
            if (ph == Phase.Availability && _challenged[round] != 0) _dropUnanswered(round);
            if (r.nCommits < t) return _fail(round, r, FailReason.InsufficientCommits);
            uint32 avail = _policy.availabilityBlocks;
            if (ph == Phase.Commit && avail != 0) return _enterPhase(round, r, Phase.Availability, avail);
            if (!_chargeSurvivors(round, r)) return _fail(round, r, FailReason.NoiseBelowFloor);
            _enterPhase(round, r, Phase.Reveal, _policy.revealBlocks);
        } else if (ph == Phase.Reveal) {
            if (r.nReveals < t) return _fail(round, r, FailReason.InsufficientReveals);
            _enterPhase(round, r, Phase.Aggregate, _policy.aggregateBlocks);
        } else if (ph == Phase.Aggregate) {
            if (_results[round].aggregator == address(0)) return _fail(round, r, FailReason.NoResult);
            _enterPhase(round, r, Phase.Challenge, _policy.challengeBlocks);
        } else if (ph == Phase.Challenge) {
            ResultView memory res = _results[round];
            r.phase = Phase.Final;
            globalAdapterCid = res.newAdapterCid;
            globalAdapterRoot = res.resultRoot;
            withdrawable[res.aggregator] += res.bond;
            emit PhaseAdvanced(round, Phase.Final, uint64(block.number));
            emit RoundFinalized(round, res.newAdapterCid, res.aggregator);
            registry.setLock(res.aggregator, false);
        }
    }

    /// @dev The end of Availability: every committer still challenged leaves
    ///      U3 before any share is revealed (its commitment is cleared, so
    ///      proofs and reveals treat it as a dropout after shares), gets a
    ///      local-mode charge back (its update is never in a sum) and loses
    ///      its stake. nCommits and weightSum already exclude it.
    function _dropUnanswered(uint256 round) private {
        _challenged[round] = 0;
        uint32 cfg = _rounds[round].dpConfig;
        bool local = ledger.modeOf(cfg) == IPrivacyLedger.DPMode.Local;
        address[] storage list = _participants[round];
        for (uint256 i = 0; i < list.length; ++i) {
            address a = list[i];
            uint256 st = _status[round][a];
            if (st & F_CHALLENGED == 0) continue;
            _status[round][a] = st & LOW & ~(F_COMMITTED | F_CHALLENGED);
            emit CommitterDropped(round, a);
            if (local) ledger.refund(a, round, cfg);
            // As in voidResult: the drop stands even if the registry refuses.
            try registry.slash(a) {} catch {}
        }
    }

    /// @dev Distributed DP: U3 is fixed now, so charge each survivor from
    ///      |U3| and the ledger's collusion bound; below the noise floor charge
    ///      nobody and return false (the round fails before any reveal, so the
    ///      sum is never unmasked). Selection checked {canAfford} at the floor
    ///      vector, which bounds every other one, so no charge here reverts.
    function _chargeSurvivors(uint256 round, RoundView storage r) private returns (bool) {
        uint32 cfg = r.dpConfig;
        if (ledger.modeOf(cfg) == IPrivacyLedger.DPMode.Local) return true;
        uint256 survivors = r.nCommits;
        if (!ledger.noiseFloorMet(cfg, survivors)) return false;
        address[] storage list = _participants[round];
        for (uint256 i = 0; i < list.length; ++i) {
            if (_status[round][list[i]] & F_COMMITTED != 0) ledger.chargeSurvivor(list[i], round, cfg, survivors);
        }
        return true;
    }

    /// @dev The action that starts a phase's quorum grace: halfway from the
    ///      threshold t to everyone who can act in the phase (t + ceil((m - t) / 2)),
    ///      so that the next set keeps a margin over t (a round cut to exactly t
    ///      committers fails if one of them dies before revealing).
    function _graceQuorum(uint256 t, uint256 m) private pure returns (uint256) {
        return m > t ? t + (m - t + 1) / 2 : t;
    }

    /// @dev The quorum of keys, commits or reveals is in: the others have
    ///      `quorumGraceBps` of the blocks the quorum took since `since` (the
    ///      round's opening for keys and commits, since peers train from the
    ///      shares on; the phase's start for reveals), plus one block per
    ///      participant, never more than the window itself left.
    function _quorumGrace(uint256 round, RoundView storage r, uint256 since) private {
        uint256 bps = _policy.quorumGraceBps;
        if (bps == 0) return;
        uint256 soft = block.number + ((block.number - since) * bps) / 10_000 + r.n;
        if (soft < r.deadline) {
            r.deadline = uint64(soft);
            emit DeadlineShortened(round, r.phase, uint64(soft));
        }
    }

    function _enterPhase(uint256 round, RoundView storage r, Phase next, uint32 blocks) private {
        r.phase = next;
        r.deadline = uint64(block.number) + blocks;
        emit PhaseAdvanced(round, next, r.deadline);
    }

    /// @dev Below threshold (or below the noise floor): record why. Charges
    ///      are given back only when no one can compute the sum: the round
    ///      failed before any reveal (InsufficientCommits, or
    ///      InsufficientReveals with none posted). One public reveal plus t−1
    ///      colluders' own shares is t shares, so a round with any reveal does
    ///      not refund; nor does a missing result.
    function _fail(uint256 round, RoundView storage r, FailReason reason) private {
        r.phase = Phase.Failed;
        r.failReason = reason;
        emit RoundFailed(round, reason);
        uint32 cfg = r.dpConfig;
        bool local = ledger.modeOf(cfg) == IPrivacyLedger.DPMode.Local;
        // Distributed rounds charge only on leaving Commit, so only a round
        // failing in Reveal has charges to give back.
        if (
            (local && reason == FailReason.InsufficientCommits)
                || (reason == FailReason.InsufficientReveals && r.nReveals == 0)
        ) {
            address[] storage list = _participants[round];
            for (uint256 i = 0; i < list.length; ++i) {
                if (_status[round][list[i]] & F_COMMITTED == 0) continue;
                if (local) ledger.refund(list[i], round, cfg);
                else ledger.refundSurvivor(list[i], round, cfg, r.nCommits);
            }
        }
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IFedRounds
    function commitmentHash(
        uint256 round,
        address peer,
        bytes32 cidDigest,
        bytes32 chunksRoot,
        uint64 weight,
        uint32 dpConfig
    ) public view override returns (bytes32) {
        return keccak256(
            abi.encode(COMMIT_DOMAIN, block.chainid, address(this), round, peer, cidDigest, chunksRoot, weight, dpConfig)
        );
    }

    /// @inheritdoc IFedRounds
    function roundInfo(uint256 round) external view override returns (RoundView memory) {
        return _rounds[round];
    }

    /// @inheritdoc IFedRounds
    function resultOf(uint256 round) external view override returns (ResultView memory) {
        return _results[round];
    }

    /// @inheritdoc IFedRounds
    function selectionOf(uint256 round)
        external
        view
        override
        returns (uint64 targetBlock, uint64 poolSize, uint64 selectedBlock)
    {
        Draw memory dr = _draws[round];
        return (dr.targetBlock, dr.poolSize, dr.selectedBlock);
    }

    /// @inheritdoc IFedRounds
    function participantsOf(uint256 round) external view override returns (address[] memory) {
        return _participants[round];
    }

    /// @inheritdoc IFedRounds
    function statusOf(uint256 round, address peer) external view override returns (uint256) {
        return _status[round][peer];
    }

    /// @inheritdoc IFedRounds
    function keysHashOf(uint256 round, address peer) external view override returns (bytes32) {
        return _keys[round][peer];
    }

    /// @inheritdoc IFedRounds
    function shareRootOf(uint256 round, address peer) external view override returns (bytes32) {
        return _shareRoots[round][peer];
    }

    /// @inheritdoc IFedRounds
    function commitHashOf(uint256 round, address peer) external view override returns (bytes32) {
        return bytes32(_status[round][peer] & ~LOW);
    }

    /// @inheritdoc IFedRounds
    function quantization() external view override returns (Quant memory) {
        return _quant;
    }

    /// @inheritdoc IFedRounds
    function policy() external view override returns (Policy memory) {
        return _policy;
    }
}
