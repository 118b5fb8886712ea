// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TestBase} from "./TestBase.sol";
import {FedRounds} from "../FedRounds.sol";
import {FraudProofs} from "../FraudProofs.sol";
import {PeerRegistry} from "../PeerRegistry.sol";
import {PrivacyLedger} from "../PrivacyLedger.sol";
import {IFedRounds} from "../interfaces/IFedRounds.sol";

/// @notice The four real contracts wired as coordinator/chain/_deploy.py wires
///         them (the fraud-proof contract, the ledger's charger, the
///         registry's slasher), DP configuration 1 registered, and registered
///         actors 0xBEEF00 + i: the set-up of the tests that play a round
///         against the real proofs.
abstract contract RealFederation is TestBase {
    PeerRegistry internal registry;
    PrivacyLedger internal ledger;
    FedRounds internal rounds;
    FraudProofs internal fraud;
    address[] internal actors;

    receive() external payable {}

    function _deploy(IFedRounds.Policy memory pol, uint96 stake, uint256 peers) internal {
        vm.deal(address(this), 1_000 ether);
        registry = new PeerRegistry(address(this), stake, 2);
        ledger = new PrivacyLedger(
            address(this), 1_000_000_000, 10_000_000, [uint32(10126632), 4801692, 2252729, 1214110, 733718, 396981, 227839]
        );
        rounds = new FedRounds(address(this), registry, ledger, pol, bytes32(0), bytes32(0));
        fraud = new FraudProofs(rounds);
        rounds.setFraudProofs(address(fraud));
        ledger.setCharger(address(rounds));
        registry.setSlasher(address(rounds));
        ledger.registerConfig(1, 50_000, 1_000, 10, [uint32(9_000), 7_000, 6_000, 5_000, 5_000, 5_000, 5_000]);
        for (uint256 i = 0; i < peers; ++i) {
            address a = address(uint160(0xBEEF00 + i));
            actors.push(a);
            vm.deal(a, 100 ether);
            vm.prank(a);
            registry.register{value: stake}(1, 7, bytes32(i));
        }
    }
}
