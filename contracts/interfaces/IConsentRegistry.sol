// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentTerms} from "../types/ConsentTerms.sol";

/// @title IConsentRegistry
/// @notice Records users' consents per (subject, partner, purpose) and answers "did this subject consent
/// to this partner for this purpose at time t?". Subjects are pseudonyms (keyed hashes of a platform user
/// id) or wallet addresses left-padded to 32 bytes; no personal data is ever stored.
/// @dev The consent check at time `t`: a record counts iff
/// `grantedAt != 0 && grantedAt <= t && t < expiresAt && (revokedAt == 0 || t < revokedAt) && t <= now`
/// and the record's platform and partner notice versions equal the current ones (the partner's current
/// version must be at least 1). Bumping a notice version therefore invalidates every older consent, for
/// every `t` (fail closed). Only the latest grant of a record is kept: after a revocation, a new grant
/// starts a new interval and the earlier one no longer counts.
/// A grant while the record counts now is a renewal: it keeps `grantedAt` and replaces the expiry and
/// versions; any other grant starts a new interval (`grantedAt = now`, `revokedAt = 0`). Every write,
/// on either path, increments the record's nonce.
/// Two write paths, split by subject: the registrar path (`grant`, `revoke`, `grantBatch`, `revokeBatch`)
/// writes pseudonyms only and refuses a wallet subject (`ConsentRegistrySubjectIsAWallet`); a wallet subject
/// is written only by its own wallet's EIP-712 signature (`grantBySig`, `revokeBySig` and their batches), so
/// the platform can neither grant nor renew consent on a wallet's behalf, nor override its revocation.
/// Every batch is all or nothing: one failing item reverts the whole batch. For the signed batches this
/// means that anyone who relays one of the signed items first (a front-run) makes the batch revert on that
/// item's nonce; the relayer resubmits the batch without it.
interface IConsentRegistry {
    /// @notice A grant written by the registrar.
    /// @param subject The subject pseudonym (never a wallet: upper 96 bits non-zero).
    /// @param terms Partner, purpose, expiry and the notice versions shown, packed.
    /// @param receiptHash Hash of the off-chain consent receipt (must be non-zero).
    struct ConsentGrant {
        bytes32 subject;
        ConsentTerms terms;
        bytes32 receiptHash;
    }

    /// @notice A revocation written by the registrar.
    /// @param subject The subject pseudonym.
    /// @param partner The partner the consent was given to.
    /// @param purpose The purpose code.
    struct ConsentRevocation {
        bytes32 subject;
        address partner;
        uint8 purpose;
    }

    /// @notice A grant signed by the subject's wallet (EIP-712 `ConsentGrant`), relayed by anyone.
    /// @param subject The signing wallet, left-padded to 32 bytes (upper 96 bits zero).
    /// @param terms The packed terms; the wallet signs them unpacked, as the EIP-712 type
    /// `ConsentGrant(bytes32 subject,address partner,uint8 purpose,uint40 expiresAt,uint24 platformNoticeVersion,
    /// uint24 partnerNoticeVersion,bytes32 receiptHash,uint32 nonce,uint40 deadline)`.
    /// @param receiptHash Hash of the off-chain consent receipt.
    /// @param nonce Must equal `nonceOf(subject, partner, purpose)`.
    /// @param deadline Last second (inclusive) at which the signature may be used.
    /// @param r The `r` half of the EIP-2098 compact signature.
    /// @param vs The `vs` half of the EIP-2098 compact signature (`s` with the parity of `v` in the top bit).
    struct SignedConsentGrant {
        bytes32 subject;
        ConsentTerms terms;
        bytes32 receiptHash;
        uint32 nonce;
        uint40 deadline;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice A revocation signed by the subject's wallet, relayed by anyone. EIP-712 type:
    /// `ConsentRevocation(bytes32 subject,address partner,uint8 purpose,uint32 nonce,uint40 deadline)`.
    /// @param subject The signing wallet, left-padded to 32 bytes.
    /// @param partner The partner the consent was given to.
    /// @param purpose The purpose code.
    /// @param nonce Must equal `nonceOf(subject, partner, purpose)`.
    /// @param deadline Last second (inclusive) at which the signature may be used.
    /// @param r The `r` half of the EIP-2098 compact signature.
    /// @param vs The `vs` half of the EIP-2098 compact signature.
    struct SignedConsentRevocation {
        bytes32 subject;
        address partner;
        uint8 purpose;
        uint32 nonce;
        uint40 deadline;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice The stored state of one consent record, unpacked.
    /// @param grantedAt Start of the current grant (0 if never granted).
    /// @param expiresAt End of the current grant (exclusive).
    /// @param revokedAt When the current grant was revoked (0 if it was not).
    /// @param platformNoticeVersion The platform notice version of the current grant.
    /// @param partnerNoticeVersion The partner notice version of the current grant.
    /// @param nonce The number of writes so far: the nonce the next signed write must carry.
    struct ConsentState {
        uint40 grantedAt;
        uint40 expiresAt;
        uint40 revokedAt;
        uint24 platformNoticeVersion;
        uint24 partnerNoticeVersion;
        uint32 nonce;
    }

