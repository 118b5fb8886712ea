// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IPrivacyLedger
/// @notice Per-peer Rényi-DP accounting with no trust in a peer's claims.
///         The governor registers allowed DP configurations (q, σ, steps)
///         with their RDP vector over seven fixed orders α = 2, 3, 5, 8, 12,
///         20, 32. A commit adds the vector to the peer's cumulative RDP; ε at
///         the policy δ is min over α of (RDP_α + c_α), with the c_α of the
///         improved conversion (Balle et al. 2020, as in Opacus) precomputed at
///         deployment. All values are fixed-point micro-units (1e-6), rounded
///         up off-chain; a lane that would overflow saturates at 2^32−1, which
///         counts as infinite.
///         Distributed DP modes (Skellam noise shares summed under secure
///         aggregation): the governor registers, per configuration, the RDP
///         vector charged for each number m = |U3| − k of noisy survivor
///         shares from a floor up; the rounds contract charges every survivor
///         once U3 is fixed, and a round below the floor is never unmasked.
interface IPrivacyLedger {
    /// @notice Who adds the noise: each peer all of its own (Local), or each
    ///         survivor a share of the sum's (record- or user-level).
    enum DPMode {
        Local,
        DistributedRecord,
        DistributedUser
    }

    /// @notice Thrown when `caller` may not call this function.
    error LedgerUnauthorized(address caller);
    /// @notice Thrown when DP configuration `id` is not registered.
    error LedgerUnknownConfig(uint32 id);
    /// @notice Thrown when DP configuration `id` is registered twice.
    error LedgerConfigExists(uint32 id);
    /// @notice Thrown when a configuration has a zero RDP value or id 0.
    error LedgerBadConfig(uint32 id);
    /// @notice Thrown when charging `peer` would take its ε to `epsilonAfter` above `cap` (micro-ε).
    error LedgerBudgetExceeded(address peer, uint64 epsilonAfter, uint64 cap);
    /// @notice Thrown when the charger is set twice.
    error LedgerChargerAlreadySet(address charger);
    /// @notice Thrown when configuration `id` of mode `mode` is charged through the other mode's function.
    error LedgerWrongMode(uint32 id, DPMode mode);
    /// @notice Thrown when `survivors` of configuration `id` leave fewer noisy shares than its floor `floorM`.
    error LedgerNoiseBelowFloor(uint32 id, uint256 survivors, uint16 floorM);

    /// @notice Emitted after DP configuration `id` was registered.
    event DPConfigRegistered(uint32 indexed id, uint32 qPpm, uint32 sigmaMilli, uint32 steps, uint32[7] rdpMicro);
    /// @notice Emitted after `peer` was charged configuration `configId` in `round`.
    event BudgetCharged(address indexed peer, uint256 indexed round, uint32 indexed configId, uint64 epsilonAfter);
    /// @notice Emitted after a charge of a failed round was given back.
    event BudgetRefunded(address indexed peer, uint256 indexed round, uint32 indexed configId, uint64 epsilonAfter);
    /// @notice Emitted after distributed DP configuration `id` was registered;
    ///         `rdpMicro[i]` is charged for m = floorM + i noisy shares
    ///         (and the last entry for more), m = |U3| − k.
    event DistributedConfigRegistered(
        uint32 indexed id,
        DPMode mode,
        uint32 qPpm,
        uint64 mu,
        uint64 delta2,
        uint64 delta1,
        uint16 k,
        uint16 floorM,
        uint32[7][] rdpMicro
    );
    /// @notice Emitted after the charger (the rounds contract) was set.
    event ChargerSet(address indexed charger);

    /// @notice Register an allowed DP configuration (governor).
    /// @param qPpm Poisson sampling rate q in parts per million.
    /// @param sigmaMilli Noise multiplier σ in thousandths.
    /// @param steps DP-SGD steps per round.
    /// @param rdpMicro RDP of one round at each fixed order, micro-units, rounded up.
    function registerConfig(uint32 id, uint32 qPpm, uint32 sigmaMilli, uint32 steps, uint32[7] calldata rdpMicro)
        external;

    /// @notice Register a distributed DP configuration (governor).
    /// @param mode DistributedRecord or DistributedUser.
    /// @param qPpm Poisson sampling rate of records (record level; 1e6 at user level).
    /// @param mu Skellam parameter of each peer's noise share (integer units).
    /// @param delta2 L2 sensitivity of one contribution, integer units.
    /// @param delta1 L1 sensitivity of one contribution, integer units.
    /// @param k Collusion bound: the noise of up to k survivors is assumed known.
    /// @param floorM Fewest noisy shares (|U3| − k) a released sum may have.
    /// @param rdpMicro RDP vectors for m = floorM, floorM+1, ...; each lane non-increasing in m.
    function registerDistributedConfig(
        uint32 id,
        DPMode mode,
        uint32 qPpm,
        uint64 mu,
        uint64 delta2,
        uint64 delta1,
        uint16 k,
        uint16 floorM,
        uint32[7][] calldata rdpMicro
    ) external;

    /// @notice Set the charger once (governor).
    function setCharger(address charger) external;

    /// @notice Mark `peer` as known so its first charge costs no fresh storage slot (charger).
    function prepare(address peer) external;

    /// @notice Add configuration `id` to `peer`'s RDP; reverts above the cap (charger).
    function charge(address peer, uint256 round, uint32 id) external returns (uint64 epsilonAfter);

    /// @notice Take back a charge of a round that failed before its aggregate became computable (charger).
    function refund(address peer, uint256 round, uint32 id) external;

    /// @notice Charge survivor `peer` of a distributed round with `survivors` = |U3| (charger).
    function chargeSurvivor(address peer, uint256 round, uint32 id, uint256 survivors)
        external
        returns (uint64 epsilonAfter);

    /// @notice Take back {chargeSurvivor} for a round whose sum never became computable (charger).
    function refundSurvivor(address peer, uint256 round, uint32 id, uint256 survivors) external;

    /// @notice The DP mode of configuration `id` (Local for unknown ids).
    function modeOf(uint32 id) external view returns (DPMode);

    /// @notice Whether `survivors` = |U3| leave at least the floor of noisy shares (always true for Local).
    function noiseFloorMet(uint32 id, uint256 survivors) external view returns (bool);

    /// @notice The distributed parameters of `id`: collusion bound, floor and number of vectors.
    function distributedOf(uint32 id) external view returns (uint16 k, uint16 floorM, uint16 count);

    /// @notice `peer`'s ε so far, micro-ε.
    function epsilonOf(address peer) external view returns (uint64);

    /// @notice `peer`'s ε if charged configuration `id` now, micro-ε (distributed: at the floor, the worst case).
    function epsilonAfter(address peer, uint32 id) external view returns (uint64);

    /// @notice Whether `peer` can be charged configuration `id` without passing the cap.
    function canAfford(address peer, uint32 id) external view returns (bool);

    /// @notice `peer`'s cumulative RDP per order, micro-units.
    function rdpOf(address peer) external view returns (uint32[7] memory);

    /// @notice The orders α (integers).
    function orders() external pure returns (uint32[7] memory);

    /// @notice The conversion constants c_α, micro-units.
    function conversion() external view returns (uint32[7] memory);

    /// @notice The per-peer cap, micro-ε.
    function capMicro() external view returns (uint64);

    /// @notice δ of the policy, in units of 1e-12.
    function deltaPico() external view returns (uint64);
}
