// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IFedRounds
/// @notice Rounds of secure federated aggregation (DESIGN §3). The chain fixes
///         every set — U1 (posted keys) ⊇ U2 (posted shares) ⊇ U3 (committed)
///         — and every deadline. Phases advance at their deadline block, or
///         early as soon as every participant has acted.
interface IFedRounds {
    enum Phase {
        None,
        /// @dev Opened: the pool is frozen and the seed waits for the hash of
        ///      a block not yet made when the round opened.
        Selection,
        Keys,
        Shares,
        Commit,
        /// @dev U3 is provisional: anyone may challenge a committer whose
        ///      masked vector it cannot fetch (with a bond); a committer that
        ///      does not answer with its vector on-chain leaves U3 at the end
        ///      of the window, before any share is revealed. Skipped when the
        ///      policy's availabilityBlocks is 0.
        Availability,
        Reveal,
        Aggregate,
        Challenge,
        Final,
        Failed
    }

    enum FailReason {
        None,
        InsufficientKeys,
        InsufficientShares,
        InsufficientCommits,
        InsufficientReveals,
        NoResult,
        NoiseBelowFloor,
        TooManyFrauds,
        /// @dev A dropped dealer's key shares were proven not to reconstruct its
        ///      posted mask key: no one but that dealer can remove its pairwise masks.
        DealerFault,
        /// @dev The draw from the frozen pool found fewer than t eligible peers.
        NotEnoughEligible
    }

    /// @notice Governance policy. Phase lengths are in blocks.
    struct Policy {
        uint16 participants;
        uint16 threshold;
        uint32 keysBlocks;
        uint32 sharesBlocks;
        uint32 commitBlocks;
        uint32 revealBlocks;
        uint32 aggregateBlocks;
        uint32 challengeBlocks;
        uint16 challengerRewardBps;
        uint96 bond;
        /// @dev The largest weight n_u a commit may claim (>= 1).
        uint32 maxWeight;
        /// @dev Quorum grace of the keys, commit and reveal windows, in basis
        ///      points: when the quorum's action lands (t + ceil((m - t) / 2),
        ///      halfway from the threshold t to the m who can act: participants,
        ///      dealers, committers), the deadline is pulled in to at most
        ///      `block + took * quorumGraceBps / 10_000 + n`, where `took` is the
        ///      blocks since the round opened (keys, commits: peers train from
        ///      their shares on) or since the reveal window opened, and n the
        ///      participants (one block each on an automining chain). 0: every
        ///      one is waited for until the deadline. A dead peer then stalls a
        ///      round only for that fraction of it, not for the whole window.
        uint16 quorumGraceBps;
        /// @dev Length of the Availability phase between Commit and Reveal
        ///      (0: no such phase, nobody can be held to the availability of
        ///      its vector; else at least 4, with a non-zero bond, and vectors
        ///      of at most 2^16 elements, so an answer fits one transaction).
        ///      A challenge must leave the challenged committer at least half
        ///      of it to answer.
        uint32 availabilityBlocks;
    }

    /// @notice How a round's update vector is encoded (DESIGN §4).
    struct Quant {
        uint32 vectorLength;
        uint16 chunkElems;
        uint8 fracBits;
    }

    /// @notice A seed the aggregator reconstructed: the self-mask seed of
    ///         survivor `u` when `v` is 0xFFFF, else the pairwise seed of
    ///         survivor `u` and dropped peer `v` (participant indices).
    struct Seed {
        uint16 u;
        uint16 v;
        bytes32 value;
    }

    /// @notice A round's public state. Slot 0 packs phase..nExcluded.
    ///         nExcluded counts the dealers in U2 proven bad before they
    ///         committed: they cannot commit, and Commit ends early once every
    ///         other member of U2 committed (nCommits == nShares − nExcluded).
    struct RoundView {
        Phase phase;
        FailReason failReason;
        uint16 n;
        uint16 t;
        uint16 nKeys;
        uint16 nShares;
        uint16 nCommits;
        uint16 nReveals;
        uint32 dpConfig;
        uint64 deadline;
        uint8 attempt;
        uint16 nExcluded;
        uint32 vectorLength;
        uint16 chunkElems;
        uint8 fracBits;
        uint96 weightSum;
        uint64 openedBlock;
        bytes32 adapterCid;
        bytes32 seed;
        bytes32 adapterRoot;
    }

    struct ResultView {
        address aggregator;
        uint96 bond;
        bytes32 newAdapterCid;
        bytes32 maskedSumRoot;
        bytes32 resultRoot;
        bytes32 seedsHash;
    }

