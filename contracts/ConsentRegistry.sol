// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {ConsentTerms, ConsentTermsLib} from "./types/ConsentTerms.sol";
import {ConsentRecord, ConsentRecordLib} from "./types/ConsentRecord.sol";
import {Purposes} from "./types/Purposes.sol";

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

    uint256 private constant MASK40 = (1 << 40) - 1;
    uint256 private constant MASK32 = (1 << 32) - 1;
    uint256 private constant NONCE_SHIFT = ConsentRecordLib.NONCE_SHIFT;

    address private immutable _registrar;
    uint40 private immutable _maxConsentDuration;

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
    /// @dev The hottest write: validation is one branch on the happy path, the record slot is hashed once,
    /// and the record is read and written once.
    function grant(bytes32 subject, ConsentTerms terms, bytes32 receiptHash) external onlyRegistrar {
        uint256 t = ConsentTerms.unwrap(terms);
        uint256 maxExpiresAt;
        unchecked {
            maxExpiresAt = block.timestamp + _maxConsentDuration;
        }
        bool bad;
        bytes32 slot;
        uint256 w;
        // `_termsInvalid`, the wallet-subject check, `_recordSlot` and the load, inlined by hand: this is the
        // benchmarked path, and a shared internal function called from three places is not inlined by the
        // optimizer (about 100 gas). `_revertInvalidGrant` works out which check failed, and reverts even if
        // none of its named checks does, so a drift between the two can never store a flagged grant.
        assembly ("memory-safe") {
            let expiresAt := and(shr(168, t), 0xffffffffff)
            bad := or(
                or(iszero(and(t, 0xffffffffffffffffffffffffffffffffffffffff)), gt(and(shr(160, t), 0xff), 3)),
                or(
                    or(iszero(gt(expiresAt, timestamp())), gt(expiresAt, maxExpiresAt)),
                    or(
                        or(or(iszero(and(shr(208, t), 0xffffff)), iszero(shr(232, t))), iszero(receiptHash)),
                        iszero(shr(160, subject))
                    )
                )
            )
            let p := mload(0x40)
            mstore(p, subject)
            mstore(add(p, 0x20), and(t, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(p, 0x40), and(shr(160, t), 0xff))
            slot := keccak256(p, 0x60)
            w := sload(slot)
        }
        if (bad) _revertInvalidGrant(subject, terms, receiptHash, maxExpiresAt);
        if (w == 0) {
            // A first grant: grantedAt = now, nonce = 1.
            unchecked {
                w = block.timestamp
                    | (((t >> ConsentTermsLib.EXPIRES_AT_SHIFT) & MASK40) << ConsentRecordLib.EXPIRES_AT_SHIFT)
                    | ((t >> ConsentTermsLib.PLATFORM_NOTICE_SHIFT) << ConsentRecordLib.PLATFORM_NOTICE_SHIFT)
                    | ConsentRecordLib.NONCE_ONE;
            }
        } else {
            w = _granted(w, t);
        }
        assembly ("memory-safe") {
            sstore(slot, w)
        }
        emit ConsentGranted(subject, terms, receiptHash);
    }

    /// @inheritdoc IConsentRegistry
    function revoke(bytes32 subject, address partner, uint8 purpose) external onlyRegistrar {
        _requirePseudonym(subject);
        bytes32 slot = _recordSlot(subject, partner, purpose);
        _revoke(slot, _load(slot), subject, partner, purpose);
    }

    /// @inheritdoc IConsentRegistry
    function grantBatch(ConsentGrant[] calldata grants) external onlyRegistrar {
        uint256 n = grants.length;
        for (uint256 i; i < n;) {
            ConsentGrant calldata g = grants[i];
            _grant(g.subject, ConsentTerms.unwrap(g.terms), g.receiptHash);
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IConsentRegistry
    function revokeBatch(ConsentRevocation[] calldata revocations) external onlyRegistrar {
        uint256 n = revocations.length;
        for (uint256 i; i < n;) {
            ConsentRevocation calldata r = revocations[i];
            (bytes32 subject, address partner, uint8 purpose) = (r.subject, r.partner, r.purpose);
            _requirePseudonym(subject);
            bytes32 slot = _recordSlot(subject, partner, purpose);
            _revoke(slot, _load(slot), subject, partner, purpose);
            unchecked {
                ++i;
            }
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
        for (uint256 i; i < n;) {
            _grantBySig(grants[i]);
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySigBatch(SignedConsentRevocation[] calldata revocations) external {
        uint256 n = revocations.length;
        for (uint256 i; i < n;) {
            _revokeBySig(revocations[i]);
            unchecked {
                ++i;
            }
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
        ConsentRecord r = _loadRecord(_recordSlot(subject, partner, purpose));
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
        return _loadRecord(_recordSlot(subject, partner, purpose)).countsAt(block.timestamp, _currentVersions(partner));
    }

    /// @inheritdoc IConsentRegistry
    function isConsentedAt(bytes32 subject, address partner, uint8 purpose, uint40 at) external view returns (bool) {
        return at <= block.timestamp
            && _loadRecord(_recordSlot(subject, partner, purpose)).countsAt(at, _currentVersions(partner));
    }

    /// @inheritdoc IConsentRegistry
    function consentMask(bytes32 subject, address partner) external view returns (uint8 mask) {
        uint256 versions = _currentVersions(partner);
        for (uint8 p; p < Purposes.COUNT; ++p) {
            if (_loadRecord(_recordSlot(subject, partner, p)).countsAt(block.timestamp, versions)) {
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
        for (uint256 i; i < n;) {
            consented[i] = _loadRecord(_recordSlot(subjects[i], partner, purpose)).countsAt(block.timestamp, versions);
            unchecked {
                ++i;
            }
        }
    }

    /// @inheritdoc IConsentRegistry
    /// @dev The settlement ledger's consent check: one call per batch, so the loop is kept lean. A time that
    /// does not fit 40 bits simply does not count.
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
        assembly ("memory-safe") {
            let key := mload(0x40)
            mstore(add(key, 0x20), partner)
            mstore(add(key, 0x40), purpose)
            let now_ := timestamp()
            let out := add(consented, 0x20)
            let timesFromSubjects := sub(times.offset, subjects.offset)
            let end := add(subjects.offset, shl(5, n))
            for { let p := subjects.offset } lt(p, end) {
                p := add(p, 0x20)
                out := add(out, 0x20)
            } {
                let at := calldataload(add(p, timesFromSubjects))
                mstore(key, calldataload(p))
                let w := sload(keccak256(key, 0x60))
                let grantedAt := and(w, 0xffffffffff)
                let revokedAt := and(shr(80, w), 0xffffffffff)
                // 0 < grantedAt <= at < expiresAt, (revokedAt == 0 || at < revokedAt), at <= now, and the
                // record's versions are the current ones
                mstore(
                    out,
                    and(
                        and(
                            and(iszero(iszero(grantedAt)), iszero(gt(grantedAt, at))),
                            lt(at, and(shr(40, w), 0xffffffffff))
                        ),
                        and(
                            and(or(iszero(revokedAt), lt(at, revokedAt)), iszero(gt(at, now_))),
                            eq(and(w, 0xffffffffffff000000000000000000000000000000), versions)
                        )
                    )
                )
            }
        }
    }

    /// @inheritdoc IConsentRegistry
    function nonceOf(bytes32 subject, address partner, uint8 purpose) external view returns (uint32) {
        return _loadRecord(_recordSlot(subject, partner, purpose)).nonce();
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
        return _maxConsentDuration;
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
    function _recordSlot(bytes32 subject, address partner, uint8 purpose) private pure returns (bytes32 slot) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, subject)
            mstore(add(p, 0x20), and(partner, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(p, 0x40), and(purpose, 0xff))
            slot := keccak256(p, 0x60)
        }
    }

    /// @dev The same slot, for the partner and purpose held in the low 168 bits of a `ConsentTerms` word.
    function _recordSlot(bytes32 subject, uint256 termsWord) private pure returns (bytes32 slot) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, subject)
            mstore(add(p, 0x20), and(termsWord, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(p, 0x40), and(shr(160, termsWord), 0xff))
            slot := keccak256(p, 0x60)
        }
    }

    function _load(bytes32 slot) private view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(slot)
        }
    }

    function _loadRecord(bytes32 slot) private view returns (ConsentRecord) {
        return ConsentRecord.wrap(_load(slot));
    }

    function _store(bytes32 slot, uint256 w) private {
        assembly ("memory-safe") {
            sstore(slot, w)
        }
    }

    /// @dev The current versions of `partner`, placed where a record keeps its versions.
    function _currentVersions(address partner) private view returns (uint256) {
        return (uint256(_platformNoticeVersion) << ConsentRecordLib.PLATFORM_NOTICE_SHIFT)
            | (uint256(_partnerNoticeVersions[partner]) << ConsentRecordLib.PARTNER_NOTICE_SHIFT);
    }

    /// @dev The checks every grant passes, on both paths, as one boolean (one branch on the happy path):
    /// partner non-zero, purpose known, `now < expiresAt <= maxExpiresAt`, both notice versions non-zero and
    /// the receipt hash non-zero. `_revertInvalidTerms` works out which one failed.
    function _termsInvalid(uint256 t, bytes32 receiptHash, uint256 maxExpiresAt) private view returns (bool bad) {
        assembly ("memory-safe") {
            let expiresAt := and(shr(168, t), 0xffffffffff)
            bad := or(
                or(iszero(and(t, 0xffffffffffffffffffffffffffffffffffffffff)), gt(and(shr(160, t), 0xff), 3)),
                or(
                    or(iszero(gt(expiresAt, timestamp())), gt(expiresAt, maxExpiresAt)),
                    or(or(iszero(and(shr(208, t), 0xffffff)), iszero(shr(232, t))), iszero(receiptHash))
                )
            )
        }
    }

    /// @dev `_termsInvalid` and its revert.
    function _validateTerms(bytes32 subject, uint256 t, bytes32 receiptHash) private view {
        uint256 maxExpiresAt;
        unchecked {
            maxExpiresAt = block.timestamp + _maxConsentDuration;
        }
        if (_termsInvalid(t, receiptHash, maxExpiresAt)) {
            _revertInvalidTerms(subject, ConsentTerms.wrap(t), receiptHash, maxExpiresAt);
        }
    }

    /// @dev The revert of a registrar-path grant flagged by the inlined check in `grant`: the wallet subject
    /// first, then the terms.
    function _revertInvalidGrant(bytes32 subject, ConsentTerms terms, bytes32 receiptHash, uint256 maxExpiresAt)
        private
        view
    {
        _requirePseudonym(subject);
        _revertInvalidTerms(subject, terms, receiptHash, maxExpiresAt);
    }

    /// @dev Reverts with the named error of the first failing check of `_termsInvalid`; called only once a
    /// grant was flagged, it always reverts: the last revert catches a flag that none of the named checks
    /// explains (a drift between a hand-inlined check and this function), so a flagged grant is never stored.
    function _revertInvalidTerms(bytes32 subject, ConsentTerms terms, bytes32 receiptHash, uint256 maxExpiresAt)
        private
        view
    {
        if (terms.partner() == address(0)) revert ConsentRegistryInvalidPartner(address(0));
        if (!Purposes.isValid(terms.purpose())) revert ConsentRegistryUnknownPurpose(terms.purpose());
        uint40 expiresAt = terms.expiresAt();
        if (expiresAt <= block.timestamp || expiresAt > maxExpiresAt) {
            revert ConsentRegistryInvalidExpiry(expiresAt, maxExpiresAt);
        }
        if (terms.platformNoticeVersion() == 0 || terms.partnerNoticeVersion() == 0) {
            revert ConsentRegistryInvalidNoticeVersion(terms.platformNoticeVersion(), terms.partnerNoticeVersion());
        }
        if (receiptHash == bytes32(0)) revert ConsentRegistryMissingReceipt(subject);
        revert ConsentRegistryInvalidGrant(subject, terms, receiptHash);
    }

    /// @dev The registrar path writes pseudonyms only: a wallet subject (upper 96 bits zero) writes its own
    /// consents, with its signature.
    function _requirePseudonym(bytes32 subject) private pure {
        if (uint256(subject) >> 160 == 0) revert ConsentRegistrySubjectIsAWallet(subject);
    }

    /// @dev A validated grant on the registrar path.
    function _grant(bytes32 subject, uint256 t, bytes32 receiptHash) private {
        _requirePseudonym(subject);
        _validateTerms(subject, t, receiptHash);
        bytes32 slot = _recordSlot(subject, t);
        _store(slot, _granted(_load(slot), t));
        emit ConsentGranted(subject, ConsentTerms.wrap(t), receiptHash);
    }

    /// @dev The record after a validated grant of terms `t` over record `w`: a renewal if `w` counts now
    /// (grantedAt kept), a new interval otherwise; the nonce is incremented either way.
    function _granted(uint256 w, uint256 t) private view returns (uint256) {
        uint256 grantedAt = block.timestamp;
        if (w != 0) {
            uint256 g = w & MASK40;
            // Cheap conditions first: the notice versions are read only for a live, unrevoked record.
            if (
                g != 0 && w & ConsentRecordLib.REVOKED_AT_MASK == 0
                    && block.timestamp < (w >> ConsentRecordLib.EXPIRES_AT_SHIFT) & MASK40
                    && ConsentRecord.wrap(w).countsAt(block.timestamp, _currentVersions(address(uint160(t))))
            ) grantedAt = g;
        }
        unchecked {
            return grantedAt
                | (((t >> ConsentTermsLib.EXPIRES_AT_SHIFT) & MASK40) << ConsentRecordLib.EXPIRES_AT_SHIFT)
                | ((t >> ConsentTermsLib.PLATFORM_NOTICE_SHIFT) << ConsentRecordLib.PLATFORM_NOTICE_SHIFT)
                | ((((w >> NONCE_SHIFT) + 1) & MASK32) << NONCE_SHIFT);
        }
    }

    /// @dev Marks the record revoked now and increments its nonce; reverts if never granted or already revoked.
    function _revoke(bytes32 slot, uint256 w, bytes32 subject, address partner, uint8 purpose) private {
        if (w & MASK40 == 0 || w & ConsentRecordLib.REVOKED_AT_MASK != 0) {
            revert ConsentRegistryNotGranted(subject, partner, purpose);
        }
        unchecked {
            _store(
                slot,
                (w & ((1 << NONCE_SHIFT) - 1)) | (block.timestamp << ConsentRecordLib.REVOKED_AT_SHIFT)
                    | ((((w >> NONCE_SHIFT) + 1) & MASK32) << NONCE_SHIFT)
            );
        }
        emit ConsentRevoked(subject, partner, purpose);
    }

    /// @dev The checks shared by both signed writes: deadline, then that the subject is a wallet.
    function _checkDeadlineAndWallet(uint40 deadline, bytes32 subject) private view {
        if (block.timestamp > deadline) revert ConsentRegistrySignatureExpired(deadline, block.timestamp);
        if (uint256(subject) >> 160 != 0) revert ConsentRegistrySubjectNotAWallet(subject);
    }

    /// @dev Reverts unless the nonce signed is the record's.
    function _checkNonce(uint256 w, bytes32 subject, uint32 nonce) private pure {
        uint32 expected = uint32(w >> NONCE_SHIFT);
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
        _checkDeadlineAndWallet(deadline, subject);
        uint256 t = ConsentTerms.unwrap(g.terms);
        bytes32 receiptHash = g.receiptHash;
        _validateTerms(subject, t, receiptHash);
        bytes32 slot = _recordSlot(subject, t);
        uint256 w = _load(slot);
        uint32 nonce = g.nonce;
        _checkNonce(w, subject, nonce);
        bytes32 structHash;
        bytes32 typeHash = CONSENT_GRANT_TYPEHASH;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typeHash)
            mstore(add(p, 0x20), subject)
            mstore(add(p, 0x40), and(t, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(p, 0x60), and(shr(160, t), 0xff))
            mstore(add(p, 0x80), and(shr(168, t), 0xffffffffff))
            mstore(add(p, 0xa0), and(shr(208, t), 0xffffff))
            mstore(add(p, 0xc0), shr(232, t))
            mstore(add(p, 0xe0), receiptHash)
            mstore(add(p, 0x100), nonce)
            mstore(add(p, 0x120), deadline)
            structHash := keccak256(p, 0x140)
        }
        _checkSignature(structHash, g.r, g.vs, subject);
        _store(slot, _granted(w, t));
        emit ConsentGranted(subject, ConsentTerms.wrap(t), receiptHash);
    }

    function _revokeBySig(SignedConsentRevocation calldata s) private {
        bytes32 subject = s.subject;
        uint40 deadline = s.deadline;
        _checkDeadlineAndWallet(deadline, subject);
        address partner = s.partner;
        uint8 purpose = s.purpose;
        bytes32 slot = _recordSlot(subject, partner, purpose);
        uint256 w = _load(slot);
        uint32 nonce = s.nonce;
        _checkNonce(w, subject, nonce);
        bytes32 structHash;
        bytes32 typeHash = CONSENT_REVOCATION_TYPEHASH;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typeHash)
            mstore(add(p, 0x20), subject)
            mstore(add(p, 0x40), partner)
            mstore(add(p, 0x60), purpose)
            mstore(add(p, 0x80), nonce)
            mstore(add(p, 0xa0), deadline)
            structHash := keccak256(p, 0xc0)
        }
        _checkSignature(structHash, s.r, s.vs, subject);
        _revoke(slot, w, subject, partner, purpose);
    }
}
