// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IPrivacyLedger} from "./interfaces/IPrivacyLedger.sol";

/// @title PrivacyLedger
/// @notice See {IPrivacyLedger}.
/// @dev A peer's cumulative RDP is one slot: seven 32-bit lanes (lane i =
///      bits [32i, 32i+32), order i) and lane 7 holding a "prepared" flag, so
///      a commit always rewrites a non-zero slot (no fresh-slot cost). A
///      configuration's vector uses the same layout with lane 7 = 1.
///      A distributed configuration keeps its floor (worst-case) vector in
///      `_configs` too, so selection's {canAfford} is conservative, plus one
///      packed vector per m in `_noiseRdp` and one word of parameters:
///      mode:8 | k:16 | floorM:16 | count:16.
contract PrivacyLedger is IPrivacyLedger {
    uint256 private constant LANES = 7;
    uint256 private constant LANE = 0xFFFFFFFF;
    uint256 private constant FLAG = uint256(1) << 224;

    address public immutable governor;
    uint64 public immutable override capMicro;
    uint64 public immutable override deltaPico;
    /// @dev c_α in micro-units, packed like an RDP vector.
    uint256 private immutable _conversion;

    address public charger;

    mapping(uint32 id => uint256 packedRdp) private _configs;
    mapping(address peer => uint256 packedRdp) private _spent;
    mapping(uint32 id => uint256 params) private _dist;
    mapping(uint32 id => mapping(uint256 index => uint256 packedRdp)) private _noiseRdp;

    constructor(address governor_, uint64 capMicro_, uint64 deltaPico_, uint32[7] memory conversionMicro) {
        governor = governor_;
        capMicro = capMicro_;
        deltaPico = deltaPico_;
        _conversion = _pack(conversionMicro);
    }

    modifier onlyCharger() {
        if (msg.sender != charger) revert LedgerUnauthorized(msg.sender);
        _;
    }

    /// @inheritdoc IPrivacyLedger
    function registerConfig(uint32 id, uint32 qPpm, uint32 sigmaMilli, uint32 steps, uint32[7] calldata rdpMicro)
        external
        override
    {
        if (msg.sender != governor) revert LedgerUnauthorized(msg.sender);
        if (_configs[id] != 0) revert LedgerConfigExists(id);
        if (id == 0 || qPpm == 0 || qPpm > 1_000_000 || steps == 0) revert LedgerBadConfig(id);
        for (uint256 i = 0; i < LANES; ++i) {
            if (rdpMicro[i] == 0) revert LedgerBadConfig(id);
        }
        _configs[id] = _pack(rdpMicro) | FLAG;
        emit DPConfigRegistered(id, qPpm, sigmaMilli, steps, rdpMicro);
    }

    /// @inheritdoc IPrivacyLedger
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
    ) external override {
        if (msg.sender != governor) revert LedgerUnauthorized(msg.sender);
        if (_configs[id] != 0) revert LedgerConfigExists(id);
        if (
            id == 0 || mode == DPMode.Local || qPpm == 0 || qPpm > 1_000_000
                || (mode == DPMode.DistributedUser && qPpm != 1_000_000) || mu == 0 || delta2 == 0 || floorM == 0
                || rdpMicro.length == 0 || rdpMicro.length > 256
        ) revert LedgerBadConfig(id);
        for (uint256 j = 0; j < rdpMicro.length; ++j) {
            for (uint256 i = 0; i < LANES; ++i) {
                // More noise never costs more: the floor vector bounds them all.
                if (rdpMicro[j][i] == 0 || (j > 0 && rdpMicro[j][i] > rdpMicro[j - 1][i])) {
                    revert LedgerBadConfig(id);
                }
            }
            _noiseRdp[id][j] = _pack(rdpMicro[j]) | FLAG;
        }
        _configs[id] = _noiseRdp[id][0];
        _dist[id] = uint256(uint8(mode)) | (uint256(k) << 8) | (uint256(floorM) << 24) | (rdpMicro.length << 40);
        emit DistributedConfigRegistered(id, mode, qPpm, mu, delta2, delta1, k, floorM, rdpMicro);
    }

    /// @inheritdoc IPrivacyLedger
    function setCharger(address charger_) external override {
        if (msg.sender != governor) revert LedgerUnauthorized(msg.sender);
        if (charger != address(0)) revert LedgerChargerAlreadySet(charger);
        charger = charger_;
        emit ChargerSet(charger_);
    }

    /// @inheritdoc IPrivacyLedger
    function prepare(address peer) external override onlyCharger {
        if (_spent[peer] == 0) _spent[peer] = FLAG;
    }

    /// @inheritdoc IPrivacyLedger
    function charge(address peer, uint256 round, uint32 id) external override onlyCharger returns (uint64 eps) {
        uint256 cfg = _configs[id];
        if (cfg == 0) revert LedgerUnknownConfig(id);
        if (_dist[id] != 0) revert LedgerWrongMode(id, DPMode(uint8(_dist[id])));
        eps = _charge(peer, round, id, cfg);
    }

    /// @inheritdoc IPrivacyLedger
    function chargeSurvivor(address peer, uint256 round, uint32 id, uint256 survivors)
        external
        override
        onlyCharger
        returns (uint64 eps)
    {
        eps = _charge(peer, round, id, _survivorVector(id, survivors));
    }

    /// @inheritdoc IPrivacyLedger
    function refundSurvivor(address peer, uint256 round, uint32 id, uint256 survivors) external override onlyCharger {
        _refund(peer, round, id, _survivorVector(id, survivors));
    }

    function _charge(address peer, uint256 round, uint32 id, uint256 cfg) private returns (uint64 eps) {
        uint256 after_ = _add(_spent[peer], cfg);
        eps = _epsilon(after_);
        if (eps > capMicro) revert LedgerBudgetExceeded(peer, eps, capMicro);
        _spent[peer] = after_;
        emit BudgetCharged(peer, round, id, eps);
    }

    /// @inheritdoc IPrivacyLedger
    function refund(address peer, uint256 round, uint32 id) external override onlyCharger {
        uint256 cfg = _configs[id];
        if (cfg == 0) revert LedgerUnknownConfig(id);
        if (_dist[id] != 0) revert LedgerWrongMode(id, DPMode(uint8(_dist[id])));
        _refund(peer, round, id, cfg);
    }

    function _refund(address peer, uint256 round, uint32 id, uint256 cfg) private {
        uint256 s = _spent[peer];
        uint256 out = FLAG;
        for (uint256 i = 0; i < LANES; ++i) {
            uint256 a = (s >> (32 * i)) & LANE;
            uint256 b = (cfg >> (32 * i)) & LANE;
            // A saturated lane stays saturated: we no longer know its true value.
            uint256 r = a == LANE ? LANE : (a >= b ? a - b : 0);
            out |= r << (32 * i);
        }
        _spent[peer] = out;
        emit BudgetRefunded(peer, round, id, _epsilon(out));
    }

    /// @dev The vector charged for |U3| = `survivors`: index m − floorM, capped at the last one.
    function _survivorVector(uint32 id, uint256 survivors) private view returns (uint256) {
        uint256 p = _dist[id];
        if (p == 0) {
            if (_configs[id] == 0) revert LedgerUnknownConfig(id);
            revert LedgerWrongMode(id, DPMode.Local);
        }
        uint256 k = (p >> 8) & 0xFFFF;
        uint16 floorM = uint16(p >> 24);
        if (survivors < k + floorM) revert LedgerNoiseBelowFloor(id, survivors, floorM);
        uint256 idx = survivors - k - floorM;
        uint256 last = ((p >> 40) & 0xFFFF) - 1;
        return _noiseRdp[id][idx < last ? idx : last];
    }

    /// @inheritdoc IPrivacyLedger
    function modeOf(uint32 id) external view override returns (DPMode) {
        return DPMode(uint8(_dist[id]));
    }

    /// @inheritdoc IPrivacyLedger
    function noiseFloorMet(uint32 id, uint256 survivors) external view override returns (bool) {
        uint256 p = _dist[id];
        if (p == 0) return true;
        return survivors >= ((p >> 8) & 0xFFFF) + ((p >> 24) & 0xFFFF);
    }

    /// @inheritdoc IPrivacyLedger
    function distributedOf(uint32 id) external view override returns (uint16 k, uint16 floorM, uint16 count) {
        uint256 p = _dist[id];
        return (uint16(p >> 8), uint16(p >> 24), uint16(p >> 40));
    }

    /// @inheritdoc IPrivacyLedger
    function epsilonOf(address peer) external view override returns (uint64) {
        return _epsilon(_spent[peer]);
    }

    /// @inheritdoc IPrivacyLedger
    function epsilonAfter(address peer, uint32 id) public view override returns (uint64) {
        uint256 cfg = _configs[id];
        if (cfg == 0) revert LedgerUnknownConfig(id);
        return _epsilon(_add(_spent[peer], cfg));
    }

    /// @inheritdoc IPrivacyLedger
    function canAfford(address peer, uint32 id) external view override returns (bool) {
        return epsilonAfter(peer, id) <= capMicro;
    }

    /// @inheritdoc IPrivacyLedger
    function rdpOf(address peer) external view override returns (uint32[7] memory out) {
        return _unpack(_spent[peer]);
    }

    /// @inheritdoc IPrivacyLedger
    function orders() external pure override returns (uint32[7] memory) {
        return [uint32(2), 3, 5, 8, 12, 20, 32];
    }

    /// @inheritdoc IPrivacyLedger
    function conversion() external view override returns (uint32[7] memory) {
        return _unpack(_conversion);
    }

    /// @dev Lane-wise saturating addition; the flag lane is kept set.
    function _add(uint256 a, uint256 b) private pure returns (uint256 out) {
        out = FLAG;
        for (uint256 i = 0; i < LANES; ++i) {
            uint256 s = ((a >> (32 * i)) & LANE) + ((b >> (32 * i)) & LANE);
            out |= (s > LANE ? LANE : s) << (32 * i);
        }
    }

    /// @dev min over finite lanes of (rdp + c); all lanes saturated = type(uint64).max.
    function _epsilon(uint256 rdp) private view returns (uint64 eps) {
        if (rdp & ~FLAG == 0) return 0; // nothing charged yet
        uint256 best = type(uint64).max;
        uint256 conv = _conversion;
        for (uint256 i = 0; i < LANES; ++i) {
            uint256 r = (rdp >> (32 * i)) & LANE;
            if (r == LANE) continue;
            uint256 e = r + ((conv >> (32 * i)) & LANE);
            if (e < best) best = e;
        }
        return uint64(best);
    }

    function _pack(uint32[7] memory v) private pure returns (uint256 out) {
        for (uint256 i = 0; i < LANES; ++i) {
            out |= uint256(v[i]) << (32 * i);
        }
    }

    function _unpack(uint256 p) private pure returns (uint32[7] memory v) {
        for (uint256 i = 0; i < LANES; ++i) {
            v[i] = uint32((p >> (32 * i)) & LANE);
        }
    }
}
