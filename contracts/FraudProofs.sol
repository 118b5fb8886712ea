// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFedRounds} from "./interfaces/IFedRounds.sol";
import {IFraudProofs} from "./interfaces/IFraudProofs.sol";
import {MaskGraph} from "./lib/MaskGraph.sol";
import {MaskMath} from "./lib/MaskMath.sol";
import {ShamirField} from "./lib/ShamirField.sol";
import {X25519} from "./lib/X25519.sol";

/// @title FraudProofs
/// @notice See {IFraudProofs}. Stateless: it reads the rounds contract and,
///         on a proven fraud, calls its `voidResult`.
contract FraudProofs is IFraudProofs {
    uint16 private constant SELF = 0xFFFF;
    uint256 private constant F_KEYS = 1 << 16;
    uint256 private constant F_SHARES = 1 << 17;
    uint256 private constant F_COMMITTED = 1 << 18;
    /// @dev The X25519 base point u = 9, little-endian.
    bytes32 private constant BASE_POINT = bytes32(uint256(9) << 248);
    bytes32 private constant SHARE_DOMAIN = keccak256("fedledger.share.v1");
    bytes32 private constant PAIR_DOMAIN = keccak256("fedledger.pair.v1");
    bytes32 private constant KEYS_DOMAIN = keccak256("fedledger.keys.v1");

    IFedRounds public immutable rounds;

    constructor(IFedRounds rounds_) {
        rounds = rounds_;
    }

    /// @inheritdoc IFraudProofs
    function challengeSeed(
        uint256 round,
        uint256 seedIndex,
        IFedRounds.Seed[] calldata seeds,
        ShareProof[] calldata shares,
        bytes32 encPk,
        bytes32 maskPk
    ) external override {
        IFedRounds.RoundView memory r = _checkSeeds(round, seeds);
        if (seedIndex >= seeds.length) revert FraudBadIndex(seedIndex);
        if (shares.length < r.t) revert FraudTooFewShares(shares.length, r.t);
        IFedRounds.Seed calldata s = seeds[seedIndex];
        bytes32 expected = _expectedSeed(round, r, s, shares, encPk, maskPk);
        if (expected == s.value) revert FraudNotProven(round);
        emit FraudProven(round, msg.sender, 1, seedIndex);
        rounds.voidResult(round, msg.sender);
    }

    /// @dev The seed the shares determine: the dealer's secret itself for a
    ///      self-mask seed; for a pairwise seed, the KDF of X25519(dealer's
    ///      reconstructed key, survivor u's posted mask key).
    function _expectedSeed(
        uint256 round,
        IFedRounds.RoundView memory r,
        IFedRounds.Seed calldata s,
        ShareProof[] calldata shares,
        bytes32 encPk,
        bytes32 maskPk
    ) private view returns (bytes32) {
        address[] memory list = rounds.participantsOf(round);
        bool isSelf = s.v == SELF;
        uint256 dealerIdx = isSelf ? s.u : s.v;
        if (dealerIdx >= list.length || s.u >= list.length) revert FraudBadIndex(dealerIdx);
        uint256 secret = _interpolate(round, r, list, dealerIdx, isSelf ? 0 : 1, shares);
        if (isSelf) return bytes32(secret);
        if (keccak256(abi.encode(KEYS_DOMAIN, encPk, maskPk)) != rounds.keysHashOf(round, list[s.u])) {
            revert FraudBadKeys(s.u);
        }
        return _pairSeed(round, s.u, s.v, X25519.scalarMult(bytes32(X25519.reverseBytes(secret)), maskPk));
    }

    function _pairSeed(uint256 round, uint16 a, uint16 b, bytes32 shared) private view returns (bytes32) {
        (uint16 lo, uint16 hi) = a < b ? (a, b) : (b, a);
        return keccak256(abi.encode(PAIR_DOMAIN, block.chainid, address(rounds), round, lo, hi, shared));
    }

    /// @dev The dealer's secret of `kind` from `shares`, each verified against
    ///      the dealer's share root and held by the dealer itself or one of its
    ///      mask neighbours that posted keys (U1): the only holders an honest
    ///      dealer deals to, so a leaf for anyone else (beyond n in the tree's
    ///      padding, outside U1, a non-neighbour) is refused.
    function _interpolate(
        uint256 round,
        IFedRounds.RoundView memory r,
        address[] memory list,
        uint256 dealerIdx,
        uint8 kind,
        ShareProof[] calldata shares
    ) private view returns (uint256) {
        Dealing memory d = Dealing({
            round: round,
            dealer: list[dealerIdx],
            root: rounds.shareRootOf(round, list[dealerIdx]),
            kind: kind,
            list: list,
            near: _neighbourhood(r, list.length, dealerIdx)
        });
        uint256[] memory xs = new uint256[](shares.length);
        uint256[] memory ys = new uint256[](shares.length);
        for (uint256 i = 0; i < shares.length; ++i) {
            (xs[i], ys[i]) = _point(d, shares[i], i);
        }
        return ShamirField.interpolateAtZero(xs, ys);
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
        ShareProof[] calldata shares,
        bytes32 encPk,
        bytes32 maskPk
    ) external override {
        IFedRounds.RoundView memory r = rounds.roundInfo(round);
        address[] memory list = rounds.participantsOf(round);
        // Key shares are revealed only for a dealer in U2 that is not in U3.
        if (dealer >= list.length) revert FraudBadIndex(dealer);
        uint256 st = rounds.statusOf(round, list[dealer]);
        if (st & F_SHARES == 0 || st & F_COMMITTED != 0) revert FraudBadIndex(dealer);
        if (shares.length < r.t) revert FraudTooFewShares(shares.length, r.t);
        if (keccak256(abi.encode(KEYS_DOMAIN, encPk, maskPk)) != rounds.keysHashOf(round, list[dealer])) {
            revert FraudBadKeys(dealer);
        }
        uint256 key = _interpolate(round, r, list, dealer, 1, shares);
        if (X25519.scalarMult(bytes32(X25519.reverseBytes(key)), BASE_POINT) == maskPk) revert FraudNotProven(round);
        emit FraudProven(round, msg.sender, 3, dealer);
        rounds.dealerFault(round, list[dealer], msg.sender);
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
        bytes32 c = rounds.commitmentHash(round, peer, mc.cidDigest, mc.chunksRoot, mc.weight, dpConfig);
        bool same = bytes32(uint256(c) & ~uint256(0xFFFFFFFF)) == rounds.commitHashOf(round, peer);
        if (!same || mc.chunk.length != words * 32) revert FraudBadChunk(i);
        if (!MaskMath.verify(mc.chunksRoot, MaskMath.leaf(chunkIndex, mc.chunk), chunkIndex, mc.proof)) {
            revert FraudBadChunk(i);
        }
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
