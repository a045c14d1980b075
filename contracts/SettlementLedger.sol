// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IPartnershipAgreements} from "./interfaces/IPartnershipAgreements.sol";
import {ISettlementLedger} from "./interfaces/ISettlementLedger.sol";
import {ConversionData} from "./types/ConversionData.sol";
import {Purposes} from "./types/Purposes.sol";

/// @title SettlementLedger
/// @notice KnowLedger's settlement ledger: conversions recorded in batches under an agreement, each within the
/// agreement's in-force window, their commission split exactly among the parties, provisional until their
/// validation window has passed.
/// @dev Gas design (see contracts/README.md): conversion ids, unique per agreement, are deduplicated with
/// packed bitmaps per agreement (256 ids a slot, each slot read and written once per run of ids in it); a
/// batch's per-party sums are kept in memory and each running total is written once per batch; the
/// conversions are not stored but committed to by a Merkle root and emitted in a single event; the consent
/// check is one call to the registry per batch.
/// Inline assembly: only the batch path (`_record` and its passes) lays out memory by hand, because the
/// batch's per-conversion cost has no room for more: a 100-conversion batch costs about 7,900 gas per
/// conversion against a target of 8,000, and the plain-Solidity Merkle root alone (OpenZeppelin's
/// `Hashes.commutativeKeccak256` over a `bytes32[]`) would add about 290 gas per conversion. The passes
/// take what they need from `Ctx` as Solidity values; the asm blocks only walk the copied conversions, and
/// the conversion rule and the dedupe are written once, in pass 1. Everything else is plain Solidity.
contract SettlementLedger is ISettlementLedger {
    uint256 internal constant SCALE = 1e6;

    uint8 internal constant STATUS_UNKNOWN = 0;
    uint8 internal constant STATUS_RECORDED = 1;
    uint8 internal constant STATUS_REVERSED = 2;

    uint256 private constant MASK128 = (1 << 128) - 1;

    // A batch's head word, low bits first: the batch's metadata in the low 128 bits, the amount of
    // parties[0] in the high 128 bits.
    uint256 private constant MASK48 = (1 << 48) - 1;
    uint256 private constant COUNT_SHIFT = 48; // count uint32
    uint256 private constant FINAL_AFTER_SHIFT = 80; // finalAfter uint40
    uint256 private constant PARTY_COUNT_SHIFT = 120; // partyCount uint6 (2..32)
    uint256 private constant FINALIZED_BIT = 1 << 127; // finalized flag
    uint256 private constant AMOUNT0_SHIFT = 128; // amount of parties[0], uint128

    IConsentRegistry private immutable _registry;
    IPartnershipAgreements private immutable _agreements;

    /// @dev A party's running totals under one agreement.
    struct Totals {
        uint256 provisional;
        uint256 final_;
        uint256 reversed;
    }

    /// @dev A recorded batch: three slots for a batch of up to three parties.
    /// @param head agreementId | count << 48 | finalAfter << 80 | partyCount << 120 | finalized << 127 |
    /// amount of parties[0] << 128.
    /// @param root The Merkle root of the batch's conversions.
    /// @param pairs `pairs[k]` holds the amounts of parties 2k+1 (low 128 bits) and 2k+2 (high 128 bits).
    struct Batch {
        uint256 head;
        bytes32 root;
        uint256[16] pairs;
    }

    /// @dev The next batch id, starting at 1 (set at deployment so that the first batch does not pay for a
    /// new slot): `batchCount() == _nextBatchId - 1`.
    uint256 private _nextBatchId = 1;
    mapping(uint256 batchId => Batch) private _batches;
    mapping(uint256 agreementId => mapping(address party => Totals)) private _totals;
    /// @dev Bit (id & 255) of word (id >> 8) of an agreement is set iff its conversion `id` was recorded.
    /// Ids are namespaced by agreement: another agreement's reporter cannot claim (and so block) an id.
    mapping(uint256 agreementId => mapping(uint256 word => uint256)) private _recorded;
    /// @dev Bit (id & 255) of word (id >> 8) of an agreement is set iff its conversion `id` was reversed.
    mapping(uint256 agreementId => mapping(uint256 word => uint256)) private _reversed;

    /// @param registry_ The consent registry checked at record time.
    /// @param agreements_ The agreements contract the terms are checked against.
    constructor(IConsentRegistry registry_, IPartnershipAgreements agreements_) {
        _registry = registry_;
        _agreements = agreements_;
    }

    /// @inheritdoc ISettlementLedger
    function recordConversions(
        uint256 agreementId,
        IPartnershipAgreements.AgreementTerms calldata terms,
        Conversion[] calldata conversions
    ) external returns (uint256 batchId) {
        uint256 offset;
        assembly ("memory-safe") {
            offset := conversions.offset
        }
        return _record(agreementId, terms, offset, conversions.length);
    }

    /// @inheritdoc ISettlementLedger
    function recordConversion(
        uint256 agreementId,
        IPartnershipAgreements.AgreementTerms calldata terms,
        Conversion calldata conversion
    ) external returns (uint256 batchId) {
        uint256 offset;
        assembly ("memory-safe") {
            offset := conversion
        }
        return _record(agreementId, terms, offset, 1);
    }

    /// @inheritdoc ISettlementLedger
    function reverseConversion(
        uint256 batchId,
        IPartnershipAgreements.AgreementTerms calldata terms,
        Conversion calldata conversion,
        bytes32[] calldata proof
    ) external {
        Batch storage b = _batches[batchId];
        uint256 head = b.head;
        if (head == 0) revert SettlementLedgerUnknownBatch(batchId);
        if (msg.sender != terms.reporter) revert SettlementLedgerNotReporter(msg.sender, terms.reporter);
        uint256 agreementId = head & MASK48;
        _agreements.requireTerms(agreementId, terms);
        ConversionData data = conversion.data;
        uint64 id = data.id();
        if (!MerkleProof.verifyCalldata(proof, b.root, keccak256(abi.encode(conversion)))) {
            revert SettlementLedgerUnknownConversion(id);
        }
        (uint256 index, uint256 bit) = _bitOf(id);
        mapping(uint256 => uint256) storage reversed = _reversed[agreementId];
        uint256 word = reversed[index];
        if (word & bit != 0) revert SettlementLedgerAlreadyReversed(id);
        if (head & FINALIZED_BIT != 0 || block.timestamp >= uint256(data.time()) + terms.validationWindow) {
            revert SettlementLedgerConversionFinal(id);
        }
        reversed[index] = word | bit;
        (uint256 commission, uint256[] memory amounts) = _split(terms, data.value());
        mapping(address => Totals) storage totals = _totals[agreementId];
        uint256 n = amounts.length;
        for (uint256 j; j < n; ++j) {
            uint256 a = amounts[j];
            if (a == 0) continue;
            // The batch's amount of each party includes this conversion's: no subtraction below underflows,
            // and none borrows from the neighbouring 128-bit field.
            unchecked {
                if (j == 0) b.head = (head -= a << AMOUNT0_SHIFT);
                else b.pairs[(j - 1) >> 1] -= a << (((j - 1) & 1) << 7);
            }
            Totals storage t = totals[terms.parties[j].account];
            t.provisional -= a;
            t.reversed += a;
        }
        emit ConversionReversed(agreementId, batchId, id, commission);
    }

    /// @inheritdoc ISettlementLedger
    function finalizeBatch(uint256 batchId, IPartnershipAgreements.AgreementTerms calldata terms) external {
        Batch storage b = _batches[batchId];
        uint256 head = b.head;
        if (head == 0) revert SettlementLedgerUnknownBatch(batchId);
        if (head & FINALIZED_BIT != 0) revert SettlementLedgerBatchAlreadyFinalized(batchId);
        uint40 finalAfter = uint40(head >> FINAL_AFTER_SHIFT);
        if (block.timestamp < finalAfter) revert SettlementLedgerNotYetFinal(batchId, finalAfter);
        uint256 agreementId = head & MASK48;
        _agreements.requireTerms(agreementId, terms);
        b.head = head | FINALIZED_BIT;
        uint256[] memory amounts = _batchAmounts(b, head);
        mapping(address => Totals) storage totals = _totals[agreementId];
        uint256 n = amounts.length;
        for (uint256 j; j < n; ++j) {
            uint256 a = amounts[j];
            if (a == 0) continue;
            Totals storage t = totals[terms.parties[j].account];
            t.provisional -= a;
            t.final_ += a;
        }
        emit BatchFinalized(agreementId, batchId);
    }

    /// @inheritdoc ISettlementLedger
    function splitCommission(IPartnershipAgreements.AgreementTerms calldata terms, uint256 value)
        external
        pure
        returns (uint256 commission, uint256[] memory amounts)
    {
        return _split(terms, value);
    }

    /// @inheritdoc ISettlementLedger
    function totalsOf(uint256 agreementId, address party)
        external
        view
        returns (uint256 provisional, uint256 final_, uint256 reversed)
    {
        Totals storage t = _totals[agreementId][party];
        return (t.provisional, t.final_, t.reversed);
    }

    /// @inheritdoc ISettlementLedger
    function conversionStatus(uint256 agreementId, uint64 conversionId) external view returns (uint8) {
        (uint256 index, uint256 bit) = _bitOf(conversionId);
        if (_reversed[agreementId][index] & bit != 0) return STATUS_REVERSED;
        if (_recorded[agreementId][index] & bit != 0) return STATUS_RECORDED;
        return STATUS_UNKNOWN;
    }

    /// @inheritdoc ISettlementLedger
    function batchOf(uint256 batchId) external view returns (BatchState memory state) {
        Batch storage b = _batches[batchId];
        uint256 head = b.head;
        state = BatchState({
            agreementId: head & MASK48,
            conversionsRoot: b.root,
            count: uint32(head >> COUNT_SHIFT),
            finalAfter: uint40(head >> FINAL_AFTER_SHIFT),
            finalized: head & FINALIZED_BIT != 0,
            amounts: _batchAmounts(b, head)
        });
    }

    /// @inheritdoc ISettlementLedger
    function batchCount() external view returns (uint256) {
        return _nextBatchId - 1;
    }

    /// @inheritdoc ISettlementLedger
    function registry() external view returns (IConsentRegistry) {
        return _registry;
    }

    /// @inheritdoc ISettlementLedger
    function agreements() external view returns (IPartnershipAgreements) {
        return _agreements;
    }

    // ------------------------------------------------------------------ internals

    /// @dev Where conversion `id` is in an agreement's `_recorded` and `_reversed` bitmaps: bit `bit` of word
    /// `index` (`_checkAndDedupe` addresses the words the same way).
    function _bitOf(uint64 id) private pure returns (uint256 index, uint256 bit) {
        return (id >> 8, uint256(1) << (id & 0xff));
    }

    /// @dev The split rule (see `ISettlementLedger`). `_hashAndSplit` and `_commit` apply the same rule to a
    /// whole batch, summed per party.
    function _split(IPartnershipAgreements.AgreementTerms calldata terms, uint256 value)
        private
        pure
        returns (uint256 commission, uint256[] memory amounts)
    {
        commission = value * terms.commissionRate / SCALE;
        uint256 n = terms.parties.length;
        amounts = new uint256[](n);
        uint256 rest = commission;
        for (uint256 j = 1; j < n; ++j) {
            uint256 a = commission * terms.parties[j].share / SCALE;
            amounts[j] = a;
            rest -= a;
        }
        if (n != 0) amounts[0] = rest;
    }

    /// @dev The per-party amounts stored for a batch.
    function _batchAmounts(Batch storage b, uint256 head) private view returns (uint256[] memory amounts) {
        uint256 n = (head >> PARTY_COUNT_SHIFT) & 0x3f;
        amounts = new uint256[](n);
        if (n == 0) return amounts;
        amounts[0] = head >> AMOUNT0_SHIFT;
        uint256 pair;
        for (uint256 j = 1; j < n; ++j) {
            if (j & 1 == 1) pair = b.pairs[(j - 1) >> 1];
            amounts[j] = (pair >> (((j - 1) & 1) << 7)) & MASK128;
        }
    }

    /// @dev The state of one `_record` call, kept in memory so that each pass works with few stack slots.
    /// @param n The number of conversions.
    /// @param ev The event's data: root | 0x40 | n | the conversions (copied once from calldata).
    /// @param leaves The n leaves, then the Merkle tree, in place.
    /// @param args The arguments of the registry's `areConsentedAt` (after its 4-byte selector).
    /// @param shares The parties' shares (`shares[0]` unused: parties[0] gets the remainder).
    /// @param sums The batch's per-party amounts.
    /// @param rate The commission rate.
    /// @param attributionWindow The attribution window.
    /// @param start The start of the agreement's in-force window (inclusive).
    /// @param end Its end (exclusive).
    /// @param maxTime The latest conversion time of the batch.
    /// @param total The batch's commission.
    struct Ctx {
        uint256 n;
        uint256 ev;
        uint256 leaves;
        uint256 args;
        uint256[] shares;
        uint256[] sums;
        uint256 rate;
        uint256 attributionWindow;
        uint256 start;
        uint256 end;
        uint256 maxTime;
        uint256 total;
    }

    // Why a conversion is refused: one bit per check, set by the record passes for the first conversion that
    // fails (pass 1: the conversion rule, then the dedupe; pass 3: the consent). `_revertConversion` reports
    // the first bit set, in this order.
    uint256 private constant FAIL_ZERO_ID = 1 << 0;
    uint256 private constant FAIL_ZERO_VALUE = 1 << 1;
    uint256 private constant FAIL_FUTURE = 1 << 2;
    uint256 private constant FAIL_OUTSIDE_TERM = 1 << 3;
    uint256 private constant FAIL_OUTSIDE_ATTRIBUTION = 1 << 4;
    uint256 private constant FAIL_DUPLICATE = 1 << 5;
    uint256 private constant FAIL_NO_CONSENT = 1 << 6;

    /// @dev Records the `n` conversions ABI-encoded in calldata from `offset` (the items of a `Conversion[]`,
    /// or a single `Conversion`), in passes over memory allocated once: check (each time against the
    /// agreement's in-force window, fetched once with the terms check) and dedupe; hash the leaves,
    /// split, and write the consent-check arguments; one `areConsentedAt` call for the whole batch; the
    /// Merkle root; then each storage word written once and one event.
    function _record(
        uint256 agreementId,
        IPartnershipAgreements.AgreementTerms calldata terms,
        uint256 offset,
        uint256 n
    ) private returns (uint256 batchId) {
        if (msg.sender != terms.reporter) revert SettlementLedgerNotReporter(msg.sender, terms.reporter);
        (uint40 start, uint40 end) = _agreements.requireTermsInForce(agreementId, terms);
        if (n == 0) revert SettlementLedgerEmptyBatch();
        Ctx memory ctx = _prepare(terms, offset, n);
        ctx.start = start;
        ctx.end = end;
        _checkAndDedupe(ctx, _recorded[agreementId]);
        _hashAndSplit(ctx);
        _checkConsent(ctx);
        batchId = _commit(agreementId, terms, ctx);
    }

    /// @dev Allocates the memory of a `_record` call and fills in what the passes read.
    function _prepare(IPartnershipAgreements.AgreementTerms calldata terms, uint256 offset, uint256 n)
        private
        pure
        returns (Ctx memory ctx)
    {
        uint256 partyCount = terms.parties.length;
        uint256[] memory shares = new uint256[](partyCount);
        for (uint256 j = 1; j < partyCount; ++j) {
            shares[j] = terms.parties[j].share;
        }
        ctx.n = n;
        ctx.shares = shares;
        ctx.sums = new uint256[](partyCount);
        ctx.rate = terms.commissionRate;
        ctx.attributionWindow = terms.attributionWindow;
        address partner = terms.partner;
        bytes4 selector = IConsentRegistry.areConsentedAt.selector;
        uint256 purpose = Purposes.PRODUCT_RECOMMENDATION;
        uint256 ev;
        uint256 leaves;
        uint256 args;
        assembly ("memory-safe") {
            ev := mload(0x40)
            let size := mul(n, 0x60)
            mstore(add(ev, 0x20), 0x40)
            mstore(add(ev, 0x40), n)
            calldatacopy(add(ev, 0x60), offset, size)
            leaves := add(add(ev, 0x60), size)
            let callData := add(leaves, shl(5, n))
            mstore(callData, selector)
            args := add(callData, 4)
            mstore(args, 0x80) // subjects
            mstore(add(args, 0x20), partner)
            mstore(add(args, 0x40), purpose)
            mstore(add(args, 0x60), add(0xa0, shl(5, n))) // times
            mstore(add(args, 0x80), n)
            mstore(add(args, add(0xa0, shl(5, n))), n)
            mstore(0x40, add(args, add(0xc0, shl(6, n))))
        }
        ctx.ev = ev;
        ctx.leaves = leaves;
        ctx.args = args;
    }

    /// @dev Pass 1: the conversion rule for every conversion, the dedupe against the agreement's bitmap
    /// `recorded` (each bitmap word read and written once per run of ids in it, so duplicates within the
    /// batch are caught too), and the latest conversion time.
    function _checkAndDedupe(Ctx memory ctx, mapping(uint256 => uint256) storage recorded) private {
        uint256 first = ctx.ev + 0x60;
        uint256 last = first + ctx.n * 0x60;
        uint256 start = ctx.start;
        uint256 end = ctx.end;
        uint256 window = ctx.attributionWindow;
        uint256 failures;
        ConversionData data;
        bytes32 subject;
        uint256 maxTime;
        assembly ("memory-safe") {
            // word w of the bitmap lives at keccak256(w, recorded.slot), as Solidity lays out a mapping
            mstore(0x20, recorded.slot)
            let wordIndex := not(0)
            let word := 0
            for { let m := first } lt(m, last) { m := add(m, 0x60) } {
                let d := mload(m)
                let id := and(d, 0xffffffffffffffff)
                let time := and(shr(64, d), 0xffffffffff)
                // The conversion rule, one FAIL_ bit per check: id non-zero, value non-zero, time not after
                // now, start <= time < end, time - recommendedAt <= window (it wraps around, and fails,
                // when recommendedAt > time).
                failures := or(
                    or(iszero(id), shl(1, iszero(shr(144, d)))),
                    or(
                        or(shl(2, gt(time, timestamp())), shl(3, or(lt(time, start), iszero(lt(time, end))))),
                        shl(4, gt(sub(time, and(shr(104, d), 0xffffffffff)), window))
                    )
                )
                if failures {
                    data := d
                    subject := mload(add(m, 0x40))
                    break
                }
                if iszero(eq(shr(8, id), wordIndex)) {
                    if iszero(eq(wordIndex, not(0))) {
                        mstore(0x00, wordIndex)
                        sstore(keccak256(0x00, 0x40), word)
                    }
                    wordIndex := shr(8, id)
                    mstore(0x00, wordIndex)
                    word := sload(keccak256(0x00, 0x40))
                }
                let bit := shl(and(id, 0xff), 1)
                if and(word, bit) {
                    failures := FAIL_DUPLICATE
                    data := d
                    subject := mload(add(m, 0x40))
                    break
                }
                word := or(word, bit)
                if gt(time, maxTime) { maxTime := time }
            }
            if iszero(failures) {
                mstore(0x00, wordIndex)
                sstore(keccak256(0x00, 0x40), word)
            }
        }
        if (failures != 0) _revertConversion(failures, data, subject, start, end);
        ctx.maxTime = maxTime;
    }

    /// @dev Pass 2: the leaves, the consent-check arguments (subjects and times) and the split (the rule of
    /// `_split`, summed per party: parties[0]'s sum is set from the total in `_commit`).
    function _hashAndSplit(Ctx memory ctx) private pure {
        uint256 n = ctx.n;
        uint256 m = ctx.ev + 0x60;
        uint256 leaf = ctx.leaves;
        // subject i at leaf i + subjectsFromLeaves, time i one array further
        uint256 subjectsFromLeaves = ctx.args + 0xa0 - leaf;
        uint256 rate = ctx.rate;
        uint256[] memory shares = ctx.shares;
        uint256[] memory sums = ctx.sums;
        uint256 total;
        assembly ("memory-safe") {
            let end := add(m, mul(n, 0x60))
            let timesFromSubjects := add(shl(5, n), 0x20)
            let sumsFromShares := sub(sums, shares)
            let lastShare := add(shares, shl(5, mload(shares)))
            for {} lt(m, end) {
                m := add(m, 0x60)
                leaf := add(leaf, 0x20)
            } {
                let d := mload(m)
                mstore(leaf, keccak256(m, 0x60))
                let subject := add(leaf, subjectsFromLeaves)
                mstore(subject, mload(add(m, 0x40)))
                mstore(add(subject, timesFromSubjects), and(shr(64, d), 0xffffffffff))
                // value < 2^112 and rate, shares <= 1e6: nothing below overflows.
                let c := div(mul(shr(144, d), rate), 1000000)
                total := add(total, c)
                // parties 1.. (shares[0] is unused)
                for { let sp := add(shares, 0x40) } iszero(gt(sp, lastShare)) { sp := add(sp, 0x20) } {
                    let acc := add(sp, sumsFromShares)
                    mstore(acc, add(mload(acc), div(mul(c, mload(sp)), 1000000)))
                }
            }
        }
        ctx.total = total;
    }

    /// @dev Pass 3: one `areConsentedAt` call for the batch; reverts at the first subject without consent.
    function _checkConsent(Ctx memory ctx) private view {
        address reg = address(_registry);
        uint256 n = ctx.n;
        uint256 args = ctx.args;
        uint256 first = ctx.ev + 0x60;
        uint256 failures;
        ConversionData data;
        bytes32 subject;
        assembly ("memory-safe") {
            if iszero(staticcall(gas(), reg, sub(args, 4), add(4, add(0xc0, shl(6, n))), 0, 0)) {
                let p := mload(0x40)
                returndatacopy(p, 0, returndatasize())
                revert(p, returndatasize())
            }
            // bool[] returned as (0x20, n, items): copy the items over the times, no longer needed.
            if lt(returndatasize(), add(0x40, shl(5, n))) { revert(0, 0) }
            let out := add(args, add(0xc0, shl(5, n)))
            returndatacopy(out, 0x40, shl(5, n))
            let end := add(out, shl(5, n))
            for { let p := out } lt(p, end) { p := add(p, 0x20) } {
                if iszero(mload(p)) {
                    failures := FAIL_NO_CONSENT
                    let m := add(first, mul(shr(5, sub(p, out)), 0x60))
                    data := mload(m)
                    subject := mload(add(m, 0x40))
                    break
                }
            }
        }
        if (failures != 0) _revertConversion(failures, data, subject, ctx.start, ctx.end);
    }

    /// @dev Pass 4: the batch, the running totals (each written once) and the event.
    function _commit(uint256 agreementId, IPartnershipAgreements.AgreementTerms calldata terms, Ctx memory ctx)
        private
        returns (uint256 batchId)
    {
        uint256[] memory sums = ctx.sums;
        uint256 partyCount = sums.length;
        unchecked {
            uint256 others;
            for (uint256 j = 1; j < partyCount; ++j) {
                others += sums[j];
            }
            sums[0] = ctx.total - others;
            batchId = _nextBatchId++;
        }
        bytes32 root = _merkleRoot(ctx.leaves, ctx.n);
        {
            Batch storage b = _batches[batchId];
            uint256 amount0 = sums[0];
            if (amount0 > MASK128) revert SettlementLedgerBatchTooLarge(batchId);
            b.head = SafeCast.toUint48(agreementId) | (ctx.n << COUNT_SHIFT)
                | ((ctx.maxTime + terms.validationWindow) << FINAL_AFTER_SHIFT) | (partyCount << PARTY_COUNT_SHIFT)
                | (amount0 << AMOUNT0_SHIFT);
            b.root = root;
            for (uint256 j = 1; j < partyCount; j += 2) {
                uint256 lo = sums[j];
                uint256 hi = j + 1 < partyCount ? sums[j + 1] : 0;
                if (lo > MASK128 || hi > MASK128) revert SettlementLedgerBatchTooLarge(batchId);
                if (lo | hi != 0) b.pairs[(j - 1) >> 1] = lo | (hi << 128);
            }
        }
        {
            mapping(address => Totals) storage totals = _totals[agreementId];
            for (uint256 j; j < partyCount; ++j) {
                uint256 a = sums[j];
                if (a != 0) totals[terms.parties[j].account].provisional += a;
            }
        }
        bytes32 topic0 = ConversionsRecorded.selector;
        uint256 ev = ctx.ev;
        uint256 size = 0x60 + ctx.n * 0x60;
        assembly ("memory-safe") {
            mstore(ev, root)
            log3(ev, size, topic0, agreementId, batchId)
        }
    }

    /// @dev Reverts with the named error of the first of `failures` (`FAIL_` bits) for the conversion with
    /// data `d` and subject `subject`, given the agreement's in-force window `[start, end)`.
    function _revertConversion(uint256 failures, ConversionData d, bytes32 subject, uint256 start, uint256 end)
        private
        pure
    {
        uint64 id = d.id();
        if (failures & FAIL_ZERO_ID != 0) revert SettlementLedgerZeroConversionId();
        if (failures & FAIL_ZERO_VALUE != 0) revert SettlementLedgerZeroValue(id);
        if (failures & FAIL_FUTURE != 0) revert SettlementLedgerInvalidConversionTime(id, d.time());
        if (failures & FAIL_OUTSIDE_TERM != 0) {
            revert SettlementLedgerOutsideAgreementTerm(id, d.time(), uint40(start), uint40(end));
        }
        if (failures & FAIL_OUTSIDE_ATTRIBUTION != 0) {
            revert SettlementLedgerOutsideAttributionWindow(id, d.recommendedAt(), d.time());
        }
        if (failures & FAIL_DUPLICATE != 0) revert SettlementLedgerDuplicateConversion(id);
        revert SettlementLedgerNoConsent(id, subject);
    }

    /// @dev The Merkle root of the `n` leaves at `leaves` (see `ISettlementLedger`), computed in place.
    function _merkleRoot(uint256 leaves, uint256 n) private pure returns (bytes32 root) {
        assembly ("memory-safe") {
            for {} gt(n, 1) {} {
                let half := shr(1, n)
                for { let j := 0 } lt(j, half) { j := add(j, 1) } {
                    let a := mload(add(leaves, shl(6, j)))
                    let b := mload(add(leaves, add(shl(6, j), 0x20)))
                    switch lt(a, b)
                    case 1 {
                        mstore(0x00, a)
                        mstore(0x20, b)
                    }
                    default {
                        mstore(0x00, b)
                        mstore(0x20, a)
                    }
                    mstore(add(leaves, shl(5, j)), keccak256(0x00, 0x40))
                }
                switch and(n, 1)
                case 1 {
                    mstore(add(leaves, shl(5, half)), mload(add(leaves, shl(5, sub(n, 1)))))
                    n := add(half, 1)
                }
                default { n := half }
            }
            root := mload(leaves)
        }
    }
}
