// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IPartnershipAgreements} from "./interfaces/IPartnershipAgreements.sol";

/// @title PartnershipAgreements
/// @notice KnowLedger's partnership agreements: proposed by a party, active once every party accepted.
/// @dev Per agreement, two slots: the terms hash and a packed state word
/// (status | acceptedMask | partyCount | validFrom | validUntil | activatedAt | endedAt), plus one role byte
/// per party (bit 0: a party, bit 1: the partner) so that an amendment can check, without the old terms,
/// that its proposer is a party of the agreement it amends and that it keeps the same partner. Marking the
/// partner costs nothing extra: the party's byte is written at proposal anyway.
contract PartnershipAgreements is IPartnershipAgreements, EIP712 {
    /// @inheritdoc IPartnershipAgreements
    bytes32 public constant ACCEPT_AGREEMENT_TYPEHASH =
        keccak256("AcceptAgreement(uint256 agreementId,bytes32 termsHash,address party,uint40 deadline)");

    uint8 internal constant STATUS_NONE = 0;
    uint8 internal constant STATUS_PROPOSED = 1;
    uint8 internal constant STATUS_ACTIVE = 2;
    uint8 internal constant STATUS_TERMINATED = 3;
    uint8 internal constant STATUS_SUPERSEDED = 4;

    uint256 internal constant SHARE_SCALE = 1e6;
    uint256 internal constant MIN_PARTIES = 2;
    uint256 internal constant MAX_PARTIES = 32;

    // Packed state word, low bits first.
    uint256 private constant MASK_SHIFT = 8; // acceptedMask uint32
    uint256 private constant COUNT_SHIFT = 40; // partyCount uint8
    uint256 private constant FROM_SHIFT = 48; // validFrom uint40
    uint256 private constant UNTIL_SHIFT = 88; // validUntil uint40
    uint256 private constant ACTIVATED_SHIFT = 128; // activatedAt uint40 (0 until every party accepted)
    uint256 private constant ENDED_SHIFT = 168; // endedAt uint40 (0 until terminated or superseded)
    uint256 private constant MASK40 = (1 << 40) - 1;

    // Role byte of an account in an agreement.
    uint8 private constant ROLE_PARTY = 1;
    uint8 private constant ROLE_PARTNER = 2;

    uint256 private _agreementCount;
    mapping(uint256 agreementId => bytes32) private _termsHashes;
    mapping(uint256 agreementId => uint256) private _states;
    /// @dev ROLE_PARTY for every party, | ROLE_PARTNER for the partner; 0 for anyone else.
    mapping(uint256 agreementId => mapping(address account => uint8)) private _roles;

    constructor() EIP712("KnowLedger PartnershipAgreements", "1") {}

    /// @inheritdoc IPartnershipAgreements
    function propose(AgreementTerms calldata terms) external returns (uint256 agreementId) {
        unchecked {
            agreementId = ++_agreementCount;
        }
        uint256 n = terms.parties.length;
        if (n < MIN_PARTIES || n > MAX_PARTIES) revert PartnershipAgreementsInvalidParties(n);
        uint256 sum;
        uint256 proposerIndex = type(uint256).max;
        bool partnerIsParty;
        address partner = terms.partner;
        mapping(address => uint8) storage members = _roles[agreementId];
        for (uint256 i; i < n;) {
            Party calldata p = terms.parties[i];
            address account = p.account;
            if (account == address(0) || members[account] != 0) {
                revert PartnershipAgreementsInvalidParty(i, account);
            }
            uint8 role = ROLE_PARTY;
            if (account == partner) {
                partnerIsParty = true;
                role = ROLE_PARTY | ROLE_PARTNER;
            }
            members[account] = role;
            unchecked {
                sum += p.share;
            }
            if (account == msg.sender) proposerIndex = i;
            unchecked {
                ++i;
            }
        }
        if (sum != SHARE_SCALE) revert PartnershipAgreementsInvalidShares(sum);
        if (proposerIndex == type(uint256).max) revert PartnershipAgreementsNotAParty(msg.sender);
        if (!partnerIsParty) revert PartnershipAgreementsInvalidTerms("partner not a party");
        if (terms.reporter == address(0)) revert PartnershipAgreementsInvalidTerms("zero reporter");
        if (terms.commissionRate > SHARE_SCALE) {
            revert PartnershipAgreementsInvalidCommissionRate(terms.commissionRate);
        }
        if (terms.attributionWindow == 0) revert PartnershipAgreementsInvalidTerms("zero attribution window");
        uint40 validFrom = terms.validFrom;
        uint40 validUntil = terms.validUntil;
        if (validFrom >= validUntil || validUntil <= block.timestamp) {
            revert PartnershipAgreementsInvalidValidity(validFrom, validUntil);
        }
        if (terms.currency == bytes32(0)) revert PartnershipAgreementsInvalidTerms("zero currency");
        uint256 previous = terms.supersedes;
        if (previous != 0) {
            if (previous >= agreementId || !_isOpen(_states[previous])) {
                revert PartnershipAgreementsInvalidTerms("bad supersedes");
            }
            mapping(address => uint8) storage previousRoles = _roles[previous];
            if (previousRoles[msg.sender] == 0) revert PartnershipAgreementsNotAParty(msg.sender);
            if (previousRoles[partner] & ROLE_PARTNER == 0) {
                revert PartnershipAgreementsPartnerChanged(previous, partner);
            }
        }
        bytes32 termsHash = keccak256(abi.encode(terms));
        _termsHashes[agreementId] = termsHash;
        _states[agreementId] = uint256(STATUS_PROPOSED) | ((uint256(1) << proposerIndex) << MASK_SHIFT)
            | (n << COUNT_SHIFT) | (uint256(validFrom) << FROM_SHIFT) | (uint256(validUntil) << UNTIL_SHIFT);
        emit AgreementProposed(agreementId, termsHash, msg.sender, terms);
        emit AgreementAccepted(agreementId, msg.sender);
    }

    /// @inheritdoc IPartnershipAgreements
    function accept(uint256 agreementId, AgreementTerms calldata terms) external {
        _requireTerms(agreementId, terms);
        _accept(agreementId, terms, msg.sender);
    }

    /// @inheritdoc IPartnershipAgreements
    function acceptBySig(
        uint256 agreementId,
        AgreementTerms calldata terms,
        address party,
        uint40 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert PartnershipAgreementsSignatureExpired(deadline, block.timestamp);
        bytes32 termsHash = _requireTerms(agreementId, terms);
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(ACCEPT_AGREEMENT_TYPEHASH, agreementId, termsHash, party, deadline)));
        if (!SignatureChecker.isValidSignatureNow(party, digest, signature)) {
            revert PartnershipAgreementsInvalidSignature(party);
        }
        _accept(agreementId, terms, party);
    }

    /// @inheritdoc IPartnershipAgreements
    function terminate(uint256 agreementId, AgreementTerms calldata terms) external {
        _requireTerms(agreementId, terms);
        _partyIndex(terms, msg.sender);
        uint256 state = _states[agreementId];
        if (!_isOpen(state)) revert PartnershipAgreementsCannotTerminate(agreementId, uint8(state));
        _states[agreementId] = _ended(state, STATUS_TERMINATED);
        emit AgreementTerminated(agreementId, msg.sender);
    }

    /// @inheritdoc IPartnershipAgreements
    function agreementOf(uint256 agreementId) external view returns (AgreementState memory state) {
        uint256 s = _states[agreementId];
        state = AgreementState({
            termsHash: _termsHashes[agreementId],
            status: uint8(s),
            acceptedMask: uint32(s >> MASK_SHIFT),
            partyCount: uint8(s >> COUNT_SHIFT),
            validFrom: uint40(s >> FROM_SHIFT),
            validUntil: uint40(s >> UNTIL_SHIFT),
            activatedAt: uint40(s >> ACTIVATED_SHIFT),
            endedAt: uint40(s >> ENDED_SHIFT)
        });
    }

    /// @inheritdoc IPartnershipAgreements
    function isActive(uint256 agreementId) public view returns (bool) {
        uint256 s = _states[agreementId];
        return uint8(s) == STATUS_ACTIVE && (s >> FROM_SHIFT) & MASK40 <= block.timestamp
            && block.timestamp < (s >> UNTIL_SHIFT) & MASK40;
    }

    /// @inheritdoc IPartnershipAgreements
    function hashTerms(AgreementTerms calldata terms) external pure returns (bytes32) {
        return keccak256(abi.encode(terms));
    }

    /// @inheritdoc IPartnershipAgreements
    function agreementCount() external view returns (uint256) {
        return _agreementCount;
    }

    /// @inheritdoc IPartnershipAgreements
    function hasAccepted(uint256 agreementId, uint256 partyIndex) external view returns (bool) {
        return partyIndex < MAX_PARTIES && (_states[agreementId] >> (MASK_SHIFT + partyIndex)) & 1 == 1;
    }

    /// @inheritdoc IPartnershipAgreements
    function isParty(uint256 agreementId, address account) external view returns (bool) {
        return _roles[agreementId][account] != 0;
    }

    /// @inheritdoc IPartnershipAgreements
    function requireTerms(uint256 agreementId, AgreementTerms calldata terms) external view {
        _requireTerms(agreementId, terms);
    }

    /// @inheritdoc IPartnershipAgreements
    function requireActiveTerms(uint256 agreementId, AgreementTerms calldata terms) external view {
        _requireTerms(agreementId, terms);
        if (!isActive(agreementId)) revert PartnershipAgreementsNotActive(agreementId);
    }

    /// @inheritdoc IPartnershipAgreements
    function requireTermsInForce(uint256 agreementId, AgreementTerms calldata terms)
        external
        view
        returns (uint40 start, uint40 end)
    {
        _requireTerms(agreementId, terms);
        return _inForce(agreementId, _states[agreementId]);
    }

    /// @inheritdoc IPartnershipAgreements
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @dev The window `[start, end)` in which agreement `agreementId` (state word `s`) was in force:
    /// `start = max(validFrom, activatedAt)`, `end = min(validUntil, endedAt)` (`validUntil` while not ended).
    /// Reverts `PartnershipAgreementsNotActive` for an agreement never activated.
    function _inForce(uint256 agreementId, uint256 s) private pure returns (uint40 start, uint40 end) {
        uint256 activatedAt = (s >> ACTIVATED_SHIFT) & MASK40;
        if (activatedAt == 0) revert PartnershipAgreementsNotActive(agreementId);
        uint256 from = (s >> FROM_SHIFT) & MASK40;
        uint256 until = (s >> UNTIL_SHIFT) & MASK40;
        uint256 endedAt = (s >> ENDED_SHIFT) & MASK40;
        start = uint40(from > activatedAt ? from : activatedAt);
        end = uint40(endedAt != 0 && endedAt < until ? endedAt : until);
    }

    /// @dev Whether the agreement with state word `s` is still open: Proposed or Active. Only an open agreement
    /// can be terminated or superseded (and named by an amendment's `supersedes`).
    function _isOpen(uint256 s) private pure returns (bool) {
        uint8 status = uint8(s);
        return status == STATUS_PROPOSED || status == STATUS_ACTIVE;
    }

    /// @dev State word `s` after the agreement ends now with `status` (Terminated or Superseded): the status
    /// replaced and `endedAt` set, everything else kept.
    function _ended(uint256 s, uint8 status) private view returns (uint256) {
        return (s & ~uint256(0xff)) | status | (block.timestamp << ENDED_SHIFT);
    }

    /// @dev Reverts unless `terms` hash to the stored terms hash of `agreementId`; returns that hash.
    function _requireTerms(uint256 agreementId, AgreementTerms calldata terms) private view returns (bytes32) {
        bytes32 expected = _termsHashes[agreementId];
        if (expected == bytes32(0)) revert PartnershipAgreementsUnknownAgreement(agreementId);
        bytes32 given = keccak256(abi.encode(terms));
        if (given != expected) revert PartnershipAgreementsTermsMismatch(agreementId, expected, given);
        return expected;
    }

    /// @dev The index of `account` among the parties; reverts `PartnershipAgreementsNotAParty` if absent.
    function _partyIndex(AgreementTerms calldata terms, address account) private pure returns (uint256) {
        uint256 n = terms.parties.length;
        for (uint256 i; i < n;) {
            if (terms.parties[i].account == account) return i;
            unchecked {
                ++i;
            }
        }
        revert PartnershipAgreementsNotAParty(account);
    }

    /// @dev Records `party`'s acceptance of the agreement whose `terms` the caller has checked.
    function _accept(uint256 agreementId, AgreementTerms calldata terms, address party) private {
        uint256 state = _states[agreementId];
        if (uint8(state) != STATUS_PROPOSED) revert PartnershipAgreementsNotProposed(agreementId, uint8(state));
        uint256 index = _partyIndex(terms, party);
        uint256 bit = (uint256(1) << index) << MASK_SHIFT;
        if (state & bit != 0) revert PartnershipAgreementsAlreadyAccepted(agreementId, party);
        state |= bit;
        uint256 n = (state >> COUNT_SHIFT) & 0xff;
        bool complete = (state >> MASK_SHIFT) & ((uint256(1) << n) - 1) == (uint256(1) << n) - 1;
        if (complete) state = (state & ~uint256(0xff)) | STATUS_ACTIVE | (block.timestamp << ACTIVATED_SHIFT);
        _states[agreementId] = state;
        emit AgreementAccepted(agreementId, party);
        if (complete) {
            emit AgreementActivated(agreementId);
            uint256 previous = terms.supersedes;
            if (previous != 0) {
                // Only one amendment of an agreement may activate: the first to complete supersedes it, and
                // any other (or one of an agreement terminated meanwhile) can no longer complete.
                uint256 prevState = _states[previous];
                if (!_isOpen(prevState)) {
                    revert PartnershipAgreementsCannotSupersede(agreementId, previous, uint8(prevState));
                }
                _states[previous] = _ended(prevState, STATUS_SUPERSEDED);
                emit AgreementSuperseded(previous, agreementId);
            }
        }
    }
}