    /// @notice A consent was granted or renewed.
    /// @param subject The subject pseudonym or wallet.
    /// @param terms Partner, purpose, expiry and notice versions, packed (see `ConsentTerms`).
    /// @param receiptHash Hash of the off-chain consent receipt.
    event ConsentGranted(bytes32 indexed subject, ConsentTerms terms, bytes32 receiptHash);

    /// @notice A consent was revoked.
    /// @param subject The subject pseudonym or wallet.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    event ConsentRevoked(bytes32 indexed subject, address partner, uint8 purpose);

    /// @notice The platform notice version changed; older consents no longer count.
    /// @param previous The version before.
    /// @param current The version now.
    event PlatformNoticeVersionChanged(uint24 previous, uint24 current);

    /// @notice A partner's notice version changed; that partner's older consents no longer count.
    /// @param partner The partner.
    /// @param previous The version before (0 if the partner had none).
    /// @param current The version now.
    event PartnerNoticeVersionChanged(address indexed partner, uint24 previous, uint24 current);

    /// @notice The caller of a registrar-path write is not the registrar.
    /// @param caller The caller.
    error ConsentRegistryUnauthorizedRegistrar(address caller);

    /// @notice A revocation of a record that was never granted or is already revoked.
    /// @param subject The subject.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    error ConsentRegistryNotGranted(bytes32 subject, address partner, uint8 purpose);

    /// @notice A signed write whose subject is not a wallet address (its upper 96 bits are not zero).
    /// @param subject The subject.
    error ConsentRegistrySubjectNotAWallet(bytes32 subject);

    /// @notice A registrar-path write whose subject is a wallet (its upper 96 bits are zero): only the wallet
    /// itself may write its consents, by signature.
    /// @param subject The subject.
    error ConsentRegistrySubjectIsAWallet(bytes32 subject);

    /// @notice The signature was not made by the subject's wallet.
    /// @param signer The address recovered from the signature (zero if none could be recovered).
    /// @param subject The subject the write is for.
    error ConsentRegistryInvalidSignature(address signer, bytes32 subject);

    /// @notice The signature's deadline has passed.
    /// @param deadline The deadline signed.
    /// @param timestamp The current block time.
    error ConsentRegistrySignatureExpired(uint40 deadline, uint256 timestamp);

    /// @notice The signed nonce is not the record's current nonce (a replayed or out-of-order signature).
    /// @param subject The subject.
    /// @param expected The record's current nonce.
    /// @param given The nonce signed.
    error ConsentRegistryInvalidNonce(bytes32 subject, uint32 expected, uint32 given);

    /// @notice The partner is the zero address.
    /// @param partner The partner given.
    error ConsentRegistryInvalidPartner(address partner);

    /// @notice The purpose code is not one of `Purposes`.
    /// @param purpose The purpose given.
    error ConsentRegistryUnknownPurpose(uint8 purpose);

