// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IPartnershipAgreements
/// @notice Partnership agreements between a knowledge platform and banks or insurers: who shares the
/// commission on a converted recommendation, at which rate, within which windows. A party proposes terms;
/// the agreement is active once every party has accepted, by transaction or by EIP-712 signature.
/// @dev Only a hash of the terms is stored (0xSplits style): every call that needs them takes the full
/// terms in calldata and checks them against the hash, and `AgreementProposed` carries the full terms so
/// anyone can rebuild them from the logs. Terms never change: an amendment is a new agreement whose
/// `supersedes` names the old one, which becomes `Superseded` when the new one becomes active. An amendment
/// must be proposed by a party of the old agreement and keep its `partner`; only one amendment of an
/// agreement can ever activate (the first to collect every acceptance; the others can no longer complete).
/// In-force window: an agreement that was activated (Active, or Terminated or Superseded after it was
/// activated) was in force over `[max(validFrom, activatedAt), min(validUntil, endedAt))`, where `endedAt` is
/// when it was terminated or superseded (`validUntil` alone while it has not ended). Conversions are
/// settled against that window, not against the status now: ending an agreement does not cancel
/// commission already earned, and a conversion shortly before `validUntil` can be recorded after it.
/// Status codes: 0 None, 1 Proposed, 2 Active, 3 Terminated, 4 Superseded.
interface IPartnershipAgreements {
    /// @notice One party of an agreement and its share of the commission.
    /// @param account The party's address.
    /// @param share Its share of each commission, scale 1e6 (all shares sum to exactly 1e6).
    struct Party {
        address account;
        uint32 share;
    }

    /// @notice The terms of an agreement.
    /// @param parties 2 to 32 parties, distinct and non-zero, shares summing to 1e6. `parties[0]` (by
    /// convention the platform) receives the rounding remainder of every split.
    /// @param partner The consent counterparty: the bank or insurer whose product converts. It must be one
    /// of the parties (its share may be 0); the ledger checks ProductRecommendation consent for it.
    /// @param reporter The only account that may record and reverse conversions (non-zero).
    /// @param commissionRate Commission as a fraction of the conversion value, scale 1e6 (at most 1e6).
    /// @param attributionWindow Seconds (> 0): a conversion counts if `time - recommendedAt <= attributionWindow`.
    /// @param validationWindow Seconds: a conversion can be reversed until `time + validationWindow`
    /// (for example 14 days for insurance sold at a distance, 30 days for life insurance).
    /// @param validFrom Start of validity (unix seconds, inclusive).
    /// @param validUntil End of validity (unix seconds, exclusive); after `validFrom` and in the future.
    /// @param currency The unit of conversion values: right-padded ASCII such as "CNY" or "wei" (non-zero).
    /// @param supersedes 0, or the id of the agreement this one amends (Proposed or Active, the proposer must
    /// be one of its parties and `partner` must be its partner).
    struct AgreementTerms {
        Party[] parties;
        address partner;
        address reporter;
        uint32 commissionRate;
        uint32 attributionWindow;
        uint32 validationWindow;
        uint40 validFrom;
        uint40 validUntil;
        bytes32 currency;
        uint256 supersedes;
    }

    /// @notice The stored state of an agreement.
    /// @param termsHash `keccak256(abi.encode(terms))` (see `hashTerms`); zero for an unknown id.
    /// @param status 0 None, 1 Proposed, 2 Active, 3 Terminated, 4 Superseded.
    /// @param acceptedMask Bit `i` is set iff `parties[i]` has accepted.
    /// @param partyCount The number of parties.
    /// @param validFrom Start of validity (inclusive).
    /// @param validUntil End of validity (exclusive).
    /// @param activatedAt When the last party accepted (0 if never activated).
    /// @param endedAt When it was terminated or superseded (0 if it was not).
    struct AgreementState {
        bytes32 termsHash;
        uint8 status;
        uint32 acceptedMask;
        uint8 partyCount;
        uint40 validFrom;
        uint40 validUntil;
        uint40 activatedAt;
        uint40 endedAt;
    }

    /// @notice An agreement was proposed; the proposer's acceptance is recorded at once.
    /// @param agreementId The new agreement's id.
    /// @param termsHash The hash of its terms.
    /// @param proposer The party that proposed it.
    /// @param terms The full terms.
    event AgreementProposed(
        uint256 indexed agreementId, bytes32 indexed termsHash, address indexed proposer, AgreementTerms terms
    );

    /// @notice A party accepted an agreement.
    /// @param agreementId The agreement.
    /// @param party The party that accepted.
    event AgreementAccepted(uint256 indexed agreementId, address indexed party);

