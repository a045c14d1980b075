"""KnowLedger's chain layer: the only package in the project that imports web3.

Everything else (the recommender, the API service, the CLI) talks to the chain through these names: typed
clients for the three contracts, plain dataclasses for their values, named errors that say what to do
next, and connections to the three targets (in-process eth-tester, an anvil devnet, any JSON-RPC node).

    from backend.chain import connect_embedded, deploy_all, ConsentTerms, Purpose

    chain = connect_embedded()
    d = deploy_all(chain)
    d.consent.set_partner_notice_version(partner, 1)
    terms = d.consent.current_terms(partner, Purpose.PRODUCT_RECOMMENDATION, expires)
    d.consent.grant(subject, terms, receipt)

Error classes are imported from ``backend.chain.errors`` (``from backend.chain.errors import
SettlementLedgerNoConsent``); the module map is in ``docs/chain-layer-api.md``.
"""

from __future__ import annotations

from . import errors
from .abi import ContractHandle, FunctionCall
from .agreements import AgreementsClient
from .async_rpc import AsyncHeads
from .client import ChainClient
from .connect import connect, connect_devnet, connect_embedded, connect_rpc, load_key
from .consent import ConsentRegistryClient
from .constants import CONTRACT_NAMES, ChainTarget
from .deploy import (
    DEFAULT_MAX_CONSENT_DURATION,
    ContractRecord,
    Deployment,
    Manifest,
    NamedAccounts,
    check_funds,
    deploy_all,
    estimate_deployment_cost,
    load_deployment,
)
from .devnet import ANVIL_CHAIN_ID, AnvilNode, AnvilUnavailable, anvil_available, dev_wallets
from .eip712 import (
    agreement_acceptance_typed_data,
    consent_grant_typed_data,
    consent_revocation_typed_data,
    sign_agreement_acceptance,
    sign_consent_grant,
    sign_consent_revocation,
)
from .errors import (
    ChainError,
    ChainUnreachable,
    ContractReverted,
    DeploymentNotFound,
    ForeignContractError,
    InsufficientFunds,
    MissingKey,
    Panic,
    RevertedWithReason,
    TransactionFailed,
    TransactionTimeout,
    UnknownRevert,
    WrongChain,
    decode_revert,
)
from .ledger import LedgerClient
from .results import (
    BatchFinalizedEvent,
    BlockHead,
    ConsentChangeEvent,
    ConversionReversedEvent,
    ConversionsRecordedEvent,
    Event,
    TxResult,
)
from .settings import ChainSettings
from .types import (
    PURPOSE_NAMES,
    SCALE,
    AgreementState,
    AgreementStatus,
    AgreementTerms,
    BatchState,
    ConsentGrant,
    ConsentRevocation,
    ConsentState,
    ConsentTerms,
    Conversion,
    ConversionData,
    ConversionStatus,
    Party,
    Purpose,
    SignedConsentGrant,
    SignedConsentRevocation,
    Totals,
    Wallet,
    conversions_root,
    currency_code,
    merkle_proof,
    purpose_from_name,
    purposes_in_mask,
    split_commission,
    subject_for_wallet,
    wallet_for_subject,
)

__all__ = [
    "ANVIL_CHAIN_ID",
    "CONTRACT_NAMES",
    "DEFAULT_MAX_CONSENT_DURATION",
    "PURPOSE_NAMES",
    "SCALE",
    "AgreementState",
    "AgreementStatus",
    "AgreementTerms",
    "AgreementsClient",
    "AnvilNode",
    "AnvilUnavailable",
    "AsyncHeads",
    "BatchFinalizedEvent",
    "BatchState",
    "BlockHead",
    "ChainClient",
    "ChainError",
    "ChainSettings",
    "ChainTarget",
    "ChainUnreachable",
    "ConsentChangeEvent",
    "ConsentGrant",
    "ConsentRegistryClient",
    "ConsentRevocation",
    "ConsentState",
    "ConsentTerms",
    "ContractHandle",
    "ContractRecord",
    "ContractReverted",
    "Conversion",
    "ConversionData",
    "ConversionReversedEvent",
    "ConversionStatus",
    "ConversionsRecordedEvent",
    "Deployment",
    "DeploymentNotFound",
    "Event",
    "ForeignContractError",
    "FunctionCall",
    "InsufficientFunds",
    "LedgerClient",
    "Manifest",
    "MissingKey",
    "NamedAccounts",
    "Panic",
    "Party",
    "Purpose",
    "RevertedWithReason",
    "SignedConsentGrant",
    "SignedConsentRevocation",
    "Totals",
    "TransactionFailed",
    "TransactionTimeout",
    "TxResult",
    "UnknownRevert",
    "Wallet",
    "WrongChain",
    "agreement_acceptance_typed_data",
    "anvil_available",
    "check_funds",
    "connect",
    "connect_devnet",
    "connect_embedded",
    "connect_rpc",
    "consent_grant_typed_data",
    "consent_revocation_typed_data",
    "conversions_root",
    "currency_code",
    "decode_revert",
    "deploy_all",
    "dev_wallets",
    "errors",
    "estimate_deployment_cost",
    "load_deployment",
    "load_key",
    "merkle_proof",
    "purpose_from_name",
    "purposes_in_mask",
    "sign_agreement_acceptance",
    "sign_consent_grant",
    "sign_consent_revocation",
    "split_commission",
    "subject_for_wallet",
    "wallet_for_subject",
]
