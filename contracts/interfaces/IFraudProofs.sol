// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFedRounds} from "./IFedRounds.sol";

/// @title IFraudProofs
/// @notice Two small, separate proofs that a posted aggregate is wrong
///         (DESIGN §3.7). A proven fraud voids the result through
///         {IFedRounds-voidResult}: the aggregator's bond is slashed (a share
///         to the challenger), it is quarantined, and aggregation re-opens.
///         It also holds data-availability challenges (Availability phase):
///         a committer whose masked vector cannot be fetched is challenged
///         with a bond and must post the vector on-chain, or leave U3 slashed.
interface IFraudProofs {
    /// @notice One revealed share of a dealer's secret, with its Merkle proof
    ///         against the dealer's share commitment (leaf index 2*holder+kind).
    struct ShareProof {
        uint16 holder;
        uint256 value;
        bytes32[] proof;
    }

    /// @notice A dealer's Feldman commitments: its two polynomials' t points
    ///         each (self seed first, 64 bytes per point, coordinator/_feldman.py)
    ///         and the Merkle proof of their leaf, index 2n of its share tree.
    struct Commitments {
        bytes points;
        bytes32[] proof;
    }

    /// @notice One survivor's chunk: its commitment fields, the chunk bytes of
    ///         its masked vector, and the chunk's Merkle proof.
    struct MemberChunk {
        uint16 index;
        bytes32 cidDigest;
        bytes32 chunksRoot;
        uint64 weight;
        bytes chunk;
        bytes32[] proof;
    }

    /// @notice Everything a chunk proof needs (one calldata struct keeps the
    ///         stack small). `resultChunk` is a chunk of the posted new
    ///         adapter; `prevChunk` the same chunk of the adapter the round
    ///         started from, under the round's `adapterRoot` (empty, and no
    ///         proof, when that root is zero: the all-zero adapter).
    struct ChunkProof {
        uint256 round;
        uint256 chunkIndex;
        IFedRounds.Seed[] seeds;
        MemberChunk[] members;
        bytes resultChunk;
        bytes32[] resultProof;
        bytes prevChunk;
        bytes32[] prevProof;
    }

    /// @notice Thrown when the seeds given are not the posted seeds.
    error FraudSeedsMismatch(bytes32 given, bytes32 posted);
    /// @notice Thrown when share `i` does not verify against its dealer's share root.
    error FraudBadShare(uint256 i);
    /// @notice Thrown when share `i` names a holder that is not the dealer or
    ///         one of its mask neighbours in U1 (no such holder was dealt a share).
    error FraudBadHolder(uint256 i);
    /// @notice Thrown when the keys given are not the posted keys of participant `index`.
    error FraudBadKeys(uint256 index);
    /// @notice Thrown when `index` is not a valid seed entry or participant.
    error FraudBadIndex(uint256 index);
    /// @notice Thrown when the member chunks do not cover U3 exactly, in index order; `i` is the first bad one.
    error FraudBadMembers(uint256 i);
    /// @notice Thrown when member `i`'s commitment fields or chunk proof do not verify.
    error FraudBadChunk(uint256 i);
    /// @notice Thrown when the result chunk does not verify against the posted result root.
    error FraudBadResultChunk();
    /// @notice Thrown when the previous adapter's chunk does not verify against the round's adapter root.
    error FraudBadAdapterChunk();
    /// @notice Thrown when the commitments given are not dealer `index`'s (length or leaf).
    error FraudBadCommitments(uint256 index);
    /// @notice Thrown when the secret given is not dealer `index`'s committed one (secret·G ≠ C_0).
    error FraudBadSecret(uint256 index);
    /// @notice Thrown when the evidence shows the posted value is right.
    error FraudNotProven(uint256 round);
    /// @notice Thrown when an availability challenge comes with `sent` wei, not the policy bond `required`.
    error FraudWrongBond(uint256 sent, uint256 required);
    /// @notice Thrown when the commitment fields given are not `peer`'s commitment in `round`.
    error FraudBadCommitment(uint256 round, address peer);
    /// @notice Thrown when `peer`'s commit in `round` has no open availability challenge.
    error FraudNotChallenged(uint256 round, address peer);
    /// @notice Thrown when an availability answer's data is not `peer`'s
    ///         committed vector (length or chunk Merkle root).
    error FraudBadData(uint256 round, address peer);
    /// @notice Thrown when a challenge bond of `round` is reclaimed while `peer` is still in U3.
    error FraudStillAvailable(uint256 round, address peer);