    /// @notice Thrown when `caller` may not call this function.
    error RoundsUnauthorized(address caller);
    /// @notice Thrown when selecting `round` before its target block `targetBlock` is mined.
    error RoundsSelectionNotDue(uint256 round, uint256 targetBlock);
    /// @notice Thrown when round `round` is in `actual`, not `expected`.
    error RoundsWrongPhase(uint256 round, Phase expected, Phase actual);
    /// @notice Thrown when opening while round `active` is still running.
    error RoundsRoundActive(uint256 active);
    /// @notice Thrown when only `eligible` peers can be selected but `needed` are required.
    error RoundsNotEnoughEligible(uint256 eligible, uint256 needed);
    /// @notice Thrown when `peer` is not a participant of `round`.
    error RoundsNotParticipant(uint256 round, address peer);
    /// @notice Thrown when `peer` already did this step in `round`.
    error RoundsAlreadyActed(uint256 round, address peer);
    /// @notice Thrown when `peer` skipped the previous step of `round`.
    error RoundsMissedStep(uint256 round, address peer);
    /// @notice Thrown when `peer` commits a second update in `round`.
    error RoundsAlreadyCommitted(uint256 round, address peer);
    /// @notice Thrown when a commit names DP configuration `given` in a round of `expected`.
    error RoundsWrongDPConfig(uint32 given, uint32 expected);
    /// @notice Thrown when a commit has zero weight.
    error RoundsZeroWeight();
    /// @notice Thrown when a commit claims weight `weight` above the policy cap `cap`.
    error RoundsWeightTooLarge(uint64 weight, uint32 cap);
    /// @notice Thrown when a reveal names a dealer that is not in U2, or dealers out of order.
    error RoundsBadDealer(uint256 index);
    /// @notice Thrown when the bond sent is below the policy bond.
    error RoundsBondTooLow(uint256 sent, uint256 required);
    /// @notice Thrown when a posted seed list is not the canonical one for the
    ///         round's U2 and U3 (`firstBad` is the first wrong position).
    error RoundsBadSeeds(uint256 given, uint256 expected, uint256 firstBad);
    /// @notice Thrown when a result poster is not an eligible registered peer.
    error RoundsNotRegistered(address account);
    /// @notice Thrown when the challenge window of `round` is still open until `deadline`.
    error RoundsChallengeOpen(uint256 round, uint64 deadline);
    /// @notice Thrown when the policy is inconsistent.
    error RoundsBadPolicy();
    /// @notice Thrown when the quantization parameters are inconsistent.
    error RoundsBadQuant();
    /// @notice Thrown when the fraud-proof contract is set twice.
    error RoundsFraudProofsAlreadySet(address fraudProofs);
    /// @notice Thrown when the data schema is declared twice (`current` is set), or as zero.
    error RoundsDataSchemaAlreadySet(bytes32 current);
    /// @notice Thrown when the slashed pool is empty.
    error RoundsNothingSlashed();
    /// @notice Thrown when `account` has nothing to withdraw.
    error RoundsNothingToWithdraw(address account);
    /// @notice Thrown when `dealer` commits in `round` after a bad share of
    ///         its dealing in `round` was proven.
    error RoundsDealerExcluded(uint256 round, address dealer);
    /// @notice Thrown when a committer of `round` is challenged too late to
    ///         answer: after block `lastBlock` (half the Availability window before its end).
    error RoundsChallengeTooLate(uint256 round, uint64 lastBlock);

