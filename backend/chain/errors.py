"""Named errors of the chain layer.

Every failure a caller can act on has its own class and a message that says what to do next:

- ``ChainUnreachable``, ``WrongChain``, ``MissingKey``, ``InsufficientFunds``, ``TransactionTimeout``,
  ``DeploymentNotFound`` for the connection and the node;
- ``ContractReverted`` for reverts, with one subclass per custom error. The subclasses are generated from the
  ``error`` entries of the committed artifacts' ABIs (``contracts/artifacts/*.json``), plus OpenZeppelin's
  errors, so a new error in the Solidity sources becomes a Python class on the next compile. Reach them as
  attributes of this module (``errors.ConsentRegistryInvalidSignature``) or by name with ``error_class``.
  ``Error(string)`` reverts become ``RevertedWithReason`` and panics ``Panic``.

``decode_revert(data)`` maps raw revert data (the 4-byte selector and ABI-encoded arguments) to an instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"
CONTRACT_NAMES = ("ConsentRegistry", "PartnershipAgreements", "SettlementLedger")

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")


# ------------------------------------------------------------------------------------ connection errors


class ChainError(Exception):
    """Base of every error raised by ``backend.chain``."""

    #: The command-line option or environment variable the user should look at, where there is one.
    option: str | None = None

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if option is not None:
            self.option = option

    def __str__(self) -> str:
        return self.message


class ChainUnreachable(ChainError):
    """The node does not answer (not running, wrong URL, connection refused or timed out)."""

    def __init__(self, url: str, detail: str = "", *, option: str = "KNOWLEDGER_RPC_URL") -> None:
        self.url = url
        self.detail = detail
        msg = f"cannot reach {url}: is the node running? is {option} right?"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg, option=option)


class WrongChain(ChainError):
    """The node serves another chain than the one expected (chain id mismatch)."""

    def __init__(self, actual: int, expected: int, *, option: str = "KNOWLEDGER_RPC_URL") -> None:
        self.actual = actual
        self.expected = expected
        super().__init__(
            f"Connected to chain {actual}, expected {expected}: is {option} right?", option=option
        )


class MissingKey(ChainError):
    """No private key is available to sign for the sender."""

    def __init__(
        self, message: str | None = None, *, address: str | None = None, option: str | None = None
    ) -> None:
        self.address = address
        if message is None:
            who = f" for {address}" if address else ""
            message = (
                f"no private key{who}: set KNOWLEDGER_PRIVATE_KEY, or pass --keystore PATH with "
                "KNOWLEDGER_KEYSTORE_PASSWORD set"
            )
        super().__init__(message, option=option or "KNOWLEDGER_PRIVATE_KEY")


class InsufficientFunds(ChainError):
    """The sender cannot pay for the gas (and value) of what it is about to send."""

    def __init__(
        self, address: str, balance: int | None, needed: int | None, what: str = "this transaction"
    ) -> None:
        self.address = address
        self.balance = balance
        self.needed = needed
        if balance is not None and needed is not None:
            amounts = f"has {_eth(balance)} but {what} needs about {_eth(needed)}"
        else:
            amounts = f"cannot pay for {what}"
        super().__init__(
            f"{address} {amounts}: fund this account or use another key (KNOWLEDGER_PRIVATE_KEY)",
            option="KNOWLEDGER_PRIVATE_KEY",
        )


class TransactionTimeout(ChainError):
    """The transaction was sent but no receipt came within the timeout."""

    def __init__(self, tx_hash: str, seconds: float) -> None:
        self.tx_hash = tx_hash
        super().__init__(
            f"transaction {tx_hash} was not mined within {seconds:.0f}s: check the node and the gas price, "
            "then look the hash up before sending again"
        )


class TransactionFailed(ChainError):
    """The transaction failed without revert data (e.g. out of gas)."""


class DeploymentNotFound(ChainError):
    """A manifest points at an address without contract code on this chain."""


def _eth(wei: int) -> str:
    return f"{wei / 1e18:.6f} ETH ({wei} wei)"


# ---------------------------------------------------------------------------------------------- reverts

_TIME_PARAMS = {
    "deadline",
    "timestamp",
    "expiresAt",
    "maxExpiresAt",
    "time",
    "recommendedAt",
    "finalAfter",
    "validFrom",
    "validUntil",
    "start",
    "end",
}

_PURPOSES = {0: "Profiling", 1: "ProductRecommendation", 2: "MarketingContact", 3: "DataSharing"}
_STATUSES = {0: "None", 1: "Proposed", 2: "Active", 3: "Terminated", 4: "Superseded"}
_ROLES = {
    b"\0" * 32: "DEFAULT_ADMIN_ROLE",
    bytes(keccak(text="NOTICE_ADMIN_ROLE")): "NOTICE_ADMIN_ROLE",
}

PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "value out of range for an enum",
    0x22: "corrupt storage byte array",
    0x31: "pop() on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory (allocation too large)",
    0x51: "call to an uninitialised internal function",
}

DEFAULT_HINT = "see the error's NatSpec in contracts/interfaces/ for when it is raised"

#: What to do next, per custom error. ``{name}`` fields are the error's arguments, formatted.
HINTS: dict[str, str] = {
    # ConsentRegistry
    "ConsentRegistryUnauthorizedRegistrar": (
        "{caller} is not the registry's registrar: send registrar writes from the registrar account "
        "(consent.registrar()), or relay a wallet-signed consent with grant_by_sig"
    ),
    "ConsentRegistryNotGranted": (
        "subject {subject} has no unrevoked grant for partner {partner}, purpose {purpose} (never granted or "
        "already revoked): read consent.consent_of(subject, partner, purpose) before revoking"
    ),
    "ConsentRegistrySubjectNotAWallet": (
        "subject {subject} is a pseudonym, not a wallet: signed grants and revocations need "
        "subject_for_wallet(signer); use the registrar path for pseudonyms"
    ),
    "ConsentRegistrySubjectIsAWallet": (
        "subject {subject} is a wallet: only the wallet itself may write its consents; have the user sign "
        "the grant or revocation (consent.sign_grant / sign_revocation) and relay it with grant_by_sig or "
        "revoke_by_sig"
    ),
    "ConsentRegistryInvalidGrant": (
        "the grant for subject {subject} failed the registry's validation for no named reason (terms "
        "{terms}, receipt {receiptHash}): this points at a registry bug; check the terms and report it"
    ),
    "ConsentRegistryInvalidSignature": (
        "the signature recovers to {signer}, not to the wallet of subject {subject}: sign with the subject's "
        "own key over this registry's EIP-712 domain (its chain id and address) and exactly these terms"
    ),
    "ConsentRegistrySignatureExpired": (
        "the signature's deadline {deadline} is before the block time {timestamp}: have the user sign again "
        "with a later deadline"
    ),
    "ConsentRegistryInvalidNonce": (
        "the signature is for nonce {given} but the registry expects {expected} for subject {subject} "
        "(a replayed or stale signature): read consent.nonce_of(subject, partner, purpose) and sign again"
    ),
    "ConsentRegistryInvalidPartner": (
        "the partner is {partner}: put the partner's account address (not zero) in ConsentTerms"
    ),
    "ConsentRegistryUnknownPurpose": "purpose {purpose} is not 0..3: use a member of Purpose",
    "ConsentRegistryInvalidExpiry": (
        "expiresAt {expiresAt} must be after the block time and at most {maxExpiresAt} (now + "
        "maxConsentDuration): choose an expiry inside that window"
    ),
    "ConsentRegistryInvalidNoticeVersion": (
        "notice versions must be >= 1 (got platform {platformNoticeVersion}, partner "
        "{partnerNoticeVersion}): "
        "read consent.platform_notice_version() and consent.partner_notice_version(partner); a partner "
        "without a notice needs set_partner_notice_version first"
    ),
    "ConsentRegistryMissingReceipt": (
        "the receipt hash for subject {subject} is zero: pass the hash of the consent receipt shown to "
        "the user"
    ),
    "ConsentRegistryNoticeVersionNotIncreasing": (
        "the new notice version {given} must be greater than the current {current}"
    ),
    "ConsentRegistryLengthMismatch": "pass as many times ({times}) as subjects ({subjects})",
    # PartnershipAgreements
    "PartnershipAgreementsInvalidShares": (
        "the parties' shares sum to {sum}, not 1000000 (parts per million): make them add up exactly"
    ),
    "PartnershipAgreementsInvalidParties": "an agreement needs 2 to 32 parties, got {count}",
    "PartnershipAgreementsInvalidParty": (
        "party #{index} ({account}) is the zero address or listed twice: list each party once"
    ),
    "PartnershipAgreementsInvalidCommissionRate": (
        "commission rate {commissionRate} is above 1000000 (100%): give the rate in parts per million"
    ),
    "PartnershipAgreementsInvalidValidity": (
        "the validity period [{validFrom}, {validUntil}) is empty or already over: choose valid_until after "
        "valid_from and after now"
    ),
    "PartnershipAgreementsInvalidTerms": "the terms are invalid: {reason}; fix that field of AgreementTerms",
    "PartnershipAgreementsNotAParty": (
        "{account} is not a party of the agreement: send from one of the parties' accounts (for an "
        "amendment, "
        "a party of the agreement it supersedes)"
    ),
    "PartnershipAgreementsUnknownAgreement": (
        "no agreement has id {agreementId}: take the id from the AgreementProposed event "
        "(agreements.agreement_count() is the latest)"
    ),
    "PartnershipAgreementsTermsMismatch": (
        "these terms hash to {given} but agreement {agreementId} stores {expected}: pass exactly the "
        "proposed "
        "terms (agreements.terms_of(id) rebuilds them from the AgreementProposed event)"
    ),
    "PartnershipAgreementsNotProposed": (
        "agreement {agreementId} is {status}: only a Proposed agreement can be accepted"
    ),
    "PartnershipAgreementsAlreadyAccepted": "{party} has already accepted agreement {agreementId}: "
    "nothing to do",
    "PartnershipAgreementsInvalidSignature": (
        "the acceptance signature is not valid for {party}: sign AcceptAgreement(agreementId, termsHash, "
        "party, "
        "deadline) with the party's key over this contract's EIP-712 domain (sign_agreement_acceptance)"
    ),
    "PartnershipAgreementsSignatureExpired": (
        "the acceptance deadline {deadline} is before the block time {timestamp}: sign again with a later "
        "deadline"
    ),
    "PartnershipAgreementsNotActive": (
        "agreement {agreementId} is not active (not yet accepted by every party, terminated, superseded, or "
        "outside its validity period; conversions need an agreement that was activated): check "
        "agreements.agreement_of(id)"
    ),
    "PartnershipAgreementsCannotTerminate": (
        "agreement {agreementId} is {status}: only a Proposed or Active agreement can be terminated"
    ),
    "PartnershipAgreementsCannotSupersede": (
        "amendment {agreementId} cannot activate: agreement {previousId} it supersedes is {status} (already "
        "superseded by another amendment, or terminated); terminate this amendment and propose a new one if "
        "needed"
    ),
    "PartnershipAgreementsPartnerChanged": (
        "an amendment of agreement {previousId} must keep its partner, not {partner}: set partner to the "
        "superseded agreement's partner (agreements.terms_of(id).partner), or propose a new agreement"
    ),
    # SettlementLedger
    "SettlementLedgerNotReporter": (
        "{caller} is not the agreement's reporter {reporter}: send conversions from the reporter named in "
        "the terms"
    ),
    "SettlementLedgerEmptyBatch": "the batch has no conversions: send at least one",
    "SettlementLedgerZeroConversionId": "a conversion has id 0: conversion ids start at 1",
    "SettlementLedgerDuplicateConversion": (
        "conversion {conversionId} is already recorded (or twice in this batch): each conversion is settled "
        "once per agreement; check ledger.conversion_status(agreement_id, id) and drop it from the batch"
    ),
    "SettlementLedgerZeroValue": "conversion {conversionId} has value 0: only conversions with a value "
    "settle",
    "SettlementLedgerInvalidConversionTime": (
        "conversion {conversionId}'s time {time} is after the current block: use the real conversion time"
    ),
    "SettlementLedgerOutsideAgreementTerm": (
        "conversion {conversionId} at {time} is outside the agreement's in-force window [{start}, {end}) "
        "(from max(valid_from, activation) to min(valid_until, termination or supersession)): it was not "
        "earned under this agreement"
    ),
    "SettlementLedgerOutsideAttributionWindow": (
        "conversion {conversionId} at {time} was recommended at {recommendedAt}: the recommendation must "
        "come "
        "before the conversion and within the agreement's attribution window, otherwise it is not "
        "attributable"
    ),
    "SettlementLedgerNoConsent": (
        "subject {subject} had no ProductRecommendation consent for the agreement's partner at the time of "
        "conversion {conversionId}: it cannot be settled (check consent.is_consented_at)"
    ),
    "SettlementLedgerUnknownBatch": "no batch has id {batchId}: ledger.batch_count() is the latest",
    "SettlementLedgerUnknownConversion": (
        "conversion {conversionId} is not in that batch (the Merkle proof does not verify): pass the "
        "conversion "
        "exactly as recorded and merkle_proof(batch_conversions, index)"
    ),
    "SettlementLedgerAlreadyReversed": "conversion {conversionId} is already reversed: nothing to do",
    "SettlementLedgerConversionFinal": (
        "conversion {conversionId} is final (its validation window passed or its batch was finalized): it "
        "can "
        "no longer be reversed"
    ),
    "SettlementLedgerNotYetFinal": (
        "batch {batchId} can be finalized from {finalAfter}: wait until then (its conversions can still be "
        "reversed)"
    ),
    "SettlementLedgerBatchAlreadyFinalized": "batch {batchId} is already finalized: nothing to do",
    "SettlementLedgerBatchTooLarge": "batch {batchId} is too large: split the conversions into smaller "
    "batches",
    # OpenZeppelin
    "AccessControlUnauthorizedAccount": (
        "{account} lacks {neededRole}: send from an account that holds it (the deployment's admin), or "
        "have the "
        "admin grant it"
    ),
    "AccessControlBadConfirmation": "renounceRole must be called by the account itself, passing its own "
    "address",
    "ECDSAInvalidSignature": "the signature is malformed: sign again",
    "ECDSAInvalidSignatureLength": "the signature has {length} bytes: pass a 65-byte (r, s, v) signature",
    "ECDSAInvalidSignatureS": "the signature's s value is in the upper half order: sign again with a "
    "standard signer",
    "InvalidShortString": "a string does not fit the contract's short-string storage",
    "StringTooLong": "a string is too long for the contract's short-string storage",
    "MerkleProofInvalidMultiproof": "the Merkle multiproof is malformed: rebuild it from the batch",
    "SafeCastOverflowedUintDowncast": "value {value} does not fit in {bits} bits: pass a smaller value",
    "ReentrancyGuardReentrantCall": "a reentrant call was refused",
    "FailedCall": "a low-level call failed",
}

#: OpenZeppelin 5.x errors a revert may carry even if an ABI does not declare them.
OZ_ERRORS = (
    "AccessControlUnauthorizedAccount(address account, bytes32 neededRole)",
    "AccessControlBadConfirmation()",
    "ECDSAInvalidSignature()",
    "ECDSAInvalidSignatureLength(uint256 length)",
    "ECDSAInvalidSignatureS(bytes32 s)",
    "InvalidShortString()",
    "StringTooLong(string str)",
    "MerkleProofInvalidMultiproof()",
    "SafeCastOverflowedUintDowncast(uint8 bits, uint256 value)",
    "ReentrancyGuardReentrantCall()",
    "FailedCall()",
)


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples expanded)."""
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


