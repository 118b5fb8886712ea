// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFedRounds} from "./interfaces/IFedRounds.sol";
import {IFraudProofs} from "./interfaces/IFraudProofs.sol";
import {MaskGraph} from "./lib/MaskGraph.sol";
import {MaskMath} from "./lib/MaskMath.sol";
import {Feldman} from "./lib/Feldman.sol";
import {X25519} from "./lib/X25519.sol";

/// @title FraudProofs
/// @notice See {IFraudProofs}. It reads the rounds contract and, on a proven
///         fraud, calls its `voidResult`. Its only state is the open
///         data-availability challenges and their bonds
///         (value held = Σ bonds of open or unreclaimed challenges).
contract FraudProofs is IFraudProofs {
    uint16 private constant SELF = 0xFFFF;
    uint256 private constant F_KEYS = 1 << 16;
    uint256 private constant F_SHARES = 1 << 17;
    uint256 private constant F_COMMITTED = 1 << 18;
    uint256 private constant F_CHALLENGED = 1 << 21;
    /// @dev The X25519 base point u = 9, little-endian.
    bytes32 private constant BASE_POINT = bytes32(uint256(9) << 248);
    bytes32 private constant SHARE_DOMAIN = keccak256("fedledger.share.v1");
    bytes32 private constant PAIR_DOMAIN = keccak256("fedledger.pair.v1");
    bytes32 private constant KEYS_DOMAIN = keccak256("fedledger.keys.v1");
    bytes32 private constant FELDMAN_DOMAIN = keccak256("fedledger.feldman.v1");

    IFedRounds public immutable rounds;
    /// @dev What an answer costs, for its fee: calldata and the log per byte
    ///      (measured: benchmarks/out/gas.json, availability_answer_vs_model_size),
    ///      and the rest of the transaction.
    uint256 private constant ANSWER_GAS_PER_BYTE = 40;
    uint256 private constant ANSWER_BASE_GAS = 150_000;

    /// @dev An open (or lapsed, unreclaimed) availability challenge.
    struct Challenge {
        address challenger;
        uint96 bond;
    }

    mapping(uint256 round => mapping(address peer => Challenge)) private _availability;

    constructor(IFedRounds rounds_) {
        rounds = rounds_;
    }

    /// @inheritdoc IFraudProofs
    function challengeSeed(
        uint256 round,
        uint256 seedIndex,
        IFedRounds.Seed[] calldata seeds,
        Commitments calldata c,
        uint256 secret,
        bytes32 encPk,
        bytes32 maskPk
    ) external override {
        IFedRounds.RoundView memory r = _checkSeeds(round, seeds);
        if (seedIndex >= seeds.length) revert FraudBadIndex(seedIndex);
        if (_seedIsRight(round, r.t, seeds[seedIndex], c, secret, encPk, maskPk)) revert FraudNotProven(round);
        emit FraudProven(round, msg.sender, 1, seedIndex);
        rounds.voidResult(round, msg.sender);
    }

    /// @dev For a self seed (u, SELF): value·G = C_0 of u's self-seed
    ///      polynomial. No share is involved, so no choice of shares (by a
    ///      dealer dealing off its polynomial, say) makes a right value look
    ///      wrong. For a pairwise seed (u, v): `secret` must be v's committed
    ///      key (secret·G = C_0), and the seed the KDF of X25519(secret, u's key).
    function _seedIsRight(
        uint256 round,
        uint256 t,
        IFedRounds.Seed calldata s,
        Commitments calldata c,
        uint256 secret,
        bytes32 encPk,
        bytes32 maskPk
    ) private view returns (bool) {
        uint256 dealerIdx = s.v == SELF ? s.u : s.v;
        if (s.u >= rounds.participantsOf(round).length) revert FraudBadIndex(s.u);
        (bytes memory points, address[] memory list) = _commitments(round, dealerIdx, c, s.v == SELF ? 0 : 1, t);
        if (s.v == SELF) return Feldman.secretMatches(points, t, uint256(s.value));
        if (!Feldman.secretMatches(points, t, secret)) revert FraudBadSecret(dealerIdx);
        if (keccak256(abi.encode(KEYS_DOMAIN, encPk, maskPk)) != rounds.keysHashOf(round, list[s.u])) {
            revert FraudBadKeys(s.u);
        }
        return _pairSeed(round, s.u, s.v, X25519.scalarMult(bytes32(X25519.reverseBytes(secret)), maskPk)) == s.value;
    }

    function _pairSeed(uint256 round, uint16 a, uint16 b, bytes32 shared) private view returns (bytes32) {
        (uint16 lo, uint16 hi) = a < b ? (a, b) : (b, a);
        return keccak256(abi.encode(PAIR_DOMAIN, block.chainid, address(rounds), round, lo, hi, shared));
    }

    /// @dev The t commitment points of polynomial `kind` of `dealerIdx`,
    ///      after checking the 2t points given are leaf 2n under its share root.
    function _commitments(uint256 round, uint256 dealerIdx, Commitments calldata c, uint8 kind, uint256 t)
        private
        view
        returns (bytes memory points, address[] memory list)
    {
        list = rounds.participantsOf(round);
        if (dealerIdx >= list.length) revert FraudBadIndex(dealerIdx);
        address dealer = list[dealerIdx];
        if (c.points.length != 2 * t * 64) revert FraudBadCommitments(dealerIdx);
        bytes32 leafHash =
            keccak256(abi.encode(FELDMAN_DOMAIN, block.chainid, address(rounds), round, dealer, keccak256(c.points)));
        if (!MaskMath.verify(rounds.shareRootOf(round, dealer), leafHash, 2 * list.length, c.proof)) {
            revert FraudBadCommitments(dealerIdx);
        }
        points = c.points[kind * t * 64:(kind + 1) * t * 64];
    }

    /// @dev What a share is checked against: its dealer's root and neighbourhood.
    struct Dealing {
        uint256 round;
        address dealer;
        bytes32 root;
        uint8 kind;
        address[] list;
        bool[] near;
    }

    function _point(Dealing memory d, ShareProof calldata sp, uint256 i) private view returns (uint256, uint256) {
        uint256 h = sp.holder;
        if (h >= d.near.length || !d.near[h] || rounds.statusOf(d.round, d.list[h]) & F_KEYS == 0) {
            revert FraudBadHolder(i);
        }
        bytes32 leafHash = _shareLeaf(d.round, d.dealer, sp.holder, d.kind, sp.value);
        if (!MaskMath.verify(d.root, leafHash, 2 * h + d.kind, sp.proof)) revert FraudBadShare(i);
        return (h + 1, sp.value);
    }

    /// @dev near[h]: h is the dealer or one of its mask neighbours.
    function _neighbourhood(IFedRounds.RoundView memory r, uint256 n, uint256 dealerIdx)
        private
        pure
        returns (bool[] memory near)
    {
        uint256 deg = MaskGraph.degree(n, r.t);
        uint256[] memory pos = MaskGraph.positions(r.seed, n, deg);
        near = new bool[](n);
        for (uint256 h = 0; h < n; ++h) {
            near[h] = h == dealerIdx || MaskGraph.adjacent(pos, deg, dealerIdx, h);
        }
    }

    /// @inheritdoc IFraudProofs
    function proveDealerFault(
        uint256 round,
        uint16 dealer,
        Commitments calldata c,
        uint256 secret,
        bytes32 encPk,
        bytes32 maskPk
    ) external override {
        IFedRounds.RoundView memory r = rounds.roundInfo(round);
        address[] memory list = rounds.participantsOf(round);
        // Key shares are revealed only for a dealer in U2 that is not in U3.
        if (dealer >= list.length) revert FraudBadIndex(dealer);
        uint256 st = rounds.statusOf(round, list[dealer]);
        if (st & F_SHARES == 0 || st & F_COMMITTED != 0) revert FraudBadIndex(dealer);
        if (keccak256(abi.encode(KEYS_DOMAIN, encPk, maskPk)) != rounds.keysHashOf(round, list[dealer])) {
            revert FraudBadKeys(dealer);
        }
        (bytes memory points,) = _commitments(round, dealer, c, 1, r.t);
        if (!Feldman.secretMatches(points, r.t, secret)) revert FraudBadSecret(dealer);
        if (X25519.scalarMult(bytes32(X25519.reverseBytes(secret)), BASE_POINT) == maskPk) revert FraudNotProven(round);
        emit FraudProven(round, msg.sender, 3, dealer);
        rounds.dealerFault(round, list[dealer], msg.sender);
    }

    /// @inheritdoc IFraudProofs
    function proveBadShare(uint256 round, uint16 dealer, uint8 kind, ShareProof calldata share, Commitments calldata c)
        external
        override
    {
        IFedRounds.RoundView memory r = rounds.roundInfo(round);
        address[] memory list = rounds.participantsOf(round);
        if (dealer >= list.length || kind > 1) revert FraudBadIndex(dealer);
        if (rounds.statusOf(round, list[dealer]) & F_SHARES == 0) revert FraudBadIndex(dealer);
        Dealing memory d = Dealing({
            round: round,
            dealer: list[dealer],
            root: rounds.shareRootOf(round, list[dealer]),
            kind: kind,
            list: list,
            near: _neighbourhood(r, list.length, dealer)
        });
        (uint256 x, uint256 value) = _point(d, share, 0);
        (bytes memory points,) = _commitments(round, dealer, c, kind, r.t);
        if (Feldman.verifyShare(points, r.t, x, value)) revert FraudNotProven(round);
        emit FraudProven(round, msg.sender, 4, dealer);
        rounds.badShare(round, list[dealer], msg.sender);
    }

    function _shareLeaf(uint256 round, address dealer, uint16 holder, uint8 kind, uint256 value)
        private
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(SHARE_DOMAIN, block.chainid, address(rounds), round, dealer, holder, kind, value));
    }

    /// @inheritdoc IFraudProofs
    function challengeChunk(ChunkProof calldata p) external override {
        IFedRounds.RoundView memory r = _checkSeeds(p.round, p.seeds);
        uint256 words = uint256(r.chunkElems) / 8;
        if (
            p.resultChunk.length != words * 32
                || !MaskMath.verify(
                    rounds.resultOf(p.round).resultRoot,
                    MaskMath.leaf(p.chunkIndex, p.resultChunk),
                    p.chunkIndex,
                    p.resultProof
                )
        ) revert FraudBadResultChunk();
        uint256[] memory acc = _sumMembers(p.round, r, p.chunkIndex, p.members);
        _unmask(acc, p.seeds, p.chunkIndex * words);
        _nextAdapter(acc, r, p);
        if (!_differs(acc, p.resultChunk)) revert FraudNotProven(p.round);
        emit FraudProven(p.round, msg.sender, 2, p.chunkIndex);
        rounds.voidResult(p.round, msg.sender);
    }

    /// @dev Survivor u added its self mask, +PRG(s_uv) when u < v and
    ///      -PRG(s_uv) otherwise; undo each posted seed.
    function _unmask(uint256[] memory acc, IFedRounds.Seed[] calldata seeds, uint256 firstBlock) private pure {
        for (uint256 i = 0; i < seeds.length; ++i) {
            IFedRounds.Seed calldata s = seeds[i];
            MaskMath.applyMask(acc, s.value, firstBlock, s.v != SELF && s.u > s.v);
        }
    }

    /// @dev acc (Σx of the chunk, lane form) becomes the expected new adapter
    ///      chunk: per element (a + trunc(int32(s) / N)) mod 2^32, with a the
    ///      previous adapter's element and N = Σ n_u of U3 (non-zero: every
    ///      commit has weight >= 1 and |U3| >= t >= 1).
    function _nextAdapter(uint256[] memory acc, IFedRounds.RoundView memory r, ChunkProof calldata p) private pure {
        uint256 words = acc.length;
        bool zero = r.adapterRoot == bytes32(0);
        if (zero) {
            if (p.prevChunk.length != 0) revert FraudBadAdapterChunk();
        } else if (
            p.prevChunk.length != words * 32
                || !MaskMath.verify(r.adapterRoot, MaskMath.leaf(p.chunkIndex, p.prevChunk), p.chunkIndex, p.prevProof)
        ) revert FraudBadAdapterChunk();
        int256 n = int256(uint256(r.weightSum));
        for (uint256 k = 0; k < words; ++k) {
            acc[k] = MaskMath.nextAdapterWord(zero ? 0 : MaskMath.chunkWord(p.prevChunk, k), acc[k], n);
        }
    }

    function _differs(uint256[] memory acc, bytes calldata resultChunk) private pure returns (bool) {
        for (uint256 k = 0; k < acc.length; ++k) {
            if (acc[k] != MaskMath.chunkWord(resultChunk, k)) return true;
        }
        return false;
    }

    function _sumMembers(uint256 round, IFedRounds.RoundView memory r, uint256 chunkIndex, MemberChunk[] calldata members)
        private
        view
        returns (uint256[] memory acc)
    {
        uint256 words = uint256(r.chunkElems) / 8;
        acc = new uint256[](words);
        if (members.length != r.nCommits) revert FraudBadMembers(members.length);
        address[] memory list = rounds.participantsOf(round);
        for (uint256 i = 0; i < members.length; ++i) {
            MemberChunk calldata mc = members[i];
            if ((i > 0 && mc.index <= members[i - 1].index) || mc.index >= list.length) revert FraudBadMembers(i);
            _checkMember(round, r.dpConfig, list[mc.index], chunkIndex, words, mc, i);
            MaskMath.accumulate(acc, mc.chunk); // length checked in _checkMember
        }
    }

    /// @dev `mc` is a committed survivor's chunk: its fields match the stored
    ///      commitment and the chunk sits at `chunkIndex` under its root.
    function _checkMember(
        uint256 round,
        uint32 dpConfig,
        address peer,
        uint256 chunkIndex,
        uint256 words,
        MemberChunk calldata mc,
        uint256 i
    ) private view {
        if (rounds.statusOf(round, peer) & F_COMMITTED == 0) revert FraudBadMembers(i);
        if (!_isCommitment(round, peer, mc.cidDigest, mc.chunksRoot, mc.weight, dpConfig)) revert FraudBadChunk(i);
        if (mc.chunk.length != words * 32) revert FraudBadChunk(i);
        if (!MaskMath.verify(mc.chunksRoot, MaskMath.leaf(chunkIndex, mc.chunk), chunkIndex, mc.proof)) {
            revert FraudBadChunk(i);
        }
    }

    /// @inheritdoc IFraudProofs
    function checkSeedSet(uint256 round, IFedRounds.Seed[] calldata seeds) external view override {
        IFedRounds.RoundView memory r = rounds.roundInfo(round);
        address[] memory list = rounds.participantsOf(round);
        uint256 n = list.length;
        uint16[] memory kept = new uint16[](n);
        uint16[] memory gone = new uint16[](n);
        uint256 nk;
        uint256 ng;
        for (uint256 i = 0; i < n; ++i) {
            uint256 st = rounds.statusOf(round, list[i]);
            if (st & F_COMMITTED != 0) kept[nk++] = uint16(i);
            else if (st & F_SHARES != 0) gone[ng++] = uint16(i);
        }
        uint256 k = MaskGraph.degree(n, r.t);
        uint256[] memory pos = MaskGraph.positions(r.seed, n, k);
        uint256 want = nk;
        for (uint256 g = 0; g < ng; ++g) {
            for (uint256 i = 0; i < nk; ++i) {
                if (MaskGraph.adjacent(pos, k, kept[i], gone[g])) ++want;
            }
        }
        if (seeds.length != want) {
            revert IFedRounds.RoundsBadSeeds(seeds.length, want, seeds.length < want ? seeds.length : want);
        }
        uint256 at;
        for (uint256 i = 0; i < nk; ++i) {
            if (seeds[at].u != kept[i] || seeds[at].v != SELF) revert IFedRounds.RoundsBadSeeds(seeds.length, want, at);
            ++at;
        }
        for (uint256 g = 0; g < ng; ++g) {
            for (uint256 i = 0; i < nk; ++i) {
                if (!MaskGraph.adjacent(pos, k, kept[i], gone[g])) continue;
                if (seeds[at].u != kept[i] || seeds[at].v != gone[g]) {
                    revert IFedRounds.RoundsBadSeeds(seeds.length, want, at);
                }
                ++at;
            }
        }
    }

    /// @dev The fields hash to `peer`'s stored commitment (its top 224 bits).
    function _isCommitment(
        uint256 round,
        address peer,
        bytes32 cidDigest,
        bytes32 chunksRoot,
        uint64 weight,
        uint32 dpConfig
    ) private view returns (bool) {
        bytes32 c = rounds.commitmentHash(round, peer, cidDigest, chunksRoot, weight, dpConfig);
        bytes32 stored = rounds.commitHashOf(round, peer);
        return stored != bytes32(0) && bytes32(uint256(c) & ~uint256(0xFFFFFFFF)) == stored;
    }

    // ------------------------------------------------------ data availability

    /// @inheritdoc IFraudProofs
    function challengeAvailability(uint256 round, address peer, bytes32 cidDigest, bytes32 chunksRoot, uint64 weight)
        external
        payable
        override
    {
        uint256 bond = rounds.policy().bond; // a uint96: the stored bond is exact
        if (msg.value != bond) revert FraudWrongBond(msg.value, bond);
        if (!_isCommitment(round, peer, cidDigest, chunksRoot, weight, rounds.roundInfo(round).dpConfig)) {
            revert FraudBadCommitment(round, peer);
        }
        // A lapsed challenge's bond not yet reclaimed cannot be overwritten:
        // a peer is challenged once per round (setChallenged also refuses).
        if (_availability[round][peer].challenger != address(0)) revert IFedRounds.RoundsAlreadyActed(round, peer);
        _availability[round][peer] = Challenge(msg.sender, uint96(msg.value));
        emit AvailabilityChallenged(round, peer, msg.sender, msg.value);
        // Checks the phase, the commit and the time left to answer.
        rounds.setChallenged(round, peer, weight, true);
    }

    /// @inheritdoc IFraudProofs
    function answerAvailability(
        uint256 round,
        address peer,
        bytes32 cidDigest,
        bytes32 chunksRoot,
        uint64 weight,
        bytes calldata data
    ) external override {
        Challenge memory c = _availability[round][peer];
        if (c.challenger == address(0) || c.challenger == address(this)) revert FraudNotChallenged(round, peer);
        IFedRounds.RoundView memory r = rounds.roundInfo(round);
        if (!_isCommitment(round, peer, cidDigest, chunksRoot, weight, r.dpConfig)) {
            revert FraudBadCommitment(round, peer);
        }
        uint256 chunkBytes = uint256(r.chunkElems) * 4;
        uint256 chunks = (uint256(r.vectorLength) + r.chunkElems - 1) / r.chunkElems;
        if (data.length != chunks * chunkBytes || _vectorRoot(data, chunks, chunkBytes) != chunksRoot) {
            revert FraudBadData(round, peer);
        }
        // Answered for good: the vector is on-chain, so a second challenge
        // of it could only make its committer pay to post it again.
        _availability[round][peer] = Challenge(address(this), 0);
        // The answerer is paid its calldata, not the bond: a committer that
        // withholds until challenged, then answers, gains nothing.
        uint256 fee = block.basefee * (ANSWER_GAS_PER_BYTE * data.length + ANSWER_BASE_GAS);
        if (fee > c.bond) fee = c.bond;
        emit AvailabilityAnswered(round, peer, msg.sender, fee, data);
        // Reverts (and so keeps the challenge) once Availability is over.
        rounds.setChallenged(round, peer, weight, false);
        (bool ok,) = msg.sender.call{value: fee}("");
        (bool back,) = c.challenger.call{value: c.bond - fee}("");
        require(ok && back);
    }

    /// @inheritdoc IFraudProofs
    function reclaimAvailabilityBond(uint256 round, address peer) external override {
        Challenge memory c = _availability[round][peer];
        if (c.challenger == address(0) || c.challenger == address(this)) revert FraudNotChallenged(round, peer);
        rounds.advance(round); // the drop happens as Availability ends
        if (rounds.statusOf(round, peer) & (F_COMMITTED | F_CHALLENGED) != 0) revert FraudStillAvailable(round, peer);
        delete _availability[round][peer];
        emit AvailabilityBondReclaimed(round, peer, c.challenger, c.bond);
        (bool ok,) = c.challenger.call{value: c.bond}("");
        require(ok);
    }

    /// @inheritdoc IFraudProofs
    function availabilityChallenge(uint256 round, address peer)
        external
        view
        override
        returns (address challenger, uint256 bond)
    {
        Challenge memory c = _availability[round][peer];
        return (c.challenger, c.bond);
    }

    /// @dev The chunk Merkle root of a whole vector (coordinator/_encoding.py
    ///      vector_root): leaves keccak(uint32 index ‖ chunk), zero leaves up
    ///      to a power of two, keccak(left ‖ right) above.
    function _vectorRoot(bytes calldata data, uint256 chunks, uint256 chunkBytes) private pure returns (bytes32) {
        uint256 size = 1;
        while (size < chunks) size <<= 1;
        bytes32[] memory level = new bytes32[](size);
        for (uint256 i = 0; i < chunks; ++i) {
            level[i] = MaskMath.leaf(i, data[i * chunkBytes:(i + 1) * chunkBytes]);
        }
        for (; size > 1; size >>= 1) {
            for (uint256 i = 0; i < size / 2; ++i) {
                level[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
        }
        return level[0];
    }

    function _checkSeeds(uint256 round, IFedRounds.Seed[] calldata seeds)
        private
        view
        returns (IFedRounds.RoundView memory r)
    {
        r = rounds.roundInfo(round);
        if (r.phase != IFedRounds.Phase.Challenge) {
            revert IFedRounds.RoundsWrongPhase(round, IFedRounds.Phase.Challenge, r.phase);
        }
        bytes32 given = keccak256(abi.encode(seeds));
        bytes32 posted = rounds.resultOf(round).seedsHash;
        if (given != posted) revert FraudSeedsMismatch(given, posted);
    }
}