    /// @notice Emitted after round `round` opened.
    event RoundOpened(
        uint256 indexed round,
        bytes32 adapterCid,
        uint32 indexed dpConfig,
        bytes32 seed,
        uint16 n,
        uint16 t,
        uint32 vectorLength,
        uint16 chunkElems,
        uint8 fracBits
    );
    /// @notice Emitted after `round` opened (or its selection window passed
    ///         unused): the participants are drawn from the first `poolSize`
    ///         registry entries with the hash of block `targetBlock`, by
    ///         selectParticipants in blocks targetBlock + 1 .. targetBlock + 256.
    event SelectionScheduled(uint256 indexed round, uint64 targetBlock, uint64 poolSize);
    /// @notice Emitted after the participants of `round` were selected, in index order.
    event ParticipantsSelected(uint256 indexed round, address[] participants);
    /// @notice Emitted after `peer` posted its per-round X25519 keys (it joins U1).
    event KeysPosted(uint256 indexed round, address indexed peer, bytes32 encPk, bytes32 maskPk);
    /// @notice Emitted after `peer` posted its encrypted share bundle and share commitment (U2).
    event SharesPosted(uint256 indexed round, address indexed peer, bytes32 bundleCid, bytes32 shareRoot);
    /// @notice Emitted after `peer` committed its masked update (U3).
    event UpdateCommitted(
        uint256 indexed round,
        address indexed peer,
        bytes32 cidDigest,
        bytes32 chunksRoot,
        uint64 weight,
        uint32 dpConfig,
        bytes32 commitment
    );
    /// @notice Emitted after `peer` revealed shares for `dealers` (self-mask
    ///         shares for committed dealers, key shares for dropped ones).
    event SharesRevealed(uint256 indexed round, address indexed peer, uint16[] dealers, uint256[] shares);
    /// @notice Emitted after `round` entered `phase` with `deadline` (a block number).
    event PhaseAdvanced(uint256 indexed round, Phase phase, uint64 deadline);
    /// @notice The quorum's action pulled the phase's deadline in (quorum grace).
    event DeadlineShortened(uint256 indexed round, Phase phase, uint64 deadline);
    /// @notice Emitted after `round` failed for `reason`.
    event RoundFailed(uint256 indexed round, FailReason reason);
    /// @notice Emitted after `aggregator` posted a result (attempt `attempt`) with a bond.
    event ResultPosted(
        uint256 indexed round,
        address indexed aggregator,
        uint8 attempt,
        bytes32 newAdapterCid,
        bytes32 maskedSumRoot,
        bytes32 resultRoot,
        bytes32 seedsHash,
        uint256 bond,
        Seed[] seeds
    );
    /// @notice Emitted after a proven fraud voided the result of `round`.
    event ResultVoided(
        uint256 indexed round, address indexed aggregator, address indexed challenger, uint256 slashed, uint256 reward
    );
    /// @notice Emitted after a dealer-fault proof showed that `dealer` dealt
    ///         inconsistently in `round`: the dealer is quarantined and the
    ///         round fails (DealerFault). A result already posted is cleared
    ///         and its `bondReturned` goes back in full to `aggregator` (zero
    ///         address and 0 when none was posted): no aggregator is blamed
    ///         for a dealer's fault.
    event DealerFaultProven(
        uint256 indexed round,
        address indexed dealer,
        address indexed challenger,
        address aggregator,
        uint256 bondReturned
    );
    /// @notice Emitted after a bad-share proof showed that `dealer` committed
    ///         to a share off its committed polynomial in `round`: the dealer
    ///         is slashed (its whole stake) and quarantined; the round goes on.
    ///         `excluded`: proven in Shares or Commit before the dealer
    ///         committed, so it cannot commit in this round and is unmasked as
    ///         a dropout after shares (its mask key from the good shares);
    ///         otherwise it stays in U3 (its self seed from the good shares,
    ///         or the round ends NoResult).
    event BadShareProven(uint256 indexed round, address indexed dealer, address indexed challenger, bool excluded);
    /// @notice Emitted at the end of the Availability phase of `round` for a
    ///         committer that never answered a data-availability challenge:
    ///         it leaves U3 (its key shares are revealed, not its self-seed
    ///         shares; a local-mode charge is refunded), and it is slashed and
    ///         quarantined.
    event CommitterDropped(uint256 indexed round, address indexed peer);
    /// @notice Emitted after `round` became final; its adapter is the new global adapter.
    event RoundFinalized(uint256 indexed round, bytes32 adapterCid, address indexed aggregator);
    /// @notice Emitted after `account` withdrew `amount` (bonds returned, rewards).
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice Emitted after the governor's first round fixed the federation's quantization.
    event QuantFixed(uint32 vectorLength, uint16 chunkElems, uint8 fracBits);
    /// @notice Emitted after the governor moved `amount` of slashed funds to `to` (withdrawable there).
    event SlashedSwept(address indexed to, uint256 amount);
    /// @notice Emitted after the fraud-proof contract was set.
    event FraudProofsSet(address indexed fraudProofs);
    /// @notice Emitted after the governor declared the federation's data schema
    ///         (the hash of its canonical JSON, see nodes/_schema.py); peers whose
    ///         schema hashes differently refuse to join.
    event DataSchemaSet(bytes32 schemaHash);

