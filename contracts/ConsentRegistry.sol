// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {StorageSlot} from "@openzeppelin/contracts/utils/StorageSlot.sol";

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {ConsentTerms} from "./types/ConsentTerms.sol";
import {ConsentRecord, ConsentRecordLib} from "./types/ConsentRecord.sol";
import {Purposes} from "./types/Purposes.sol";
import {EfficientHash} from "./utils/EfficientHash.sol";

/// @title ConsentRegistry
/// @notice KnowLedger's on-chain consent registry: one storage slot per (subject, partner, purpose).
/// @dev Gas design: a record is one packed slot (`ConsentRecord`), the terms travel as one packed word
/// (`ConsentTerms`) and are emitted as is, and the registrar is an `immutable` address rather than an
/// AccessControl role: a role check is a cold SLOAD (2,100 gas) on every write, which alone would break
/// the grant and revoke gas targets. The trade-off is that the registrar cannot be rotated in place: a new
/// registrar means a new deployment. Roles are used only for the rare notice-version bumps.
contract ConsentRegistry is IConsentRegistry, AccessControl, EIP712 {
    /// @inheritdoc IConsentRegistry
    bytes32 public constant NOTICE_ADMIN_ROLE = keccak256("NOTICE_ADMIN_ROLE");

    /// @dev EIP-712 type hash of a signed grant (the wallet signs the terms unpacked, readable).
    bytes32 private constant CONSENT_GRANT_TYPEHASH = keccak256(
        "ConsentGrant(bytes32 subject,address partner,uint8 purpose,uint40 expiresAt,uint24 platformNoticeVersion,"
        "uint24 partnerNoticeVersion,bytes32 receiptHash,uint32 nonce,uint40 deadline)"
    );

    /// @dev EIP-712 type hash of a signed revocation.
    bytes32 private constant CONSENT_REVOCATION_TYPEHASH =
        keccak256("ConsentRevocation(bytes32 subject,address partner,uint8 purpose,uint32 nonce,uint40 deadline)");

    address private immutable _registrar;
    /// @dev A `uint40` (the constructor's argument), kept in a full word so that reading it needs no mask.
    uint256 private immutable _maxConsentDuration;

    // The records themselves live at raw slots: see `_recordSlot`.
    /// @dev The current platform notice version (starts at 1).
    uint24 private _platformNoticeVersion;
    /// @dev The current notice version of each partner (0 until set).
    mapping(address partner => uint24) private _partnerNoticeVersions;

    /// @param admin Gets DEFAULT_ADMIN_ROLE and NOTICE_ADMIN_ROLE.
    /// @param registrar_ The only account allowed to write on the registrar path.
    /// @param maxConsentDuration_ The longest a consent may last, in seconds (390 days by default).
    constructor(address admin, address registrar_, uint40 maxConsentDuration_)
        EIP712("KnowLedger ConsentRegistry", "1")
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(NOTICE_ADMIN_ROLE, admin);
        _registrar = registrar_;
        _maxConsentDuration = maxConsentDuration_;
        _platformNoticeVersion = 1;
        emit PlatformNoticeVersionChanged(0, 1);
    }

    modifier onlyRegistrar() {
        if (msg.sender != _registrar) revert ConsentRegistryUnauthorizedRegistrar(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ registrar path

    /// @inheritdoc IConsentRegistry
    function grant(bytes32 subject, ConsentTerms terms, bytes32 receiptHash) external onlyRegistrar {
        _grant(subject, false, terms, receiptHash);
    }

    /// @inheritdoc IConsentRegistry
    function revoke(bytes32 subject, address partner, uint8 purpose) external onlyRegistrar {
        _revokeAsRegistrar(subject, partner, purpose);
    }

    /// @inheritdoc IConsentRegistry
    function grantBatch(ConsentGrant[] calldata grants) external onlyRegistrar {
        uint256 n = grants.length;
        for (uint256 i; i < n; ++i) {
            ConsentGrant calldata g = grants[i];
            _grant(g.subject, false, g.terms, g.receiptHash);
        }
    }

    /// @inheritdoc IConsentRegistry
    function revokeBatch(ConsentRevocation[] calldata revocations) external onlyRegistrar {
        uint256 n = revocations.length;
        for (uint256 i; i < n; ++i) {
            ConsentRevocation calldata r = revocations[i];
            _revokeAsRegistrar(r.subject, r.partner, r.purpose);
        }
    }

    // ------------------------------------------------------------------ wallet path

    /// @inheritdoc IConsentRegistry
    function grantBySig(SignedConsentGrant calldata g) external {
        _grantBySig(g);
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySig(SignedConsentRevocation calldata r) external {
        _revokeBySig(r);
    }

    /// @inheritdoc IConsentRegistry
    function grantBySigBatch(SignedConsentGrant[] calldata grants) external {
        uint256 n = grants.length;
        for (uint256 i; i < n; ++i) {
            _grantBySig(grants[i]);
        }
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySigBatch(SignedConsentRevocation[] calldata revocations) external {
        uint256 n = revocations.length;
        for (uint256 i; i < n; ++i) {
            _revokeBySig(revocations[i]);
        }
    }

    // ------------------------------------------------------------------ notice versions

    /// @inheritdoc IConsentRegistry
    function setPlatformNoticeVersion(uint24 version) external onlyRole(NOTICE_ADMIN_ROLE) {
        uint24 current = _platformNoticeVersion;
        if (version <= current) revert ConsentRegistryNoticeVersionNotIncreasing(current, version);
        _platformNoticeVersion = version;
        emit PlatformNoticeVersionChanged(current, version);
    }

    /// @inheritdoc IConsentRegistry
    function setPartnerNoticeVersion(address partner, uint24 version) external onlyRole(NOTICE_ADMIN_ROLE) {
        if (partner == address(0)) revert ConsentRegistryInvalidPartner(partner);
        uint24 current = _partnerNoticeVersions[partner];
        if (version <= current) revert ConsentRegistryNoticeVersionNotIncreasing(current, version);
        _partnerNoticeVersions[partner] = version;
        emit PartnerNoticeVersionChanged(partner, current, version);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IConsentRegistry
    function consentOf(bytes32 subject, address partner, uint8 purpose)
        external
        view
        returns (ConsentState memory state)
    {
        ConsentRecord r = _recordOf(subject, partner, purpose);
        state = ConsentState({
            grantedAt: r.grantedAt(),
            expiresAt: r.expiresAt(),
            revokedAt: r.revokedAt(),
            platformNoticeVersion: r.platformNoticeVersion(),
            partnerNoticeVersion: r.partnerNoticeVersion(),
            nonce: r.nonce()
        });
    }

    /// @inheritdoc IConsentRegistry
    function isConsented(bytes32 subject, address partner, uint8 purpose) external view returns (bool) {
        return _recordOf(subject, partner, purpose).countsAt(block.timestamp, block.timestamp, _currentVersions(partner));
    }

    /// @inheritdoc IConsentRegistry
    function isConsentedAt(bytes32 subject, address partner, uint8 purpose, uint40 at) external view returns (bool) {
        return _recordOf(subject, partner, purpose).countsAt(at, block.timestamp, _currentVersions(partner));
    }

    /// @inheritdoc IConsentRegistry
    function consentMask(bytes32 subject, address partner) external view returns (uint8 mask) {
        uint256 versions = _currentVersions(partner);
        for (uint8 p; p < Purposes.COUNT; ++p) {
            if (_recordOf(subject, partner, p).countsAt(block.timestamp, block.timestamp, versions)) {
                mask |= uint8(1 << p);
            }
        }
    }

    /// @inheritdoc IConsentRegistry
    function areConsented(bytes32[] calldata subjects, address partner, uint8 purpose)
        external
        view
        returns (bool[] memory consented)
    {
        uint256 versions = _currentVersions(partner);
        uint256 n = subjects.length;
        consented = new bool[](n);
        for (uint256 i; i < n; ++i) {
            consented[i] = _recordOf(subjects[i], partner, purpose).countsAt(block.timestamp, block.timestamp, versions);
        }
    }

    /// @inheritdoc IConsentRegistry
    /// @dev The settlement ledger's consent check: one call per batch.
    function areConsentedAt(
        bytes32[] calldata subjects,
        address partner,
        uint8 purpose,
        uint40[] calldata times
    ) external view returns (bool[] memory consented) {
        uint256 n = subjects.length;
        if (times.length != n) revert ConsentRegistryLengthMismatch(n, times.length);
        uint256 versions = _currentVersions(partner);
        consented = new bool[](n);
        for (uint256 i; i < n; ++i) {
            consented[i] = _recordOf(subjects[i], partner, purpose).countsAt(times[i], block.timestamp, versions);
        }
    }

    /// @inheritdoc IConsentRegistry
    function nonceOf(bytes32 subject, address partner, uint8 purpose) external view returns (uint32) {
        return _recordOf(subject, partner, purpose).nonce();
    }

    /// @inheritdoc IConsentRegistry
    function platformNoticeVersion() external view returns (uint24) {
        return _platformNoticeVersion;
    }

    /// @inheritdoc IConsentRegistry
    function partnerNoticeVersion(address partner) external view returns (uint24) {
        return _partnerNoticeVersions[partner];
    }

    /// @inheritdoc IConsentRegistry
    function registrar() external view returns (address) {
        return _registrar;
    }

    /// @inheritdoc IConsentRegistry
    function maxConsentDuration() external view returns (uint40) {
        return uint40(_maxConsentDuration);
    }

    /// @inheritdoc IConsentRegistry
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals

    /// @dev The storage slot of the record of (subject, partner, purpose):
    /// `keccak256(abi.encode(subject, partner, purpose))`, used directly as the slot (like an ERC-7201
    /// namespace) so that a lookup costs one hash, and anyone can read a record with `eth_getStorageAt`.
    /// Hashed by `EfficientHash`, which does not allocate memory (see there why that matters here).
    function _recordSlot(bytes32 subject, address partner, uint8 purpose)
        private
        pure
        returns (StorageSlot.Uint256Slot storage)
    {
        return StorageSlot.getUint256Slot(
            EfficientHash.efficientKeccak256(subject, bytes32(uint256(uint160(partner))), bytes32(uint256(purpose)))
        );
    }

    /// @dev The record of (subject, partner, purpose).
    function _recordOf(bytes32 subject, address partner, uint8 purpose) private view returns (ConsentRecord) {
        return ConsentRecord.wrap(_recordSlot(subject, partner, purpose).value);
    }

    /// @dev The current versions of `partner`, placed where a record keeps its versions.
    function _currentVersions(address partner) private view returns (uint256) {
        return (uint256(_platformNoticeVersion) << ConsentRecordLib.PLATFORM_NOTICE_SHIFT)
            | (uint256(_partnerNoticeVersions[partner]) << ConsentRecordLib.PARTNER_NOTICE_SHIFT);
    }

    /// @dev Whether `subject` is a wallet (an address left-padded to 32 bytes: upper 96 bits zero) rather
    /// than a pseudonym.
    function _isWallet(bytes32 subject) private pure returns (bool) {
        return uint256(subject) >> 160 == 0;
    }

    /// @dev The latest expiry a grant may carry now.
    function _maxExpiresAt() private view returns (uint256) {
        unchecked {
            return block.timestamp + _maxConsentDuration;
        }
    }

    /// @dev The grant rule, the same on both paths, as its six checks. Each result is true iff its check
    /// fails: the subject is not of the path's kind (a wallet on the signed path, a pseudonym on the registrar
    /// path), the partner is zero, the purpose is unknown, the expiry is not in
    /// `(now, now + maxConsentDuration]`, a notice version is zero, the receipt hash is zero.
    function _grantChecks(bytes32 subject, bool signed, ConsentTerms terms, bytes32 receiptHash)
        private
        view
        returns (
            bool wrongSubject,
            bool noPartner,
            bool unknownPurpose,
            bool badExpiry,
            bool noNoticeVersion,
            bool noReceipt
        )
    {
        uint256 expiresAt = terms.expiresAt();
        wrongSubject = _isWallet(subject) != signed;
        noPartner = terms.partner() == address(0);
        unknownPurpose = !Purposes.isValid(terms.purpose());
        badExpiry = SafeCast.toUint(expiresAt <= block.timestamp) | SafeCast.toUint(expiresAt > _maxExpiresAt()) != 0;
        noNoticeVersion =
            SafeCast.toUint(terms.platformNoticeVersion() == 0) | SafeCast.toUint(terms.partnerNoticeVersion() == 0) != 0;
        noReceipt = receiptHash == bytes32(0);
    }

    /// @dev Reverts unless the grant passes every check of `_grantChecks`. The checks are or-ed without a
    /// branch, so that a valid grant costs a single comparison; `_revertInvalidGrant` names the failure.
    function _requireValidGrant(bytes32 subject, bool signed, ConsentTerms terms, bytes32 receiptHash)
        private
        view
    {
        (bool a, bool b, bool c, bool d, bool e, bool f) = _grantChecks(subject, signed, terms, receiptHash);
        if (
            SafeCast.toUint(a) | SafeCast.toUint(b) | SafeCast.toUint(c) | SafeCast.toUint(d) | SafeCast.toUint(e)
                | SafeCast.toUint(f) != 0
        ) _revertInvalidGrant(subject, signed, terms, receiptHash);
    }

    /// @dev Reverts with the named error of the first check of `_grantChecks` that the grant fails. The last
    /// revert, reached only if none fails, keeps this function from ever returning: a grant flagged invalid
    /// is never stored.
    function _revertInvalidGrant(bytes32 subject, bool signed, ConsentTerms terms, bytes32 receiptHash)
        private
        view
    {
        (
            bool wrongSubject,
            bool noPartner,
            bool unknownPurpose,
            bool badExpiry,
            bool noNoticeVersion,
            bool noReceipt
        ) = _grantChecks(subject, signed, terms, receiptHash);
        if (wrongSubject) {
            if (signed) revert ConsentRegistrySubjectNotAWallet(subject);
            revert ConsentRegistrySubjectIsAWallet(subject);
        }
        if (noPartner) revert ConsentRegistryInvalidPartner(address(0));
        if (unknownPurpose) revert ConsentRegistryUnknownPurpose(terms.purpose());
        if (badExpiry) revert ConsentRegistryInvalidExpiry(terms.expiresAt(), _maxExpiresAt());
        if (noNoticeVersion) {
            revert ConsentRegistryInvalidNoticeVersion(terms.platformNoticeVersion(), terms.partnerNoticeVersion());
        }
        if (noReceipt) revert ConsentRegistryMissingReceipt(subject);
        revert ConsentRegistryInvalidGrant(subject, terms, receiptHash);
    }

    /// @dev A grant on either path (`signed`: the wallet path): checks the grant rule, writes the record and
    /// emits `ConsentGranted`. Returns the record as it was before, whose nonce the wallet path checks
    /// afterwards, with the signature: a failing check reverts the write with it.
    function _grant(bytes32 subject, bool signed, ConsentTerms terms, bytes32 receiptHash)
        private
        returns (ConsentRecord previous)
    {
        _requireValidGrant(subject, signed, terms, receiptHash);
        StorageSlot.Uint256Slot storage slot = _recordSlot(subject, terms.partner(), terms.purpose());
        previous = ConsentRecord.wrap(slot.value);
        // A record never written starts a new interval: no need to ask `_grantStart`.
        uint256 start = previous.isEmpty() ? block.timestamp : _grantStart(previous, terms);
        slot.value = ConsentRecord.unwrap(previous.granted(terms, start));
        emit ConsentGranted(subject, terms, receiptHash);
    }

    /// @dev The `grantedAt` of record `r` after a valid grant of `terms` now: kept for a renewal (the record
    /// counts now: `r.countsAt(now, now, current versions)`), now for a new interval. The partner's notice
    /// versions (two cold SLOADs) are read only once the record's times cover now.
    function _grantStart(ConsentRecord r, ConsentTerms terms) private view returns (uint256) {
        if (r.coversAt(block.timestamp) && r.hasVersions(_currentVersions(terms.partner()))) return r.grantedAt();
        return block.timestamp;
    }

    /// @dev A revocation on the registrar path.
    function _revokeAsRegistrar(bytes32 subject, address partner, uint8 purpose) private {
        if (_isWallet(subject)) revert ConsentRegistrySubjectIsAWallet(subject);
        StorageSlot.Uint256Slot storage slot = _recordSlot(subject, partner, purpose);
        _revoke(slot, ConsentRecord.wrap(slot.value), subject, partner, purpose);
    }

    /// @dev Marks the record revoked now and increments its nonce; reverts if it was never granted or is
    /// already revoked.
    function _revoke(
        StorageSlot.Uint256Slot storage slot,
        ConsentRecord r,
        bytes32 subject,
        address partner,
        uint8 purpose
    ) private {
        if (!r.isRevocable()) revert ConsentRegistryNotGranted(subject, partner, purpose);
        slot.value = ConsentRecord.unwrap(r.revoked(block.timestamp));
        emit ConsentRevoked(subject, partner, purpose);
    }

    /// @dev Reverts once a signature's deadline has passed.
    function _checkDeadline(uint40 deadline) private view {
        if (block.timestamp > deadline) revert ConsentRegistrySignatureExpired(deadline, block.timestamp);
    }

    /// @dev Reverts unless the nonce signed is the record's.
    function _checkNonce(ConsentRecord r, bytes32 subject, uint32 nonce) private pure {
        uint32 expected = r.nonce();
        if (expected != nonce) revert ConsentRegistryInvalidNonce(subject, expected, nonce);
    }

    /// @dev Reverts unless the compact signature (r, vs) over `structHash` was made by the subject's wallet.
    function _checkSignature(bytes32 structHash, bytes32 r, bytes32 vs, bytes32 subject) private view {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), r, vs);
        if (err != ECDSA.RecoverError.NoError || signer != address(uint160(uint256(subject)))) {
            revert ConsentRegistryInvalidSignature(signer, subject);
        }
    }

    function _grantBySig(SignedConsentGrant calldata g) private {
        bytes32 subject = g.subject;
        uint40 deadline = g.deadline;
        _checkDeadline(deadline);
        ConsentTerms terms = g.terms;
        bytes32 receiptHash = g.receiptHash;
        ConsentRecord previous = _grant(subject, true, terms, receiptHash);
        uint32 nonce = g.nonce;
        _checkNonce(previous, subject, nonce);
        bytes32 structHash = keccak256(
            abi.encode(
                CONSENT_GRANT_TYPEHASH,
                subject,
                terms.partner(),
                terms.purpose(),
                terms.expiresAt(),
                terms.platformNoticeVersion(),
                terms.partnerNoticeVersion(),
                receiptHash,
                nonce,
                deadline
            )
        );
        _checkSignature(structHash, g.r, g.vs, subject);
    }

    function _revokeBySig(SignedConsentRevocation calldata s) private {
        bytes32 subject = s.subject;
        uint40 deadline = s.deadline;
        _checkDeadline(deadline);
        if (!_isWallet(subject)) revert ConsentRegistrySubjectNotAWallet(subject);
        address partner = s.partner;
        uint8 purpose = s.purpose;
        StorageSlot.Uint256Slot storage slot = _recordSlot(subject, partner, purpose);
        ConsentRecord r = ConsentRecord.wrap(slot.value);
        uint32 nonce = s.nonce;
        _checkNonce(r, subject, nonce);
        bytes32 structHash = keccak256(abi.encode(CONSENT_REVOCATION_TYPEHASH, subject, partner, purpose, nonce, deadline));
        _checkSignature(structHash, s.r, s.vs, subject);
        _revoke(slot, r, subject, partner, purpose);
    }
}
