// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IPeerRegistry
/// @notice Peers register with a stake, metadata and a long-term key; leave
///         after a delay; can be quarantined by the governor or by a proven
///         fraud (through the slasher, the rounds contract), and slashed by a
///         proven dealer fault: the whole stake moves to `slashedStake`,
///         which only the governor can sweep.
interface IPeerRegistry {
    /// @notice A registered peer. Slot layout (one slot):
    ///         stake:96 | leaveBlock:64 | region:16 | modalities:8 | registered:8 | quarantined:8
    struct Peer {
        uint96 stake;
        uint64 leaveBlock;
        uint16 region;
        uint8 modalities;
        bool registered;
        bool quarantined;
    }

    /// @notice Thrown when `peer` registers twice.
    error RegistryAlreadyRegistered(address peer);
    /// @notice Thrown when `peer` is not registered.
    error RegistryNotRegistered(address peer);
    /// @notice Thrown when the stake sent is below the minimum.
    error RegistryStakeTooLow(uint256 sent, uint256 required);
    /// @notice Thrown when withdrawing before the leave delay has passed.
    error RegistryLeaveNotDue(uint256 currentBlock, uint256 dueBlock);
    /// @notice Thrown when withdrawing without having asked to leave.
    error RegistryNotLeaving(address peer);
    /// @notice Thrown when `caller` may not call this function.
    error RegistryUnauthorized(address caller);
    /// @notice Thrown when `peer` withdraws while a result it posted is still pending.
    error RegistryStakeLocked(address peer);
    /// @notice Thrown when the modalities bitmask has bits outside text|image|behaviour.
    error RegistryBadModalities(uint8 modalities);
    /// @notice Thrown when the slasher is set twice.
    error RegistrySlasherAlreadySet(address slasher);
    /// @notice Thrown when leaving, withdrawing or changing the eligibility
    ///         delay while a round's selection is pending (the pool is frozen).
    error RegistryFrozen();
    /// @notice Thrown when the governor sweeps while no stake has been slashed.
    error RegistryNothingSlashed();

    /// @notice Emitted after `peer` registered.
    event PeerRegistered(address indexed peer, uint256 stake, uint16 region, uint8 modalities, bytes32 key);
    /// @notice Emitted after `peer` asked to leave; it can withdraw from `dueBlock`.
    event PeerLeaveRequested(address indexed peer, uint64 dueBlock);
    /// @notice Emitted after `peer` withdrew its stake and left.
    event PeerWithdrawn(address indexed peer, uint256 stake);
    /// @notice Emitted after `peer` was quarantined by `by`.
    event PeerQuarantined(address indexed peer, address indexed by);
    /// @notice Emitted after the slasher (the rounds contract) was set.
    event SlasherSet(address indexed slasher);
    /// @notice Emitted after the holds on `peer`'s stake changed to `locks`.
    event StakeLockChanged(address indexed peer, uint256 locks);
    /// @notice Emitted after the slasher (the rounds contract) froze or thawed the pool.
    event PoolFrozen(bool frozen);
    /// @notice Emitted after the slasher took `peer`'s whole stake, `amount`
    ///         (0 when it was slashed before), into `slashedStake`.
    event PeerSlashed(address indexed peer, uint256 amount);
    /// @notice Emitted after the governor sent the slashed stake, `amount`, to `to`.
    event SlashedStakeSwept(address indexed to, uint256 amount);
    /// @notice Emitted after the governor set the eligibility delay (blocks).
    event EligibilityDelaySet(uint64 delay);

    /// @notice Register the caller with `msg.value` as stake.
    /// @param region Operator-declared region code.
    /// @param modalities Bitmask: 1 text, 2 image, 4 behaviour.
    /// @param key The peer's long-term public key.
    function register(uint16 region, uint8 modalities, bytes32 key) external payable;

    /// @notice Stop being selected; the stake can be withdrawn after the leave delay.
    function requestLeave() external;

    /// @notice Withdraw the stake after the leave delay and deregister.
    function withdraw() external;

    /// @notice Exclude `peer` from future rounds (governor or slasher).
    function quarantine(address peer) external;

    /// @notice Quarantine `peer` and move its whole stake out of
    ///         `totalStaked` into `slashedStake` (slasher only). The peer can
    ///         still leave and withdraw what is left of its stake: nothing.
    function slash(address peer) external;

    /// @notice Send the whole slashed stake to `to` (governor only).
    function sweepSlashedStake(address to) external;

    /// @notice Lock (`locked` true) or release one hold on `peer`'s stake
    ///         (slasher only): a peer with holds cannot withdraw. The rounds
    ///         contract holds an aggregator's stake while its result is pending.
    function setLock(address peer, bool locked) external;

    /// @notice The number of holds on `peer`'s stake.
    function locksOf(address peer) external view returns (uint256);

    /// @notice Set the slasher once (governor).
    function setSlasher(address slasher) external;

    /// @notice Freeze (or thaw) the pool: while frozen, requestLeave and
    ///         withdraw revert RegistryFrozen, so the registry order and the
    ///         eligibility of the peers a pending selection draws from cannot
    ///         change (slasher only). Registration stays open: new peers are
    ///         appended after the snapshot the selection draws from.
    function setFrozen(bool frozen) external;

    /// @notice A peer registered at block b is eligible from b + delay on
    ///         (governor only; refused while frozen).
    function setEligibilityDelay(uint64 delay) external;

    /// @notice Whether `peer` counts for a round opened at `blockNumber`:
    ///         registered at least the eligibility delay before it, not
    ///         quarantined and not leaving (current state).
    function isEligibleAt(address peer, uint256 blockNumber) external view returns (bool);

    /// @notice The block `peer` registered in (0 if not registered).
    function registeredBlock(address peer) external view returns (uint64);

    /// @notice isEligibleAt(peer, block.number): registered long enough, not
    ///         quarantined and not leaving.
    function isEligible(address peer) external view returns (bool);

    /// @notice Registered (possibly quarantined or leaving).
    function isRegistered(address peer) external view returns (bool);

    /// @notice All registered peers, in registration order (withdrawals swap-and-pop).
    function peers() external view returns (address[] memory);

    /// @notice The number of registered peers (the length of {peers}).
    function peerCount() external view returns (uint256);

    /// @notice The `i`-th registered peer (order of {peers}).
    function peerAt(uint256 i) external view returns (address);

    /// @notice The record of `peer`.
    function peerInfo(address peer) external view returns (Peer memory);

    /// @notice Sum of all registered peers' stakes.
    function totalStaked() external view returns (uint256);

    /// @notice Stake slashed and not yet swept. The registry's balance is
    ///         always totalStaked + slashedStake.
    function slashedStake() external view returns (uint256);
}