    /// @notice Every party has accepted: the agreement is active.
    /// @param agreementId The agreement.
    event AgreementActivated(uint256 indexed agreementId);

    /// @notice An agreement was terminated by one of its parties (its in-force window ends now).
    /// @param agreementId The agreement.
    /// @param by The party that terminated it.
    event AgreementTerminated(uint256 indexed agreementId, address indexed by);

    /// @notice An amendment became active and replaced the agreement it amends (whose in-force window ends
    /// now).
    /// @param previousId The amended agreement, now Superseded.
    /// @param nextId The amendment, now Active.
    event AgreementSuperseded(uint256 indexed previousId, uint256 indexed nextId);

    /// @notice The shares do not sum to exactly 1e6.
    /// @param sum Their sum.
    error PartnershipAgreementsInvalidShares(uint256 sum);

    /// @notice The number of parties is not within 2..32.
    /// @param count The number of parties given.
    error PartnershipAgreementsInvalidParties(uint256 count);

    /// @notice A party is the zero address or appears twice.
    /// @param index The index of the offending party.
    /// @param account Its address.
    error PartnershipAgreementsInvalidParty(uint256 index, address account);

    /// @notice The commission rate is above 1e6.
    /// @param commissionRate The rate given.
    error PartnershipAgreementsInvalidCommissionRate(uint32 commissionRate);

    /// @notice The validity period is empty or already over.
    /// @param validFrom The start given.
    /// @param validUntil The end given.
    error PartnershipAgreementsInvalidValidity(uint40 validFrom, uint40 validUntil);

    /// @notice A rarer validation failure of the terms.
    /// @param reason What is wrong: "partner not a party", "zero reporter", "zero attribution window",
    /// "zero currency" or "bad supersedes".
    error PartnershipAgreementsInvalidTerms(string reason);

    /// @notice The account is not a party of the agreement (of the amended one, for `supersedes`).
    /// @param account The account.
    error PartnershipAgreementsNotAParty(address account);

    /// @notice No agreement has this id.
    /// @param agreementId The id.
    error PartnershipAgreementsUnknownAgreement(uint256 agreementId);

    /// @notice The terms given do not hash to the stored terms hash.
    /// @param agreementId The agreement.
    /// @param expected The stored hash.
    /// @param given The hash of the terms given.
    error PartnershipAgreementsTermsMismatch(uint256 agreementId, bytes32 expected, bytes32 given);

    /// @notice The agreement is not in the Proposed state.
    /// @param agreementId The agreement.
    /// @param status Its status.
    error PartnershipAgreementsNotProposed(uint256 agreementId, uint8 status);

    /// @notice The party has already accepted.
    /// @param agreementId The agreement.
    /// @param party The party.
    error PartnershipAgreementsAlreadyAccepted(uint256 agreementId, address party);

    /// @notice The acceptance signature is not valid for the party.
    /// @param party The party.
    error PartnershipAgreementsInvalidSignature(address party);

    /// @notice The acceptance signature's deadline has passed.
    /// @param deadline The deadline signed.
    /// @param timestamp The current block time.
    error PartnershipAgreementsSignatureExpired(uint40 deadline, uint256 timestamp);

    /// @notice The agreement is not active: for `requireActiveTerms`, not accepted by all, terminated,
    /// superseded, or outside its validity period now; for `requireTermsInForce`, never activated.
    /// @param agreementId The agreement.
    error PartnershipAgreementsNotActive(uint256 agreementId);

    /// @notice Only a Proposed or Active agreement can be terminated.
    /// @param agreementId The agreement.
    /// @param status Its status.
    error PartnershipAgreementsCannotTerminate(uint256 agreementId, uint8 status);

    /// @notice An amendment cannot complete: the agreement it supersedes is no longer Proposed or Active
    /// (another amendment superseded it, or it was terminated).
    /// @param agreementId The amendment whose last acceptance failed.
    /// @param previousId The agreement it supersedes.
    /// @param status The status of `previousId`.
    error PartnershipAgreementsCannotSupersede(uint256 agreementId, uint256 previousId, uint8 status);

    /// @notice An amendment names another partner than the agreement it supersedes.
    /// @param previousId The agreement it supersedes.
    /// @param partner The partner given, which is not the partner of `previousId`.
    error PartnershipAgreementsPartnerChanged(uint256 previousId, address partner);

    /// @notice Proposes an agreement; the caller must be one of its parties and its acceptance is recorded.
    /// @dev Emits `AgreementProposed` (with the full terms) and `AgreementAccepted` for the proposer.
    /// @param terms The terms.
    /// @return agreementId The new agreement's id (1, 2, ...).
    function propose(AgreementTerms calldata terms) external returns (uint256 agreementId);

