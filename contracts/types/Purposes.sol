// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Purposes
/// @notice The purposes a consent can be given for. A purpose is a plain `uint8` in every ABI so that a
/// standard client can encode it without knowing this library.
/// @dev New purposes are appended; the numbering of existing ones never changes.
library Purposes {
    /// @notice Building a profile of the learner from their study behaviour.
    uint8 internal constant PROFILING = 0;
    /// @notice Recommending the partner's products from that profile. The settlement ledger requires this
    /// purpose at the conversion time.
    uint8 internal constant PRODUCT_RECOMMENDATION = 1;
    /// @notice Being contacted by the partner for marketing.
    uint8 internal constant MARKETING_CONTACT = 2;
    /// @notice Sharing raw data (an export) with the partner.
    uint8 internal constant DATA_SHARING = 3;
    /// @notice How many purposes exist; every valid purpose is below it.
    uint8 internal constant COUNT = 4;

    /// @notice Whether `purpose` is one of the purposes above.
    /// @param purpose The purpose code.
    /// @return True iff `purpose < COUNT`.
    function isValid(uint256 purpose) internal pure returns (bool) {
        return purpose < COUNT;
    }
}