    /// @notice Open the next round: freezes the pool and names the block whose
    ///         hash seeds the selection (the round is in Selection).
    function openRound(uint32 dpConfig, Quant calldata quant) external returns (uint256 round);
    /// @notice Draw the participants of `round` (anyone) once its target block
    ///         is mined; the round enters Keys (or fails NotEnoughEligible) and
    ///         the pool thaws. Past the 256-block window it names a new target
    ///         block instead.
    function selectParticipants(uint256 round) external;
    /// @notice The target block, pool size and selection block (0 until
    ///         selected) of `round`.
    function selectionOf(uint256 round)
        external
        view
        returns (uint64 targetBlock, uint64 poolSize, uint64 selectedBlock);
    function postKeys(uint256 round, bytes32 encPk, bytes32 maskPk) external;
    function postShares(uint256 round, bytes32 bundleCid, bytes32 shareRoot) external;
    function commit(uint256 round, bytes32 cidDigest, bytes32 chunksRoot, uint64 weight, uint32 dpConfig) external;
    function reveal(uint256 round, uint16[] calldata dealers, uint256[] calldata shares) external;
    function postResult(
        uint256 round,
        bytes32 newAdapterCid,
        bytes32 maskedSumRoot,
        bytes32 resultRoot,
        Seed[] calldata seeds
    ) external payable;
    function finalize(uint256 round) external;
    /// @notice Apply deadline transitions of `round` (anyone).
    function advance(uint256 round) external;
    /// @notice Void the result of `round` after a proven fraud (fraud-proof contract only).
    function voidResult(uint256 round, address challenger) external;
    /// @notice Record a proven dealer fault of `dealer` in `round` (fraud-proof
    ///         contract only, in Reveal, Aggregate or Challenge): quarantine the
    ///         dealer, return a posted result's bond in full, fail the round.
    function dealerFault(uint256 round, address dealer, address challenger) external;
    /// @notice Record a proven bad share of `dealer` in `round` (fraud-proof
    ///         contract only, from Shares to Challenge): slash and quarantine
    ///         the dealer (never reverting on the registry's side), and, in
    ///         Shares or Commit before its commit, exclude it from the round:
    ///         its commit reverts RoundsDealerExcluded and Commit no longer
    ///         waits for it (it ends now if every other member of U2 committed).
    function badShare(uint256 round, address dealer, address challenger) external;
    /// @notice Mark `peer`'s commit in `round` challenged (its vector could
    ///         not be fetched) or answered (the vector was posted on-chain) —
    ///         fraud-proof contract only, in Availability. A challenged
    ///         committer does not count in nCommits or weightSum until it is
    ///         answered; one still challenged when the window ends is dropped
    ///         (CommitterDropped).
    function setChallenged(uint256 round, address peer, uint64 weight, bool challenged) external;
    function setFraudProofs(address fraudProofs) external;
    /// @notice Declare the federation's data schema hash, once (governor only).
    function setDataSchema(bytes32 schemaHash) external;
    function withdraw() external;
    /// @notice Move the whole slashed pool to `to`'s withdrawable balance
    ///         (governor only; e.g. a treasury, or the honest re-aggregator).
    function sweepSlashed(address to) external;

    function currentRound() external view returns (uint256);
    function globalAdapterCid() external view returns (bytes32);
    /// @notice The declared data schema hash; zero until the governor declares one.
    function dataSchema() external view returns (bytes32);
    /// @notice Merkle root of the current global adapter (fixed point, uint32
    ///         lanes, chunked like the rounds' vectors); zero for the all-zero
    ///         adapter. A result's `resultRoot` is the root of its new adapter.
    function globalAdapterRoot() external view returns (bytes32);
    /// @notice The quantization fixed by round 1 (zero before).
    function quantization() external view returns (Quant memory);
    function roundInfo(uint256 round) external view returns (RoundView memory);
    function resultOf(uint256 round) external view returns (ResultView memory);
    function participantsOf(uint256 round) external view returns (address[] memory);
    /// @notice Packed status: bits 0-15 index+1, bit 16 keys, 17 shares, 18
    ///         committed, 19 revealed, 20 excluded dealer, 21 availability challenged; bits 32-255 the commitment's top 224 bits.
    function statusOf(uint256 round, address peer) external view returns (uint256);
    function keysHashOf(uint256 round, address peer) external view returns (bytes32);
    function shareRootOf(uint256 round, address peer) external view returns (bytes32);
    /// @notice The top 224 bits of `peer`'s commitment in `round` (low 32 bits zero).
    function commitHashOf(uint256 round, address peer) external view returns (bytes32);
    function commitmentHash(uint256 round, address peer, bytes32 cidDigest, bytes32 chunksRoot, uint64 weight, uint32 dpConfig)
        external
        view
        returns (bytes32);
    function policy() external view returns (Policy memory);
    function withdrawable(address account) external view returns (uint256);
    function slashedPool() external view returns (uint256);
}
