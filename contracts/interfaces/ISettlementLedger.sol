// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConversionData} from "../types/ConversionData.sol";
import {IConsentRegistry} from "./IConsentRegistry.sol";
import {IPartnershipAgreements} from "./IPartnershipAgreements.sol";

/// @title ISettlementLedger
/// @notice Records the conversions of recommendations under a partnership agreement and splits their
/// commission among the parties exactly, to the wei.
/// @dev Split rule, per conversion: `commission = value * commissionRate / 1e6` (floor); party `i` gets
/// `commission * share_i / 1e6` (floor); the remainder (fewer wei than there are parties) goes to
/// `parties[0]`, by convention the platform. The amounts always sum to the commission.
/// Lifecycle: a conversion is provisional when recorded; it can be reversed until
/// `time + validationWindow`; its batch becomes final (`finalizeBatch`, callable by anyone) once every one
/// of its conversions is past that point.
/// Conversions of a batch are committed to by a Merkle root: leaf `i` is
/// `keccak256(abi.encode(conversions[i]))`; each level pairs adjacent nodes left to right with OpenZeppelin's
/// commutative keccak (`Hashes.commutativeKeccak256`) and promotes an unpaired last node unchanged; the root
/// of a one-conversion batch is its leaf. `MerkleProof.verifyCalldata` verifies proofs of that tree.
/// In-force window: a conversion is recordable iff the agreement was activated and
/// `start <= time < end` with `start = max(validFrom, activatedAt)` and `end = min(validUntil, endedAt)`
/// (see `IPartnershipAgreements.requireTermsInForce`), and `time <= now`. The status now does not matter:
/// commission earned while the agreement was in force can be recorded after it was terminated, superseded
/// or expired, so no party can cancel what is already owed by ending the agreement first.
/// Conversion ids are unique per agreement: dedupe and `conversionStatus` are keyed by (agreementId, id),
/// so two agreements may use the same id and neither's reporter can block the other's.
interface ISettlementLedger {
    /// @notice One conversion.
    /// @param data Id, time, recommendedAt and value, packed (see `ConversionData`).
    /// @param recommendationRef Hash of the served recommendation's id.
    /// @param subject The consent pseudonym of the user who converted.
    struct Conversion {
        ConversionData data;
        bytes32 recommendationRef;
        bytes32 subject;
    }

    /// @notice The stored state of a batch.
    /// @param agreementId The agreement the batch was recorded under (0 for an unknown batch).
    /// @param conversionsRoot The Merkle root of its conversions.
    /// @param count The number of conversions.
    /// @param finalAfter The batch can be finalized from this time on: the latest `time + validationWindow`.
    /// @param finalized Whether it was finalized.
    /// @param amounts Per party (in the order of the terms' parties), the batch's commission not reversed:
    /// still provisional before finalization, final after.
    struct BatchState {
        uint256 agreementId;
        bytes32 conversionsRoot;
        uint32 count;
        uint40 finalAfter;
        bool finalized;
        uint256[] amounts;
    }

    /// @notice A batch of conversions was recorded (one event per batch).
    /// @param agreementId The agreement.
    /// @param batchId The new batch's id.
    /// @param conversionsRoot The Merkle root of the conversions.
    /// @param conversions The conversions, in order.
    event ConversionsRecorded(
        uint256 indexed agreementId, uint256 indexed batchId, bytes32 conversionsRoot, Conversion[] conversions
    );

    /// @notice A conversion was reversed (for example a withdrawal within the legal window).
    /// @param agreementId The agreement.
    /// @param batchId The batch it was recorded in.
    /// @param conversionId The conversion.
    /// @param commission Its commission, moved from provisional to reversed.
    event ConversionReversed(
        uint256 indexed agreementId, uint256 indexed batchId, uint64 indexed conversionId, uint256 commission
    );

    /// @notice A batch became final: its remaining amounts moved from provisional to final.
    /// @param agreementId The agreement.
    /// @param batchId The batch.
    event BatchFinalized(uint256 indexed agreementId, uint256 indexed batchId);

    /// @notice Only the agreement's reporter may record or reverse conversions.
    /// @param caller The caller.
    /// @param reporter The agreement's reporter.
    error SettlementLedgerNotReporter(address caller, address reporter);

    /// @notice A batch with no conversions.
    error SettlementLedgerEmptyBatch();

    /// @notice A conversion id of zero.
    error SettlementLedgerZeroConversionId();

    /// @notice A conversion id already recorded under this agreement (in an earlier batch or earlier in the
    /// same batch).
    /// @param conversionId The id.
    error SettlementLedgerDuplicateConversion(uint64 conversionId);

    /// @notice A conversion with a value of zero.
    /// @param conversionId The id.
    error SettlementLedgerZeroValue(uint64 conversionId);

    /// @notice The conversion time is in the future.
    /// @param conversionId The id.
    /// @param time The conversion time.
    error SettlementLedgerInvalidConversionTime(uint64 conversionId, uint40 time);

    /// @notice The conversion time is outside the agreement's in-force window `[start, end)`.
    /// @param conversionId The id.
    /// @param time The conversion time.
    /// @param start `max(validFrom, activatedAt)` (inclusive).
    /// @param end `min(validUntil, endedAt)` (exclusive).
    error SettlementLedgerOutsideAgreementTerm(uint64 conversionId, uint40 time, uint40 start, uint40 end);

    /// @notice The conversion is not within the attribution window after its recommendation.
    /// @param conversionId The id.
    /// @param recommendedAt When the recommendation was served.
    /// @param time The conversion time.
    error SettlementLedgerOutsideAttributionWindow(uint64 conversionId, uint40 recommendedAt, uint40 time);

