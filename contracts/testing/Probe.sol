// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Probe
/// @notice A minimal contract used by the foundation tests to exercise every
///         chain backend: deploy, a state change with an event, a view call,
///         and a custom error with arguments.
contract Probe {
    /// @notice Thrown when `set` is called with a value above `limit`.
    error ProbeValueTooLarge(uint256 value, uint256 limit);

    /// @notice Emitted after `value` changed.
    event ValueSet(address indexed by, uint256 value);

    uint256 public constant LIMIT = 1000;
    uint256 public value;

    function set(uint256 newValue) external {
        if (newValue > LIMIT) revert ProbeValueTooLarge(newValue, LIMIT);
        value = newValue;
        emit ValueSet(msg.sender, newValue);
    }
}
