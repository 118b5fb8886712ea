// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase} from "./TestBase.sol";
import {IPrivacyLedger} from "../interfaces/IPrivacyLedger.sol";
import {PrivacyLedger} from "../PrivacyLedger.sol";

/// @notice Distributed-DP charges: the vector charged for |U3| survivors,
///         the noise floor, refunds, and the cap, fuzzed.
contract DistributedLedgerFuzz is TestBase {
    PrivacyLedger internal ledger;
    uint32 internal constant ID = 4;
    uint16 internal constant K = 2;
    uint16 internal constant FLOOR = 3;
    uint256 internal constant COUNT = 4;
    uint64 internal constant CAP = 5_000_000;

    function setUp() public {
        uint32[7] memory conv = [uint32(9_000_000), 5_000_000, 3_000_000, 1_500_000, 1_000_000, 600_000, 400_000];
        ledger = new PrivacyLedger(address(this), CAP, 10_000_000, conv);
        ledger.setCharger(address(this));
        ledger.registerDistributedConfig(
            ID, IPrivacyLedger.DPMode.DistributedRecord, 10_000, 1e9, 65_600, 4_640_000, K, FLOOR, _vectors()
        );
    }

    /// @dev Lane i of vector j: strictly decreasing in j (more noise, less RDP).
    function _vectors() internal pure returns (uint32[7][] memory v) {
        v = new uint32[7][](COUNT);
        for (uint256 j = 0; j < COUNT; ++j) {
            for (uint256 i = 0; i < 7; ++i) {
                v[j][i] = uint32((i + 1) * 100_000 / (j + 1));
            }
        }
    }

    /// @dev Below k + floor survivors nothing is charged; above, the vector
    ///      for m = |U3| − k (the last one beyond the registered range).
    function testFuzz_chargeFollowsSurvivors(uint16 survivors) public {
        address peer = address(0xBEEF);
        if (survivors < K + FLOOR) {
            assertTrue(!ledger.noiseFloorMet(ID, survivors), "floor met below k + floor");
            vm.expectRevert(
                abi.encodeWithSelector(IPrivacyLedger.LedgerNoiseBelowFloor.selector, ID, uint256(survivors), FLOOR)
            );
            ledger.chargeSurvivor(peer, 1, ID, survivors);
            return;
        }
        assertTrue(ledger.noiseFloorMet(ID, survivors), "floor not met at k + floor");
        ledger.chargeSurvivor(peer, 1, ID, survivors);
        uint256 j = survivors - K - FLOOR;
        if (j > COUNT - 1) j = COUNT - 1;
        uint32[7] memory got = ledger.rdpOf(peer);
        uint32[7][] memory v = _vectors();
        for (uint256 i = 0; i < 7; ++i) {
            assertEq(got[i], v[j][i], "charged lane");
        }
        ledger.refundSurvivor(peer, 1, ID, survivors);
        assertEq(ledger.epsilonOf(peer), 0, "refund gives the charge back");
    }

    /// @dev Any sequence of survivor charges that the floor-vector check
    ///      allows keeps ε within the cap (selection relies on it).
    function testFuzz_floorVectorBoundsEveryCharge(uint16[8] memory survivors) public {
        address peer = address(0xCAFE);
        // Enough rounds to reach the cap even at the smallest vector.
        for (uint256 r = 0; r < 400; ++r) {
            uint256 s = K + FLOOR + (survivors[r % 8] % 20);
            bool affordable = ledger.canAfford(peer, ID);
            if (!affordable) break;
            uint64 eps = ledger.chargeSurvivor(peer, r + 1, ID, s);
            assertLe(eps, CAP, "epsilon above the cap");
        }
        assertTrue(!ledger.canAfford(peer, ID), "the cap was never reached");
    }

    /// @dev The commit-time charge refuses a distributed configuration.
    function test_localChargeRefusesDistributedConfig() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IPrivacyLedger.LedgerWrongMode.selector, ID, IPrivacyLedger.DPMode.DistributedRecord
            )
        );
        ledger.charge(address(0xBEEF), 1, ID);
    }
}