    /// @notice The subject did not hold ProductRecommendation consent for the partner at the conversion time.
    /// @param conversionId The id.
    /// @param subject The subject.
    error SettlementLedgerNoConsent(uint64 conversionId, bytes32 subject);

    /// @notice No batch has this id.
    /// @param batchId The id.
    error SettlementLedgerUnknownBatch(uint256 batchId);

    /// @notice The conversion is not in the batch (the Merkle proof does not verify).
    /// @param conversionId The id.
    error SettlementLedgerUnknownConversion(uint64 conversionId);

    /// @notice The conversion was already reversed (under this batch's agreement).
    /// @param conversionId The id.
    error SettlementLedgerAlreadyReversed(uint64 conversionId);

    /// @notice The conversion's validation window has passed, or its batch is finalized.
    /// @param conversionId The id.
    error SettlementLedgerConversionFinal(uint64 conversionId);

    /// @notice The batch cannot be finalized before `finalAfter`.
    /// @param batchId The batch.
    /// @param finalAfter When it can be.
    error SettlementLedgerNotYetFinal(uint256 batchId, uint40 finalAfter);

    /// @notice The batch was already finalized.
    /// @param batchId The batch.
    error SettlementLedgerBatchAlreadyFinalized(uint256 batchId);

    /// @notice A party's share of a batch does not fit the 128 bits kept per party and batch: split the batch.
    /// @param batchId The batch that would have been recorded.
    error SettlementLedgerBatchTooLarge(uint256 batchId);

    /// @notice Records a batch of conversions, all or nothing; only the agreement's reporter.
    /// @dev Checks the reporter, that the terms are the agreement's and it was activated
    /// (`IPartnershipAgreements.requireTermsInForce`, one call per batch), and per conversion: a non-zero id
    /// never recorded under this agreement (including earlier in the batch), a non-zero value,
    /// `time <= now`, `start <= time < end` (the in-force window, whatever the agreement's status now),
    /// `recommendedAt <= time <= recommendedAt + attributionWindow`, and ProductRecommendation consent of
    /// the subject for `terms.partner` at `time`.
    /// Adds each conversion's split to the parties' provisional totals. Emits one `ConversionsRecorded`.
    /// @param agreementId The agreement.
    /// @param terms Its terms.
    /// @param conversions The conversions.
    /// @return batchId The new batch's id (1, 2, ...).
    function recordConversions(
        uint256 agreementId,
        IPartnershipAgreements.AgreementTerms calldata terms,
        Conversion[] calldata conversions
    ) external returns (uint256 batchId);

    /// @notice Records one conversion as a batch of one.
    /// @param agreementId The agreement.
    /// @param terms Its terms.
    /// @param conversion The conversion.
    /// @return batchId The new batch's id.
    function recordConversion(
        uint256 agreementId,
        IPartnershipAgreements.AgreementTerms calldata terms,
        Conversion calldata conversion
    ) external returns (uint256 batchId);

    /// @notice Reverses a provisional conversion before its validation window passes; only the reporter.
    /// @dev Moves its split from the parties' provisional totals (and the batch's amounts) to reversed.
    /// Works whatever the agreement's status now is. Emits `ConversionReversed`.
    /// @param batchId The batch it was recorded in.
    /// @param terms The agreement's terms.
    /// @param conversion The conversion, exactly as recorded.
    /// @param proof Its Merkle proof in the batch (empty for a one-conversion batch).
    function reverseConversion(
        uint256 batchId,
        IPartnershipAgreements.AgreementTerms calldata terms,
        Conversion calldata conversion,
        bytes32[] calldata proof
    ) external;

    /// @notice Finalizes a batch once `finalAfter` has passed; anyone may call it.
    /// @dev Moves the batch's remaining amounts from provisional to final. Emits `BatchFinalized`.
    /// @param batchId The batch.
    /// @param terms The agreement's terms.
    function finalizeBatch(uint256 batchId, IPartnershipAgreements.AgreementTerms calldata terms) external;

    /// @notice The split rule, exposed so that anyone can verify it.
    /// @param terms The agreement's terms (only the parties and the commission rate are used).
    /// @param value A conversion value.
    /// @return commission `value * commissionRate / 1e6`, rounded down.
    /// @return amounts Per party; they sum to `commission` exactly.
    function splitCommission(IPartnershipAgreements.AgreementTerms calldata terms, uint256 value)
        external
        pure
        returns (uint256 commission, uint256[] memory amounts);

    /// @notice A party's totals under an agreement.
    /// @param agreementId The agreement.
    /// @param party The party.
    /// @return provisional Recorded, neither final nor reversed.
    /// @return final_ Finalized.
    /// @return reversed Reversed.
    function totalsOf(uint256 agreementId, address party)
        external
        view
        returns (uint256 provisional, uint256 final_, uint256 reversed);

    /// @notice The status of a conversion id under an agreement: 0 Unknown, 1 Recorded, 2 Reversed.
    /// @param agreementId The agreement (ids are unique per agreement).
    /// @param conversionId The id.
    function conversionStatus(uint256 agreementId, uint64 conversionId) external view returns (uint8);

    /// @notice The stored state of a batch.
    /// @param batchId The batch.
    /// @return state The state (agreementId 0 for an unknown batch).
    function batchOf(uint256 batchId) external view returns (BatchState memory state);

    /// @notice How many batches have been recorded (the last id).
    function batchCount() external view returns (uint256);

    /// @notice The consent registry checked at record time.
    function registry() external view returns (IConsentRegistry);

    /// @notice The agreements contract the terms are checked against.
    function agreements() external view returns (IPartnershipAgreements);
}