@dataclass(frozen=True)
class ErrorSpec:
    name: str
    inputs: tuple[tuple[str, str], ...]  # (name, canonical type)
    internal_types: tuple[str, ...]
    contracts: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(t for _, t in self.inputs)})"

    @property
    def selector(self) -> bytes:
        return bytes(keccak(text=self.signature))[:4]

    @classmethod
    def from_abi(cls, entry: Mapping[str, Any], contract: str) -> ErrorSpec:
        inputs = tuple((str(p.get("name") or f"arg{i}"), abi_type(p)) for i, p in enumerate(entry["inputs"]))
        internal = tuple(str(p.get("internalType", p["type"])) for p in entry["inputs"])
        return cls(str(entry["name"]), inputs, internal, (contract,))

    @classmethod
    def from_signature(cls, text: str, contract: str = "OpenZeppelin") -> ErrorSpec:
        name, _, rest = text.partition("(")
        params = [p.strip() for p in rest.rstrip(")").split(",") if p.strip()]
        inputs = tuple((p.split()[1], p.split()[0]) for p in params)
        return cls(name, inputs, tuple(t for _, t in inputs), (contract,))


def _format_value(name: str, type_: str, value: Any) -> str:
    if isinstance(value, bytes):
        if type_ == "bytes32" and value in _ROLES and "role" in name.lower():
            return _ROLES[value]
        return "0x" + value.hex()
    if type_ == "address":
        return str(to_checksum_address(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        if name == "purpose" and value in _PURPOSES:
            return f"{value} ({_PURPOSES[value]})"
        if name == "status" and value in _STATUSES:
            return _STATUSES[value]
        if name in _TIME_PARAMS and 0 < value < 1 << 40:
            try:
                when = datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            except (OverflowError, OSError, ValueError):
                return str(value)
            return f"{value} ({when})"
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value("", "", v) for v in value) + "]"
    return str(value)


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class ContractReverted(ChainError):
    """A call or transaction reverted. Subclasses name the custom error; ``args_by_name`` holds its values.

    ``context`` says what was being done ("ConsentRegistry.grant"), ``data`` is the raw revert data.
    """

    error_name: ClassVar[str] = "revert"
    spec: ClassVar[ErrorSpec | None] = None
    hint: ClassVar[str] = (
        "the contract refused the call without saying why: check the inputs against its NatSpec"
    )

    def __init__(
        self,
        data: bytes = b"",
        values: Sequence[Any] = (),
        *,
        context: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.data = bytes(data)
        self.values = tuple(values)
        self.context = context
        spec = type(self).spec
        names = [n for n, _ in spec.inputs] if spec else []
        self.args_by_name: dict[str, Any] = dict(zip(names, self.values, strict=False))
        super().__init__(self._compose(detail))

    @property
    def selector(self) -> str:
        return "0x" + self.data[:4].hex()

    def _formatted_args(self) -> dict[str, str]:
        spec = type(self).spec
        if spec is None:
            return {}
        return {n: _format_value(n, t, v) for (n, t), v in zip(spec.inputs, self.values, strict=False)}

    def _compose(self, detail: str | None) -> str:
        where = f"{self.context} reverted" if self.context else "reverted"
        formatted = self._formatted_args()
        spec = type(self).spec
        if spec is not None:
            raw = {n: _format_value("", t, v) for (n, t), v in zip(spec.inputs, self.values, strict=False)}
            shown = ", ".join(f"{k}={v}" for k, v in raw.items())
            head = f"{where} with {self.error_name}({shown})"
        else:
            head = f"{where}: {detail}" if detail else where
        hint = type(self).hint.format_map(_SafeDict(formatted))
        return f"{head}: {hint}"


class RevertedWithReason(ContractReverted):
    """``revert("...")`` / ``require(cond, "...")``: ``Error(string)``."""

    error_name = "Error"
    hint = "the contract's own reason; fix the input it names"

    def __init__(
        self,
        data: bytes = b"",
        values: Sequence[Any] = (),
        *,
        context: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.reason = str(values[0]) if values else (detail or "")
        super().__init__(data, values, context=context, detail=f"Error({self.reason!r})")


class Panic(ContractReverted):
    """A Solidity panic (``Panic(uint256)``): an assertion, overflow, division by zero, bad index..."""

    error_name = "Panic"
    hint = "this is a bug or an input out of range: report it with the call's inputs"

    def __init__(
        self,
        data: bytes = b"",
        values: Sequence[Any] = (),
        *,
        context: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.code = int(values[0]) if values else -1
        desc = PANIC_CODES.get(self.code, "unknown panic code")
        super().__init__(data, values, context=context, detail=f"Panic(0x{self.code:02x}): {desc}")


class UnknownRevert(ContractReverted):
    """Revert data that matches no known error (or no data at all)."""

    hint = (
        "no known error matches the revert data: recompile (python -m backend.chain.compiler) if the "
        "contracts "
        "changed, or check the inputs against the NatSpec"
    )


_SPECS: dict[bytes, ErrorSpec] = {}
_CLASSES: dict[str, type[ContractReverted]] = {}


def _make_class(spec: ErrorSpec) -> type[ContractReverted]:
    doc = f"Custom error ``{spec.signature}`` ({', '.join(spec.contracts)})."
    cls = type(
        spec.name,
        (ContractReverted,),
        {
            "error_name": spec.name,
            "spec": spec,
            "hint": HINTS.get(spec.name, DEFAULT_HINT),
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": spec.name,
        },
    )
    return cls


def _register(specs: Iterable[ErrorSpec]) -> None:
    for spec in specs:
        known = _SPECS.get(spec.selector)
        if known is not None:
            merged = ErrorSpec(
                known.name,
                known.inputs,
                known.internal_types,
                tuple(dict.fromkeys(known.contracts + spec.contracts)),
            )
            # Prefer the ABI's parameter names over the OpenZeppelin fallback's.
            if "OpenZeppelin" in known.contracts and "OpenZeppelin" not in spec.contracts:
                merged = ErrorSpec(spec.name, spec.inputs, spec.internal_types, merged.contracts)
            spec = merged
        _SPECS[spec.selector] = spec
        existing = _CLASSES.get(spec.name)
        if existing is not None and existing.spec is not None and existing.spec.signature == spec.signature:
            existing.spec = spec
        else:
            cls = _make_class(spec)
            _CLASSES[spec.name] = cls
            globals()[spec.name] = cls


def specs_from_abi(abi: Sequence[Mapping[str, Any]], contract: str) -> list[ErrorSpec]:
    return [ErrorSpec.from_abi(e, contract) for e in abi if e.get("type") == "error"]


def load_errors(artifacts_dir: Path = ARTIFACTS_DIR) -> None:
    """(Re)generate the error classes from the artifacts on disk (missing artifacts are skipped: the module
    must import before the first compile)."""
    _register(ErrorSpec.from_signature(s) for s in OZ_ERRORS)
    for name in CONTRACT_NAMES:
        path = artifacts_dir / f"{name}.json"
        if not path.is_file():
            continue
        abi = json.loads(path.read_text(encoding="utf-8")).get("abi", [])
        _register(specs_from_abi(abi, name))


def register_abi(abi: Sequence[Mapping[str, Any]], contract: str) -> None:
    """Add the errors of another ABI (a contract deployed next to ours)."""
    _register(specs_from_abi(abi, contract))


def error_class(name: str) -> type[ContractReverted]:
    """The class of a custom error by name; ``KeyError`` listing the known ones otherwise."""
    try:
        return _CLASSES[name]
    except KeyError:
        raise KeyError(f"no error named {name!r}; known: {', '.join(sorted(_CLASSES))}") from None


def known_errors() -> dict[str, type[ContractReverted]]:
    return dict(_CLASSES)


def selector_of(name: str) -> str:
    cls = error_class(name)
    assert cls.spec is not None
    return "0x" + cls.spec.selector.hex()


def decode_revert(
    data: bytes | str | None, *, context: str | None = None, message: str | None = None
) -> ContractReverted:
    """The named exception for raw revert data (never raises itself)."""
    if isinstance(data, str):
        text = data[2:] if data.startswith(("0x", "0X")) else data
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
            message = message or data
    else:
        raw = bytes(data or b"")
    if len(raw) < 4:
        return UnknownRevert(raw, context=context, detail=message or "no revert data")
    selector, payload = raw[:4], raw[4:]
    if selector == ERROR_STRING_SELECTOR:
        try:
            (reason,) = abi_decode(["string"], payload)
        except Exception:  # malformed: keep the raw data
            return UnknownRevert(raw, context=context, detail=f"malformed Error(string) 0x{raw.hex()}")
        return RevertedWithReason(raw, (reason,), context=context)
    if selector == PANIC_SELECTOR:
        try:
            (code,) = abi_decode(["uint256"], payload)
        except Exception:
            code = -1
        return Panic(raw, (code,), context=context)
    spec = _SPECS.get(selector)
    if spec is None:
        return UnknownRevert(
            raw, context=context, detail=f"unknown error selector 0x{selector.hex()} (data 0x{raw.hex()})"
        )
    try:
        values = abi_decode([t for _, t in spec.inputs], payload)
    except Exception:
        return UnknownRevert(
            raw, context=context, detail=f"{spec.name} with undecodable arguments 0x{payload.hex()}"
        )
    fixed = tuple(_checksum_addresses(t, v) for (_, t), v in zip(spec.inputs, values, strict=True))
    return _CLASSES[spec.name](raw, fixed, context=context)


def _checksum_addresses(type_: str, value: Any) -> Any:
    if type_ == "address":
        return str(to_checksum_address(value))
    if type_ == "address[]":
        return [str(to_checksum_address(v)) for v in value]
    return value


load_errors()


def __getattr__(name: str) -> type[ContractReverted]:
    """Generated error classes by name (``errors.SettlementLedgerNoConsent``), also after a recompile."""
    if name.startswith("__"):
        raise AttributeError(name)
    cls = _CLASSES.get(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no error class {name!r}")
    return cls