    /// @notice The expiry is not in `(now, now + maxConsentDuration]`.
    /// @param expiresAt The expiry given.
    /// @param maxExpiresAt The latest expiry allowed now.
    error ConsentRegistryInvalidExpiry(uint40 expiresAt, uint256 maxExpiresAt);

    /// @notice A notice version in the terms is zero.
    /// @param platformNoticeVersion The platform notice version given.
    /// @param partnerNoticeVersion The partner notice version given.
    error ConsentRegistryInvalidNoticeVersion(uint24 platformNoticeVersion, uint24 partnerNoticeVersion);

    /// @notice The consent receipt hash is zero.
    /// @param subject The subject.
    error ConsentRegistryMissingReceipt(bytes32 subject);

    /// @notice A grant failed validation for a reason none of the named errors reports. Not expected to
    /// happen: it is the last resort of the function that names a failed grant check, so that a grant
    /// flagged invalid is never stored even if a check without a named error were added.
    /// @param subject The subject.
    /// @param terms The terms given.
    /// @param receiptHash The receipt hash given.
    error ConsentRegistryInvalidGrant(bytes32 subject, ConsentTerms terms, bytes32 receiptHash);

    /// @notice A new notice version must be greater than the current one.
    /// @param current The current version.
    /// @param given The version given.
    error ConsentRegistryNoticeVersionNotIncreasing(uint24 current, uint24 given);

    /// @notice `areConsentedAt` was given arrays of different lengths.
    /// @param subjects The number of subjects.
    /// @param times The number of times.
    error ConsentRegistryLengthMismatch(uint256 subjects, uint256 times);

    /// @notice Registrar path: records a grant (or a renewal) for a subject without a wallet.
    /// @dev Only the registrar. Reverts `ConsentRegistrySubjectIsAWallet` on a wallet subject (upper 96 bits
    /// zero: use `grantBySig`), then on a zero partner, an unknown purpose, an expiry outside
    /// `(now, now + maxConsentDuration]`, a zero notice version or a zero receipt hash. Emits `ConsentGranted`.
    /// @param subject The subject pseudonym.
    /// @param terms The packed terms.
    /// @param receiptHash Hash of the off-chain consent receipt.
    function grant(bytes32 subject, ConsentTerms terms, bytes32 receiptHash) external;

    /// @notice Registrar path: revokes a consent. An expired but unrevoked record can be revoked.
    /// @dev Only the registrar. Reverts `ConsentRegistrySubjectIsAWallet` on a wallet subject (use
    /// `revokeBySig`), and `ConsentRegistryNotGranted` if never granted or already revoked. Emits
    /// `ConsentRevoked`.
    /// @param subject The subject pseudonym.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    function revoke(bytes32 subject, address partner, uint8 purpose) external;

    /// @notice Registrar path: `grant` for each element, all or nothing (wallet subjects refused).
    /// @param grants The grants.
    function grantBatch(ConsentGrant[] calldata grants) external;

    /// @notice Registrar path: `revoke` for each element, all or nothing (wallet subjects refused).
    /// @param revocations The revocations.
    function revokeBatch(ConsentRevocation[] calldata revocations) external;

    /// @notice Wallet path: records a grant signed by the subject's wallet; anyone may relay it.
    /// @dev Checks, in order: the deadline, that the subject is a wallet, the terms (as `grant`), the nonce,
    /// then the signature. Emits `ConsentGranted`.
    /// @param g The signed grant.
    function grantBySig(SignedConsentGrant calldata g) external;

    /// @notice Wallet path: records a revocation signed by the subject's wallet; anyone may relay it.
    /// @dev Checks, in order: the deadline, that the subject is a wallet, the nonce, the signature, then
    /// that the record is granted and not revoked. Emits `ConsentRevoked`.
    /// @param r The signed revocation.
    function revokeBySig(SignedConsentRevocation calldata r) external;

    /// @notice Wallet path: `grantBySig` for each element, all or nothing.
    /// @dev One failing item reverts the whole batch. Signed items can be relayed by anyone, so an item
    /// relayed first on its own (a front-run) makes this batch revert with `ConsentRegistryInvalidNonce` for
    /// it: the relayer resubmits the batch without that item (it is already recorded).
    /// @param grants The signed grants.
    function grantBySigBatch(SignedConsentGrant[] calldata grants) external;

