// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IPeerRegistry} from "./interfaces/IPeerRegistry.sol";

/// @title PeerRegistry
/// @notice See {IPeerRegistry}. Holds every stake; `totalStaked` always equals
///         the sum of registered peers' stakes, and this contract's balance
///         equals totalStaked + slashedStake.
contract PeerRegistry is IPeerRegistry {
    uint8 private constant ALL_MODALITIES = 7;

    address public immutable governor;
    uint96 public immutable minStake;
    uint64 public immutable leaveDelay;

    address public slasher;
    uint256 public override totalStaked;
    uint256 public override slashedStake;
    /// @notice Blocks between registering and being eligible (governor-set).
    uint64 public eligibilityDelay;
    /// @notice True while a round's selection is pending (set by the slasher).
    bool public frozen;

    mapping(address peer => Peer) private _peers;
    address[] private _list;
    mapping(address peer => uint256 indexPlusOne) private _position;
    mapping(address peer => uint256 count) private _locks;
    mapping(address peer => uint64 blockNumber) public override registeredBlock;

    constructor(address governor_, uint96 minStake_, uint64 leaveDelay_) {
        governor = governor_;
        minStake = minStake_;
        leaveDelay = leaveDelay_;
    }

    /// @inheritdoc IPeerRegistry
    function register(uint16 region, uint8 modalities, bytes32 key) external payable override {
        if (_peers[msg.sender].registered) revert RegistryAlreadyRegistered(msg.sender);
        if (msg.value < minStake) revert RegistryStakeTooLow(msg.value, minStake);
        if (modalities == 0 || modalities & ~ALL_MODALITIES != 0) revert RegistryBadModalities(modalities);
        _peers[msg.sender] = Peer({
            stake: uint96(msg.value),
            leaveBlock: 0,
            region: region,
            modalities: modalities,
            registered: true,
            quarantined: false
        });
        _list.push(msg.sender);
        _position[msg.sender] = _list.length;
        registeredBlock[msg.sender] = uint64(block.number);
        totalStaked += msg.value;
        emit PeerRegistered(msg.sender, msg.value, region, modalities, key);
    }

    /// @inheritdoc IPeerRegistry
    function requestLeave() external override {
        Peer storage p = _peers[msg.sender];
        if (!p.registered) revert RegistryNotRegistered(msg.sender);
        if (p.leaveBlock != 0) revert RegistryAlreadyRegistered(msg.sender);
        if (frozen) revert RegistryFrozen();
        uint64 due = uint64(block.number) + leaveDelay;
        p.leaveBlock = due;
        emit PeerLeaveRequested(msg.sender, due);
    }

    /// @inheritdoc IPeerRegistry
    function withdraw() external override {
        Peer memory p = _peers[msg.sender];
        if (!p.registered) revert RegistryNotRegistered(msg.sender);
        if (p.leaveBlock == 0) revert RegistryNotLeaving(msg.sender);
        if (block.number < p.leaveBlock) revert RegistryLeaveNotDue(block.number, p.leaveBlock);
        if (_locks[msg.sender] != 0) revert RegistryStakeLocked(msg.sender);
        if (frozen) revert RegistryFrozen();
        // Effects: remove from the list (swap and pop), then pay.
        uint256 pos = _position[msg.sender] - 1;
        address last = _list[_list.length - 1];
        _list[pos] = last;
        _position[last] = pos + 1;
        _list.pop();
        delete _position[msg.sender];
        delete _peers[msg.sender];
        delete registeredBlock[msg.sender];
        totalStaked -= p.stake;
        emit PeerWithdrawn(msg.sender, p.stake);
        (bool ok,) = msg.sender.call{value: p.stake}("");
        require(ok);
    }

    /// @inheritdoc IPeerRegistry
    function quarantine(address peer) external override {
        if (msg.sender != governor && msg.sender != slasher) revert RegistryUnauthorized(msg.sender);
        Peer storage p = _peers[peer];
        if (!p.registered) revert RegistryNotRegistered(peer);
        p.quarantined = true;
        emit PeerQuarantined(peer, msg.sender);
    }

    /// @inheritdoc IPeerRegistry
    function slash(address peer) external override {
        if (msg.sender != slasher) revert RegistryUnauthorized(msg.sender);
        Peer storage p = _peers[peer];
        if (!p.registered) revert RegistryNotRegistered(peer);
        uint256 amount = p.stake;
        p.stake = 0;
        p.quarantined = true;
        emit PeerQuarantined(peer, msg.sender);
        totalStaked -= amount;
        slashedStake += amount;
        emit PeerSlashed(peer, amount);
    }

    /// @inheritdoc IPeerRegistry
    function sweepSlashedStake(address to) external override {
        if (msg.sender != governor) revert RegistryUnauthorized(msg.sender);
        uint256 amount = slashedStake;
        if (amount == 0) revert RegistryNothingSlashed();
        slashedStake = 0;
        emit SlashedStakeSwept(to, amount);
        (bool ok,) = to.call{value: amount}("");
        require(ok);
    }

    /// @inheritdoc IPeerRegistry
    function setLock(address peer, bool locked) external override {
        if (msg.sender != slasher) revert RegistryUnauthorized(msg.sender);
        uint256 n = _locks[peer];
        if (locked) n += 1;
        else if (n != 0) n -= 1;
        _locks[peer] = n;
        emit StakeLockChanged(peer, n);
    }

    /// @inheritdoc IPeerRegistry
    function locksOf(address peer) external view override returns (uint256) {
        return _locks[peer];
    }

    /// @inheritdoc IPeerRegistry
    function setSlasher(address slasher_) external override {
        if (msg.sender != governor) revert RegistryUnauthorized(msg.sender);
        if (slasher != address(0)) revert RegistrySlasherAlreadySet(slasher);
        slasher = slasher_;
        emit SlasherSet(slasher_);
    }

    /// @inheritdoc IPeerRegistry
    function setFrozen(bool frozen_) external override {
        if (msg.sender != slasher) revert RegistryUnauthorized(msg.sender);
        frozen = frozen_;
        emit PoolFrozen(frozen_);
    }

    /// @inheritdoc IPeerRegistry
    function setEligibilityDelay(uint64 delay) external override {
        if (msg.sender != governor) revert RegistryUnauthorized(msg.sender);
        if (frozen) revert RegistryFrozen();
        eligibilityDelay = delay;
        emit EligibilityDelaySet(delay);
    }

    /// @inheritdoc IPeerRegistry
    function isEligibleAt(address peer, uint256 blockNumber) public view override returns (bool) {
        Peer memory p = _peers[peer];
        return p.registered && !p.quarantined && p.leaveBlock == 0
            && uint256(registeredBlock[peer]) + eligibilityDelay <= blockNumber;
    }

    /// @inheritdoc IPeerRegistry
    function isEligible(address peer) external view override returns (bool) {
        return isEligibleAt(peer, block.number);
    }

    /// @inheritdoc IPeerRegistry
    function isRegistered(address peer) external view override returns (bool) {
        return _peers[peer].registered;
    }

    /// @inheritdoc IPeerRegistry
    function peers() external view override returns (address[] memory) {
        return _list;
    }

    /// @inheritdoc IPeerRegistry
    function peerCount() external view override returns (uint256) {
        return _list.length;
    }

    /// @inheritdoc IPeerRegistry
    function peerAt(uint256 i) external view override returns (address) {
        return _list[i];
    }

    /// @inheritdoc IPeerRegistry
    function peerInfo(address peer) external view override returns (Peer memory) {
        return _peers[peer];
    }
}
