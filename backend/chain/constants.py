"""Names shared by every module of the chain layer; this module imports nothing from the others.

- ``CONTRACT_NAMES``: the three contracts KnowLedger deploys, in deployment order. The compiler writes one
  artifact per name, the error generator reads their ABIs, manifests must list all three.
- ``ChainTarget``: where a ``ChainClient`` is connected (the value of ``KNOWLEDGER_CHAIN_TARGET``).
- ``REPO_ROOT`` / ``ARTIFACTS_DIR``: the checkout and its committed compiler output.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "contracts" / "artifacts"

CONTRACT_NAMES = ("ConsentRegistry", "PartnershipAgreements", "SettlementLedger")


class ChainTarget(StrEnum):
    """``embedded``: in-process eth-tester; ``devnet``: a local anvil node; ``rpc``: any JSON-RPC node."""

    EMBEDDED = "embedded"
    DEVNET = "devnet"
    RPC = "rpc"