    /// @notice Wallet path: `revokeBySig` for each element, all or nothing.
    /// @dev As `grantBySigBatch`: an item relayed first on its own makes the batch revert
    /// (`ConsentRegistryInvalidNonce`); resubmit the batch without it.
    /// @param revocations The signed revocations.
    function revokeBySigBatch(SignedConsentRevocation[] calldata revocations) external;

    /// @notice Bumps the platform notice version: every consent given under an older one stops counting.
    /// @dev Only `NOTICE_ADMIN_ROLE`. Strictly increasing. Emits `PlatformNoticeVersionChanged`.
    /// @param version The new version.
    function setPlatformNoticeVersion(uint24 version) external;

    /// @notice Sets or bumps a partner's notice version: the partner's consents under an older one stop
    /// counting. A partner has no consents that count until its version is at least 1.
    /// @dev Only `NOTICE_ADMIN_ROLE`. Strictly increasing. Emits `PartnerNoticeVersionChanged`.
    /// @param partner The partner.
    /// @param version The new version.
    function setPartnerNoticeVersion(address partner, uint24 version) external;

    /// @notice The stored record of a consent.
    /// @param subject The subject.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    /// @return state The record, unpacked (all zero if never written).
    function consentOf(bytes32 subject, address partner, uint8 purpose)
        external
        view
        returns (ConsentState memory state);

    /// @notice Whether the consent counts now.
    /// @param subject The subject.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    /// @return True iff the record counts at `block.timestamp`.
    function isConsented(bytes32 subject, address partner, uint8 purpose) external view returns (bool);

    /// @notice Whether the consent counted at time `at` (see the contract-level notes); false for a future `at`.
    /// @param subject The subject.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    /// @param at The time (unix seconds).
    /// @return True iff the record counts at `at`.
    function isConsentedAt(bytes32 subject, address partner, uint8 purpose, uint40 at)
        external
        view
        returns (bool);

    /// @notice Every purpose that counts now for one subject and partner, in one call.
    /// @param subject The subject.
    /// @param partner The partner.
    /// @return mask Bit `p` is set iff purpose `p` counts now.
    function consentMask(bytes32 subject, address partner) external view returns (uint8 mask);

    /// @notice Batch check, now: one partner and purpose, many subjects.
    /// @param subjects The subjects.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    /// @return consented `consented[i]` iff the consent of `subjects[i]` counts now.
    function areConsented(bytes32[] calldata subjects, address partner, uint8 purpose)
        external
        view
        returns (bool[] memory consented);

    /// @notice Batch check at given times: one partner and purpose, many (subject, time) pairs.
    /// @param subjects The subjects.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    /// @param times The times, one per subject.
    /// @return consented `consented[i]` iff the consent of `subjects[i]` counts at `times[i]`.
    function areConsentedAt(
        bytes32[] calldata subjects,
        address partner,
        uint8 purpose,
        uint40[] calldata times
    ) external view returns (bool[] memory consented);

    /// @notice The nonce the next signed write for this record must carry.
    /// @param subject The subject.
    /// @param partner The partner.
    /// @param purpose The purpose code.
    /// @return The record's write count.
    function nonceOf(bytes32 subject, address partner, uint8 purpose) external view returns (uint32);

    /// @notice The current platform notice version (starts at 1).
    function platformNoticeVersion() external view returns (uint24);

    /// @notice A partner's current notice version (0 until set).
    /// @param partner The partner.
    function partnerNoticeVersion(address partner) external view returns (uint24);

    /// @notice The only account allowed to write on the registrar path.
    function registrar() external view returns (address);

    /// @notice The longest a consent may last from the moment it is granted, in seconds.
    function maxConsentDuration() external view returns (uint40);

    /// @notice The role allowed to bump notice versions.
    function NOTICE_ADMIN_ROLE() external view returns (bytes32);

    /// @notice The EIP-712 domain separator (name "KnowLedger ConsentRegistry", version "1").
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32);
}
