// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The stored state of one consent (subject, partner, purpose): one storage slot.
/// @dev Bit layout (low bits first):
///   [0, 40)    grantedAt              uint40  (start of the current grant; 0 = never granted)
///   [40, 80)   expiresAt              uint40  (exclusive)
///   [80, 120)  revokedAt              uint40  (0 = not revoked)
///   [120, 144) platformNoticeVersion  uint24
///   [144, 168) partnerNoticeVersion   uint24
///   [168, 200) nonce                  uint32  (incremented by every write, both paths)
///   [200, 256) unused, always zero
type ConsentRecord is uint256;

using ConsentRecordLib for ConsentRecord global;

/// @title ConsentRecordLib
/// @notice Packs and reads `ConsentRecord`, and decides whether a record counts at a given time.
library ConsentRecordLib {
    uint256 internal constant EXPIRES_AT_SHIFT = 40;
    uint256 internal constant REVOKED_AT_SHIFT = 80;
    uint256 internal constant PLATFORM_NOTICE_SHIFT = 120;
    uint256 internal constant PARTNER_NOTICE_SHIFT = 144;
    uint256 internal constant NONCE_SHIFT = 168;
    uint256 internal constant MASK40 = (1 << 40) - 1;
    uint256 internal constant MASK24 = (1 << 24) - 1;
    /// @dev One unit of the nonce field.
    uint256 internal constant NONCE_ONE = 1 << NONCE_SHIFT;
    /// @dev The bits of the revokedAt field.
    uint256 internal constant REVOKED_AT_MASK = MASK40 << REVOKED_AT_SHIFT;

    /// @notice Packs the six fields into a record.
    function pack(
        uint40 grantedAt_,
        uint40 expiresAt_,
        uint40 revokedAt_,
        uint24 platformNoticeVersion_,
        uint24 partnerNoticeVersion_,
        uint32 nonce_
    ) internal pure returns (ConsentRecord) {
        return ConsentRecord.wrap(
            uint256(grantedAt_) | (uint256(expiresAt_) << EXPIRES_AT_SHIFT)
                | (uint256(revokedAt_) << REVOKED_AT_SHIFT)
                | (uint256(platformNoticeVersion_) << PLATFORM_NOTICE_SHIFT)
                | (uint256(partnerNoticeVersion_) << PARTNER_NOTICE_SHIFT) | (uint256(nonce_) << NONCE_SHIFT)
        );
    }

    /// @notice Start of the current grant (0 if never granted).
    function grantedAt(ConsentRecord r) internal pure returns (uint40) {
        return uint40(ConsentRecord.unwrap(r));
    }

    /// @notice End of the current grant (exclusive).
    function expiresAt(ConsentRecord r) internal pure returns (uint40) {
        return uint40(ConsentRecord.unwrap(r) >> EXPIRES_AT_SHIFT);
    }

    /// @notice When the current grant was revoked (0 if it was not).
    function revokedAt(ConsentRecord r) internal pure returns (uint40) {
        return uint40(ConsentRecord.unwrap(r) >> REVOKED_AT_SHIFT);
    }

    /// @notice The platform notice version of the current grant.
    function platformNoticeVersion(ConsentRecord r) internal pure returns (uint24) {
        return uint24(ConsentRecord.unwrap(r) >> PLATFORM_NOTICE_SHIFT);
    }

    /// @notice The partner notice version of the current grant.
    function partnerNoticeVersion(ConsentRecord r) internal pure returns (uint24) {
        return uint24(ConsentRecord.unwrap(r) >> PARTNER_NOTICE_SHIFT);
    }

    /// @notice How many writes the record has seen: the nonce the next signed write must carry.
    function nonce(ConsentRecord r) internal pure returns (uint32) {
        return uint32(ConsentRecord.unwrap(r) >> NONCE_SHIFT);
    }

    /// @notice Whether the record counts at time `at`, given the current notice versions.
    /// @dev `grantedAt != 0 && grantedAt <= at < expiresAt && (revokedAt == 0 || at < revokedAt)` and both
    /// notice versions equal the current ones. The caller also requires `at <= block.timestamp`.
    /// @param r The record.
    /// @param at The time (unix seconds).
    /// @param currentVersions The current versions packed as the record packs them:
    /// `platform << 120 | partner << 144`.
    function countsAt(ConsentRecord r, uint256 at, uint256 currentVersions) internal pure returns (bool ok) {
        uint256 w = ConsentRecord.unwrap(r);
        unchecked {
            uint256 g = w & MASK40;
            uint256 revoked = (w >> REVOKED_AT_SHIFT) & MASK40;
            ok = g != 0 && g <= at && at < ((w >> EXPIRES_AT_SHIFT) & MASK40) && (revoked == 0 || at < revoked)
                && (w & (((MASK24 << 24) | MASK24) << PLATFORM_NOTICE_SHIFT)) == currentVersions;
        }
    }
}
