// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The scalar fields of one conversion, packed into a single calldata word.
/// @dev Bit layout (low bits first):
///   [0, 64)    id             uint64  (unique across the ledger, > 0)
///   [64, 104)  time           uint40  (when the conversion happened, unix seconds)
///   [104, 144) recommendedAt  uint40  (when the recommendation that led to it was served)
///   [144, 256) value          uint112 (in the agreement's currency unit, > 0)
type ConversionData is uint256;

using ConversionDataLib for ConversionData global;

/// @title ConversionDataLib
/// @notice Packs and reads `ConversionData`.
library ConversionDataLib {
    uint256 internal constant TIME_SHIFT = 64;
    uint256 internal constant RECOMMENDED_AT_SHIFT = 104;
    uint256 internal constant VALUE_SHIFT = 144;

    /// @notice Packs the four fields.
    function pack(uint64 id_, uint40 time_, uint40 recommendedAt_, uint112 value_)
        internal
        pure
        returns (ConversionData)
    {
        return ConversionData.wrap(
            uint256(id_) | (uint256(time_) << TIME_SHIFT) | (uint256(recommendedAt_) << RECOMMENDED_AT_SHIFT)
                | (uint256(value_) << VALUE_SHIFT)
        );
    }

    /// @notice The conversion id.
    function id(ConversionData d) internal pure returns (uint64) {
        return uint64(ConversionData.unwrap(d));
    }

    /// @notice When the conversion happened.
    function time(ConversionData d) internal pure returns (uint40) {
        return uint40(ConversionData.unwrap(d) >> TIME_SHIFT);
    }

    /// @notice When the recommendation that led to it was served.
    function recommendedAt(ConversionData d) internal pure returns (uint40) {
        return uint40(ConversionData.unwrap(d) >> RECOMMENDED_AT_SHIFT);
    }

    /// @notice The conversion value in the agreement's currency unit.
    function value(ConversionData d) internal pure returns (uint112) {
        return uint112(ConversionData.unwrap(d) >> VALUE_SHIFT);
    }
}