    /// @notice Accepts a proposed agreement; the caller must be one of its parties.
    /// @dev Emits `AgreementAccepted`, and `AgreementActivated` (plus `AgreementSuperseded` for an amendment)
    /// when the last party accepts; that acceptance reverts `PartnershipAgreementsCannotSupersede` for an
    /// amendment whose superseded agreement is no longer Proposed or Active.
    /// @param agreementId The agreement.
    /// @param terms Its terms (checked against the stored hash).
    function accept(uint256 agreementId, AgreementTerms calldata terms) external;

    /// @notice Accepts on behalf of `party` with its EIP-712 signature
    /// `AcceptAgreement(uint256 agreementId,bytes32 termsHash,address party,uint40 deadline)`; anyone may relay.
    /// @dev Verified with `SignatureChecker.isValidSignatureNow` (EOAs and ERC-1271 wallets). A signature
    /// cannot be replayed because each party accepts once.
    /// @param agreementId The agreement.
    /// @param terms Its terms.
    /// @param party The accepting party.
    /// @param deadline Last second (inclusive) at which the signature may be used.
    /// @param signature The party's signature.
    function acceptBySig(
        uint256 agreementId,
        AgreementTerms calldata terms,
        address party,
        uint40 deadline,
        bytes calldata signature
    ) external;

    /// @notice Terminates a Proposed or Active agreement; any party may.
    /// @dev Sets `endedAt` to now: conversions before it can still be recorded (see the in-force window).
    /// Emits `AgreementTerminated`.
    /// @param agreementId The agreement.
    /// @param terms Its terms.
    function terminate(uint256 agreementId, AgreementTerms calldata terms) external;

    /// @notice The stored state of an agreement (all zero for an unknown id).
    /// @param agreementId The agreement.
    /// @return state The state.
    function agreementOf(uint256 agreementId) external view returns (AgreementState memory state);

    /// @notice Whether the agreement is Active and `validFrom <= now < validUntil`.
    /// @param agreementId The agreement.
    function isActive(uint256 agreementId) external view returns (bool);

    /// @notice The hash under which terms are stored: `keccak256(abi.encode(terms))`.
    /// @param terms The terms.
    function hashTerms(AgreementTerms calldata terms) external pure returns (bytes32);

    /// @notice How many agreements have been proposed (the last id).
    function agreementCount() external view returns (uint256);

    /// @notice Whether `parties[partyIndex]` has accepted.
    /// @param agreementId The agreement.
    /// @param partyIndex The party's index in the terms.
    function hasAccepted(uint256 agreementId, uint256 partyIndex) external view returns (bool);

    /// @notice Whether `account` is a party of the agreement.
    /// @param agreementId The agreement.
    /// @param account The account.
    function isParty(uint256 agreementId, address account) external view returns (bool);

    /// @notice Reverts unless `terms` are the agreement's terms (`PartnershipAgreementsUnknownAgreement`,
    /// `PartnershipAgreementsTermsMismatch`).
    /// @param agreementId The agreement.
    /// @param terms The terms to check.
    function requireTerms(uint256 agreementId, AgreementTerms calldata terms) external view;

    /// @notice Reverts unless `terms` are the agreement's terms and the agreement is active now
    /// (`PartnershipAgreementsNotActive`).
    /// @param agreementId The agreement.
    /// @param terms The terms to check.
    function requireActiveTerms(uint256 agreementId, AgreementTerms calldata terms) external view;

    /// @notice Reverts unless `terms` are the agreement's terms and it was activated
    /// (`PartnershipAgreementsNotActive` otherwise); returns its in-force window. Used by the settlement
    /// ledger, once per batch: a conversion is recordable iff `start <= time < end` (and `time <= now`).
    /// @param agreementId The agreement.
    /// @param terms The terms to check.
    /// @return start `max(validFrom, activatedAt)` (inclusive).
    /// @return end `min(validUntil, endedAt)`, or `validUntil` while not terminated or superseded (exclusive).
    function requireTermsInForce(uint256 agreementId, AgreementTerms calldata terms)
        external
        view
        returns (uint40 start, uint40 end);

    /// @notice The EIP-712 type hash of
    /// `AcceptAgreement(uint256 agreementId,bytes32 termsHash,address party,uint40 deadline)`.
    function ACCEPT_AGREEMENT_TYPEHASH() external view returns (bytes32);

    /// @notice The EIP-712 domain separator (name "KnowLedger PartnershipAgreements", version "1").
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32);
}