    /// @notice Emitted after a fraud was proven in `round` by `challenger`;
    ///         `kind` 1 = seed proof (detail: seed index), 2 = chunk proof (detail: chunk index),
    ///         3 = dealer-fault proof (detail: the dealer's participant index),
    ///         4 = bad-share proof (detail: the dealer's participant index).
    event FraudProven(uint256 indexed round, address indexed challenger, uint8 kind, uint256 detail);
    /// @notice Emitted after `challenger` challenged the availability of `peer`'s masked vector in `round`.
    event AvailabilityChallenged(uint256 indexed round, address indexed peer, address indexed challenger, uint256 bond);
    /// @notice Emitted after `answerer` posted `peer`'s committed masked vector
    ///         of `round` (`data`: the padded vector, little-endian uint32, the
    ///         chunks under its committed root); `fee` of the bond went to
    ///         `answerer` (its calldata at the block's base fee), the rest back
    ///         to the challenger.
    event AvailabilityAnswered(
        uint256 indexed round, address indexed peer, address indexed answerer, uint256 fee, bytes data
    );
    /// @notice Emitted after `challenger` took back its bond: `peer` never answered and left U3.
    event AvailabilityBondReclaimed(uint256 indexed round, address indexed peer, address indexed challenger, uint256 bond);

    /// @notice Prove that posted seed `seedIndex` is not the committed one:
    ///         for a self seed (u, SELF), value·G ≠ C_0 of u's self-seed
    ///         commitments; for a pairwise seed (u, v), the KDF of
    ///         X25519(`secret`, u's posted mask key) differs from it, where
    ///         `secret` must be v's committed mask key (secret·G = C_0).
    /// @param c The dealer's commitments and their leaf's proof.
    /// @param secret The dealer's mask key (only for a pairwise seed).
    /// @param encPk,maskPk The posted keys of survivor `u` (only for a pairwise seed).
    function challengeSeed(
        uint256 round,
        uint256 seedIndex,
        IFedRounds.Seed[] calldata seeds,
        Commitments calldata c,
        uint256 secret,
        bytes32 encPk,
        bytes32 maskPk
    ) external;

    /// @notice Prove that dropped dealer `dealer` (in U2, not in U3) committed
    ///         to a mask key that is not its posted one: `secret` is its
    ///         committed key (secret·G = C_0 of its key commitments) and
    ///         X25519(secret, 9) differs from `maskPk`. The dealer is
    ///         quarantined and the round fails (DealerFault); a posted
    ///         result's bond goes back in full.
    /// @param encPk,maskPk The dealer's posted keys.
    function proveDealerFault(
        uint256 round,
        uint16 dealer,
        Commitments calldata c,
        uint256 secret,
        bytes32 encPk,
        bytes32 maskPk
    ) external;

    /// @notice Prove that `dealer` committed (share leaf 2·holder + kind under
    ///         its share root, the holder bounded to its neighbours in U1) to a
    ///         share that is not on its committed polynomial `kind`. Any time
    ///         from Shares to Challenge, by the holder (who decrypted it) or
    ///         anyone once it is revealed. The dealer is quarantined; the round
    ///         goes on (its secret is the committed one, from other shares).
    function proveBadShare(uint256 round, uint16 dealer, uint8 kind, ShareProof calldata share, Commitments calldata c)
        external;

    /// @notice Prove that chunk `chunkIndex` of the posted new adapter differs
    ///         from f(previous adapter, Σx, Σn), where Σx is Σ y_u over U3
    ///         minus the masks expanded from the posted seeds and, per element,
    ///         f(a, s, N) = (a + trunc(int32(s) / N)) mod 2^32 (DESIGN §3.6).
    function challengeChunk(ChunkProof calldata proof) external;

    /// @notice Challenge the availability of `peer`'s committed masked vector
    ///         (in Availability, at least half its window before the end),
    ///         with exactly the policy bond. The commitment fields must be
    ///         `peer`'s. Until answered, `peer` does not count in U3; unanswered
    ///         at the window's end it leaves U3 and is slashed.
    function challengeAvailability(uint256 round, address peer, bytes32 cidDigest, bytes32 chunksRoot, uint64 weight)
        external
        payable;

    /// @notice Answer a challenge with `peer`'s masked vector (anyone who has
    ///         it): `data` is the whole padded vector (vectorLength rounded up
    ///         to whole chunks, 4 bytes an element) and must hash to the
    ///         committed chunk root. `peer` is back in U3; the caller is paid
    ///         its calldata from the bond (at the base fee, never more than the
    ///         bond) and the challenger gets the rest: answering a challenge
    ///         one provoked by withholding earns nothing.
    function answerAvailability(
        uint256 round,
        address peer,
        bytes32 cidDigest,
        bytes32 chunksRoot,
        uint64 weight,
        bytes calldata data
    ) external;

    /// @notice The challenger of `peer` takes its bond back once `peer` left U3 unanswered.
    function reclaimAvailabilityBond(uint256 round, address peer) external;

    /// @notice Revert `RoundsBadSeeds` unless `seeds` is exactly the canonical
    ///         list of `round` (FedRounds.postResult calls it): (u, SELF) for
    ///         every u in U3 ascending, then (u, v) for every dropped dealer v
    ///         in U2 \ U3 ascending and every neighbour u of v in U3
    ///         ascending (every u in U3 when the graph is complete). The chunk
    ///         proof unmasks with the posted list as given, so an omitted,
    ///         extra, duplicated or reordered seed must be refused.
    function checkSeedSet(uint256 round, IFedRounds.Seed[] calldata seeds) external view;

    /// @notice The open availability challenge of `peer` in `round` (zero address: none).
    function availabilityChallenge(uint256 round, address peer) external view returns (address challenger, uint256 bond);
}
