// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The terms of one consent, packed into a single word so that a grant costs one calldata word
/// and one event word.
/// @dev Bit layout (low bits first):
///   [0, 160)   partner                address (the bank or insurer the consent is given to)
///   [160, 168) purpose                uint8   (see `Purposes`)
///   [168, 208) expiresAt              uint40  (unix seconds, exclusive)
///   [208, 232) platformNoticeVersion  uint24  (the platform notice the user saw)
///   [232, 256) partnerNoticeVersion   uint24  (the partner notice the user saw)
type ConsentTerms is uint256;

using ConsentTermsLib for ConsentTerms global;

/// @title ConsentTermsLib
/// @notice Packs and reads `ConsentTerms`.
library ConsentTermsLib {
    uint256 internal constant PURPOSE_SHIFT = 160;
    uint256 internal constant EXPIRES_AT_SHIFT = 168;
    uint256 internal constant PLATFORM_NOTICE_SHIFT = 208;
    uint256 internal constant PARTNER_NOTICE_SHIFT = 232;
    /// @dev Mask of the (partner, purpose) part: the part that identifies the consent record.
    uint256 internal constant KEY_MASK = (1 << 168) - 1;

    /// @notice Packs the five fields into `ConsentTerms`.
    /// @param partner_ The partner the consent is given to.
    /// @param purpose_ The purpose code.
    /// @param expiresAt_ When the consent ends (unix seconds, exclusive).
    /// @param platformNoticeVersion_ The platform notice version the user was shown.
    /// @param partnerNoticeVersion_ The partner notice version the user was shown.
    /// @return terms The packed word.
    function pack(
        address partner_,
        uint8 purpose_,
        uint40 expiresAt_,
        uint24 platformNoticeVersion_,
        uint24 partnerNoticeVersion_
    ) internal pure returns (ConsentTerms terms) {
        terms = ConsentTerms.wrap(
            uint256(uint160(partner_)) | (uint256(purpose_) << PURPOSE_SHIFT)
                | (uint256(expiresAt_) << EXPIRES_AT_SHIFT)
                | (uint256(platformNoticeVersion_) << PLATFORM_NOTICE_SHIFT)
                | (uint256(partnerNoticeVersion_) << PARTNER_NOTICE_SHIFT)
        );
    }

    /// @notice The partner the consent is given to.
    function partner(ConsentTerms terms) internal pure returns (address) {
        return address(uint160(ConsentTerms.unwrap(terms)));
    }

    /// @notice The purpose code.
    function purpose(ConsentTerms terms) internal pure returns (uint8) {
        return uint8(ConsentTerms.unwrap(terms) >> PURPOSE_SHIFT);
    }

    /// @notice When the consent ends (unix seconds, exclusive).
    function expiresAt(ConsentTerms terms) internal pure returns (uint40) {
        return uint40(ConsentTerms.unwrap(terms) >> EXPIRES_AT_SHIFT);
    }

    /// @notice The platform notice version the user was shown.
    function platformNoticeVersion(ConsentTerms terms) internal pure returns (uint24) {
        return uint24(ConsentTerms.unwrap(terms) >> PLATFORM_NOTICE_SHIFT);
    }

    /// @notice The partner notice version the user was shown.
    function partnerNoticeVersion(ConsentTerms terms) internal pure returns (uint24) {
        return uint24(ConsentTerms.unwrap(terms) >> PARTNER_NOTICE_SHIFT);
    }
}
