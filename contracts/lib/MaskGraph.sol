// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title MaskGraph
/// @notice The mask-neighbour graph of a round (DESIGN §3 "Neighbours"): the
///         complete graph for rounds of at most 20 participants, otherwise a
///         random k-regular circulant graph with k = O(log n) drawn from the
///         round seed (SecAgg+, Bell et al. 2020). Mirrors
///         `coordinator.protocol._secagg.Graph`; the two are cross-checked by tests.
library MaskGraph {
    bytes32 internal constant GRAPH_DOMAIN = keccak256("fedledger.graph.v1");
    uint256 internal constant COMPLETE_UP_TO = 20;

    /// @notice Neighbours per participant: n - 1 for n <= 20, else the smallest
    ///         even k >= max(2 * bitlen(n - 1), 2 * (t - 1)), capped at n - 1.
    function degree(uint256 n, uint256 t) internal pure returns (uint256 k) {
        if (n <= COMPLETE_UP_TO) return n - 1;
        uint256 bits;
        for (uint256 x = n - 1; x != 0; x >>= 1) ++bits;
        k = 2 * bits;
        if (t > 0 && 2 * (t - 1) > k) k = 2 * (t - 1);
        if (k >= n - 1) k = n - 1;
    }

    /// @notice Ring position of each participant: a Fisher-Yates permutation
    ///         keyed by keccak256(seed, GRAPH_DOMAIN, i). Identity when complete.
    function positions(bytes32 seed, uint256 n, uint256 k) internal pure returns (uint256[] memory pos) {
        uint256[] memory idx = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) idx[i] = i;
        if (k < n - 1) {
            for (uint256 i = 0; i < n; ++i) {
                uint256 j = i + uint256(keccak256(abi.encode(seed, GRAPH_DOMAIN, i))) % (n - i);
                (idx[i], idx[j]) = (idx[j], idx[i]);
            }
        }
        pos = new uint256[](n);
        for (uint256 p = 0; p < n; ++p) pos[idx[p]] = p;
    }

    /// @notice Whether participants a != b are neighbours (ring distance <= k/2).
    function adjacent(uint256[] memory pos, uint256 k, uint256 a, uint256 b) internal pure returns (bool) {
        if (a == b) return false;
        uint256 n = pos.length;
        if (k >= n - 1) return true;
        uint256 d = pos[a] > pos[b] ? pos[a] - pos[b] : pos[b] - pos[a];
        if (n - d < d) d = n - d;
        return d <= k / 2;
    }
}
