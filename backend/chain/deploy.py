"""Deploy the three contracts and record where they are in a manifest.

A manifest (JSON) holds what a partner needs to find and verify the deployment: chain id, addresses,
deployment transaction hashes and blocks, the deployer, the admin and registrar, and the artifacts'
``inputHash`` (the hash of the exact compiler input, so anyone can recompile and compare bytecode).
``load_deployment`` reopens a manifest and checks there is code at every address on the connected chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .agreements import AgreementsClient
from .artifacts import load_artifact
from .client import ChainClient
from .consent import ConsentRegistryClient
from .constants import CONTRACT_NAMES, ChainTarget
from .exceptions import DeploymentNotFound, InsufficientFunds, WrongChain
from .ledger import LedgerClient
from .results import Event
from .types import Wallet, checksum

DEFAULT_MAX_CONSENT_DURATION = 390 * 86_400
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ContractRecord:
    address: str
    tx_hash: str
    block_number: int
    gas_used: int = 0


@dataclass(frozen=True)
class Manifest:
    chain_id: int
    target: str
    deployer: str
    admin: str
    registrar: str
    max_consent_duration: int
    contracts: dict[str, ContractRecord]
    input_hash: str
    deployed_at: str
    version: int = MANIFEST_VERSION

    def address_of(self, name: str) -> str:
        return self.contracts[name].address

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["contracts"] = {k: asdict(v) for k, v in self.contracts.items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def write(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        try:
            contracts = {k: ContractRecord(**v) for k, v in data["contracts"].items()}
            missing = [n for n in CONTRACT_NAMES if n not in contracts]
            if missing:
                raise KeyError(", ".join(missing))
            return cls(
                chain_id=int(data["chain_id"]),
                target=str(data["target"]),
                deployer=checksum(data["deployer"]),
                admin=checksum(data["admin"]),
                registrar=checksum(data["registrar"]),
                max_consent_duration=int(data["max_consent_duration"]),
                contracts=contracts,
                input_hash=str(data["input_hash"]),
                deployed_at=str(data["deployed_at"]),
                version=int(data.get("version", MANIFEST_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentNotFound(
                f"manifest is incomplete or malformed ({exc}): redeploy with `knowledger deploy`"
            ) from exc

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise DeploymentNotFound(
                f"no deployment manifest at {path}: run `knowledger deploy --manifest {path}` first "
                "(or set KNOWLEDGER_MANIFEST_PATH)",
                option="KNOWLEDGER_MANIFEST_PATH",
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DeploymentNotFound(f"{path} is not valid JSON ({exc}): redeploy or restore it") from exc
        return cls.from_dict(data)


@dataclass
class NamedAccounts:
    """The roles the tests and the demo use, each a ``Wallet`` (an address carrying its key)."""

    admin: Wallet
    registrar: Wallet
    reporter: Wallet
    platform: Wallet
    partner: Wallet
    creator: Wallet
    outsider: Wallet

    ROLES = ("admin", "registrar", "reporter", "platform", "partner", "creator", "outsider")

    @classmethod
    def from_wallets(cls, wallets: list[Wallet]) -> NamedAccounts:
        if len(wallets) < len(cls.ROLES):
            raise ValueError(f"need {len(cls.ROLES)} accounts, the chain has {len(wallets)}")
        return cls(*wallets[: len(cls.ROLES)])

    def keys(self) -> dict[str, bytes]:
        return {r: getattr(self, r).private_key for r in self.ROLES}


@dataclass
class Deployment:
    """The three deployed contracts with their typed clients, the manifest, and (on local chains) named
    accounts."""

    client: ChainClient
    consent: ConsentRegistryClient
    agreements: AgreementsClient
    ledger: LedgerClient
    manifest: Manifest
    accounts: NamedAccounts | None = field(default=None)

    @property
    def chain(self) -> ChainClient:
        return self.client

    @property
    def addresses(self) -> dict[str, str]:
        return {n: r.address for n, r in self.manifest.contracts.items()}

    @property
    def from_block(self) -> int:
        """The block the first of the three contracts was deployed in (no event of theirs is older)."""
        return min(c.from_block for c in (self.consent, self.agreements, self.ledger))

    def events(self, from_block: int | None = None, to_block: int | str = "latest") -> list[Event]:
        """Every decoded event of the three contracts from ``from_block`` (default: ``self.from_block``) to
        ``to_block`` (inclusive), in chain order (block, then log index), read with one ``eth_getLogs``.
        ``Event.address`` says which contract emitted it (``addresses`` maps names to addresses)."""
        start = self.from_block if from_block is None else from_block
        addresses = [self.consent.address, self.agreements.address, self.ledger.address]
        events = self.client.get_logs(addresses, [], start, to_block)
        return sorted(events, key=lambda e: (e.block_number or 0, e.log_index))


def _input_hash() -> str:
    hashes = {load_artifact(n)["inputHash"] for n in CONTRACT_NAMES}
    return hashes.pop() if len(hashes) == 1 else ",".join(sorted(hashes))


def estimate_deployment_cost(
    client: ChainClient,
    admin: str,
    registrar: str,
    max_consent_duration: int = DEFAULT_MAX_CONSENT_DURATION,
    sender: str | None = None,
) -> tuple[int, int]:
    """(total gas, wei at the current max fee) for deploying the three contracts from ``sender``."""
    deployer = client.signer_for(sender).address
    plans: list[tuple[str, tuple[Any, ...]]] = [
        ("ConsentRegistry", (admin, registrar, max_consent_duration)),
        ("PartnershipAgreements", ()),
        ("SettlementLedger", (deployer, deployer)),  # the constructor only stores the two addresses
    ]
    gas = 0
    for name, args in plans:
        data = client.deploy_data(load_artifact(name), args)
        estimate = client.estimate_gas(None, data, deployer, 0, f"{name}.constructor")
        gas += estimate + estimate // 10 + 5_000
    return gas, gas * client.max_fee(client.fee_fields())


def check_funds(
    client: ChainClient,
    admin: str,
    registrar: str,
    max_consent_duration: int = DEFAULT_MAX_CONSENT_DURATION,
    sender: str | None = None,
) -> int:
    """Raise ``InsufficientFunds`` before sending anything if the deployer cannot pay; returns the cost."""
    deployer = client.signer_for(sender).address
    _, cost = estimate_deployment_cost(client, admin, registrar, max_consent_duration, sender)
    balance = client.balance(deployer)
    if balance < cost:
        raise InsufficientFunds(deployer, balance, cost, "deploying the three contracts")
    return cost


def deploy_all(
    client: ChainClient,
    admin: str | None = None,
    registrar: str | None = None,
    max_consent_duration: int = DEFAULT_MAX_CONSENT_DURATION,
    *,
    sender: str | None = None,
    check_balance: bool = True,
) -> Deployment:
    """Deploy ConsentRegistry, PartnershipAgreements and SettlementLedger from ``sender`` (default: the
    client's first account; admin and registrar default to it too)."""
    deployer = client.signer_for(sender)
    admin_ = checksum(admin) if admin else deployer.address
    registrar_ = checksum(registrar) if registrar else deployer.address
    if check_balance and client.target is not ChainTarget.EMBEDDED:
        check_funds(client, admin_, registrar_, max_consent_duration, deployer)
    registry, r1 = client.deploy(
        "ConsentRegistry", admin_, registrar_, int(max_consent_duration), sender=deployer
    )
    agreements, r2 = client.deploy("PartnershipAgreements", sender=deployer)
    ledger, r3 = client.deploy("SettlementLedger", registry.address, agreements.address, sender=deployer)
    records = {
        "ConsentRegistry": ContractRecord(registry.address, r1.tx_hash, r1.block_number, r1.gas_used),
        "PartnershipAgreements": ContractRecord(agreements.address, r2.tx_hash, r2.block_number, r2.gas_used),
        "SettlementLedger": ContractRecord(ledger.address, r3.tx_hash, r3.block_number, r3.gas_used),
    }
    manifest = Manifest(
        chain_id=client.chain_id,
        target=client.target.value,
        deployer=deployer.address,
        admin=admin_,
        registrar=registrar_,
        max_consent_duration=int(max_consent_duration),
        contracts=records,
        input_hash=_input_hash(),
        deployed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return _clients(client, manifest)


def _clients(client: ChainClient, manifest: Manifest) -> Deployment:
    first_block = min(r.block_number for r in manifest.contracts.values())
    return Deployment(
        client=client,
        consent=ConsentRegistryClient(
            client, manifest.address_of("ConsentRegistry"), admin=manifest.admin, from_block=first_block
        ),
        agreements=AgreementsClient(
            client, manifest.address_of("PartnershipAgreements"), from_block=first_block
        ),
        ledger=LedgerClient(client, manifest.address_of("SettlementLedger"), from_block=first_block),
        manifest=manifest,
    )


def load_deployment(client: ChainClient, manifest_path: Path | str | Manifest) -> Deployment:
    """Reopen a deployment: the manifest's chain must be the connected one and every address must hold "
    "code."""
    manifest = manifest_path if isinstance(manifest_path, Manifest) else Manifest.load(manifest_path)
    if manifest.chain_id != client.chain_id:
        raise WrongChain(client.chain_id, manifest.chain_id)
    for name, record in manifest.contracts.items():
        if not client.code_at(record.address):
            raise DeploymentNotFound(
                f"no contract code at {record.address} ({name}) on chain {client.chain_id}: the manifest "
                f"is from "
                "another node or an earlier devnet run; deploy again with `knowledger deploy`"
            )
    return _clients(client, manifest)
