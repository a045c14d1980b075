// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ConsentTerms, ConsentTermsLib} from "./ConsentTerms.sol";

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
    /// @dev The bits of the nonce field.
    uint256 internal constant NONCE_MASK = ((1 << 32) - 1) << NONCE_SHIFT;
    /// @dev The bits of the two notice-version fields.
    uint256 internal constant VERSIONS_MASK = ((MASK24 << 24) | MASK24) << PLATFORM_NOTICE_SHIFT;

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

    /// @notice The record after a grant of `terms` whose interval starts at `grantedAt_` (now for a new
    /// interval, the record's own `grantedAt` for a renewal): not revoked, expiry and notice versions from
    /// the terms, nonce incremented (mod 2^32).
    /// @dev `ConsentTerms` keeps its two notice versions in the record's order, so both move with one shift.
    /// @param r The record before the grant (0 if never written).
    /// @param terms The terms granted.
    /// @param grantedAt_ The start of the interval (fits 40 bits).
    function granted(ConsentRecord r, ConsentTerms terms, uint256 grantedAt_) internal pure returns (ConsentRecord) {
        uint256 t = ConsentTerms.unwrap(terms);
        return ConsentRecord.wrap(
            grantedAt_ | (((t >> ConsentTermsLib.EXPIRES_AT_SHIFT) & MASK40) << EXPIRES_AT_SHIFT)
                | ((t >> ConsentTermsLib.PLATFORM_NOTICE_SHIFT) << PLATFORM_NOTICE_SHIFT) | _nextNonce(r)
        );
    }

    /// @notice The record after a revocation at `revokedAt_`: revokedAt set, nonce incremented (mod 2^32).
    /// @param r The record before the revocation.
    /// @param revokedAt_ The time of the revocation (fits 40 bits).
    function revoked(ConsentRecord r, uint256 revokedAt_) internal pure returns (ConsentRecord) {
        uint256 w = ConsentRecord.unwrap(r);
        return ConsentRecord.wrap(
            (w & ~(REVOKED_AT_MASK | NONCE_MASK)) | (revokedAt_ << REVOKED_AT_SHIFT) | _nextNonce(r)
        );
    }

    /// @notice Whether the record was never written.
    function isEmpty(ConsentRecord r) internal pure returns (bool) {
        return ConsentRecord.unwrap(r) == 0;
    }

    /// @notice Whether the record can be revoked: it was granted and its current grant is not revoked (an
    /// expired grant can be).
    function isRevocable(ConsentRecord r) internal pure returns (bool) {
        return grantedAt(r) != 0 && revokedAt(r) == 0;
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

    /// @notice Whether the record's current grant covers time `at`, notice versions aside.
    /// @dev `grantedAt != 0 && grantedAt <= at < expiresAt && (revokedAt == 0 || at < revokedAt)`: the time half
    /// of `countsAt`, on its own so that a caller can decide without reading the current notice versions (two
    /// cold SLOADs) when the times alone already say no. It is `countsAt` asked about the present (`now_ = at`)
    /// with the record's own versions as the current ones, so the time rule is written once (`_coversAt`).
    /// @param r The record.
    /// @param at The time (unix seconds).
    function coversAt(ConsentRecord r, uint256 at) internal pure returns (bool) {
        return countsAt(r, at, at, ConsentRecord.unwrap(r) & VERSIONS_MASK);
    }

    /// @notice Whether the record was granted under the given notice versions.
    /// @param r The record.
    /// @param currentVersions The versions packed as the record packs them: `platform << 120 | partner << 144`.
    function hasVersions(ConsentRecord r, uint256 currentVersions) internal pure returns (bool) {
        return ConsentRecord.unwrap(r) & VERSIONS_MASK == currentVersions;
    }

    /// @notice The consent check at time t (see `IConsentRegistry`): whether the record counts at time `at`.
    /// @dev `at <= now && coversAt(at) && hasVersions(currentVersions)`: a time in the future never counts,
    /// and a grant under notice versions that are no longer the current ones never counts. Evaluated without
    /// a branch (the settlement ledger's batch check runs it once per conversion).
    /// @param r The record.
    /// @param at The time asked about (unix seconds).
    /// @param now_ The current time (`block.timestamp`).
    /// @param currentVersions The current versions packed as the record packs them:
    /// `platform << 120 | partner << 144`.
    function countsAt(ConsentRecord r, uint256 at, uint256 now_, uint256 currentVersions)
        internal
        pure
        returns (bool)
    {
        return _coversAt(ConsentRecord.unwrap(r), at) & SafeCast.toUint(at <= now_)
            & SafeCast.toUint(hasVersions(r, currentVersions)) != 0;
    }

    /// @dev The time rule of `coversAt`, as 0 or 1, without a branch.
    function _coversAt(uint256 w, uint256 at) private pure returns (uint256) {
        uint256 g = w & MASK40;
        uint256 revokedAt_ = (w >> REVOKED_AT_SHIFT) & MASK40;
        return SafeCast.toUint(g != 0) & SafeCast.toUint(g <= at) & SafeCast.toUint(at < (w >> EXPIRES_AT_SHIFT) & MASK40)
            & (SafeCast.toUint(revokedAt_ == 0) | SafeCast.toUint(at < revokedAt_));
    }

    /// @dev The nonce field of the record's next write: its nonce plus one, mod 2^32.
    function _nextNonce(ConsentRecord r) private pure returns (uint256) {
        unchecked {
            return (ConsentRecord.unwrap(r) + NONCE_ONE) & NONCE_MASK;
        }
    }
}
