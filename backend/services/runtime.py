"""What a running service holds: settings, the database, the chain gateway, the model, the workers.

``Runtime.start(settings)`` connects everything in order and fails with a one-line message naming the
setting to fix (a bad database URL, an unreachable node, a missing manifest or key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, select

from backend.chain import (
    ChainClient,
    ChainError,
    ChainTarget,
    Deployment,
    Manifest,
    NamedAccounts,
    Wallet,
    connect,
    deploy_all,
    load_deployment,
)
from backend.core.config import Settings
from backend.core.db import make_engine, migrate
from backend.models import KnowledgeItem, Partner, Product, ServiceMeta
from backend.services.gateway import ChainGateway
from recommender.artifacts import ArtifactError
from recommender.serving import ProductRanker

if TYPE_CHECKING:
    from backend.services.indexer import Indexer
    from backend.services.settlement import Settler

log = logging.getLogger("knowledger")


class StartupError(Exception):
    """The service cannot start; the message names what to fix."""


def key_hash(key: str) -> str:
    """API keys and tokens are 256-bit random strings, stored as their SHA-256 (never in clear)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


@dataclass
class Roles:
    """The service's signing accounts: the registrar writes consents, the reporter records conversions,
    the admin publishes notice versions; on local chains the demo's platform/creator/partners too."""

    admin: Wallet
    registrar: Wallet
    reporter: Wallet
    named: NamedAccounts | None = None
    extra: list[Wallet] = field(default_factory=list)


@dataclass
class PartnerAuth:
    id: str
    name: str
    address: str


class Runtime:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        gateway: ChainGateway,
        roles: Roles,
        ranker: ProductRanker | None,
        operator_key_hash: str,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.gateway = gateway
        self.roles = roles
        self.ranker = ranker
        self.operator_key_hash = operator_key_hash
        self._partner_keys: dict[str, PartnerAuth] = {}
        self._catalogue_lock = threading.Lock()
        self._product_index: dict[str, int] = {}
        self._partner_products: dict[str, list[int]] = {}
        self._product_names: dict[str, str] = {}
        self._course_index: dict[str, int] = {}
        self.settler: Settler | None = None
        self.indexer: Indexer | None = None
        self.metrics: Any = None
        self.refresh_caches()

    @property
    def deployment(self) -> Deployment:
        return self.gateway.deployment

    @property
    def chain(self) -> ChainClient:
        return self.gateway.client

    @property
    def model_version(self) -> str | None:
        return None if self.ranker is None else self.ranker.metadata.version

    # ---------------------------------------------------------------- caches of small, rarely changed tables
    def refresh_caches(self) -> None:
        """Partner keys and the partner → product indices map (called after any change to either)."""
        with Session(self.engine) as s:
            partners = s.exec(select(Partner)).all()
            products = s.exec(select(Product)).all()
            courses = s.exec(select(KnowledgeItem.id, KnowledgeItem.position)).all()
        keys = {p.api_key_hash: PartnerAuth(p.id, p.name, p.address) for p in partners}
        index = {pid: i for i, pid in enumerate(self.ranker.product_ids)} if self.ranker else {}
        by_partner: dict[str, list[int]] = {}
        for prod in products:
            if prod.id in index:
                by_partner.setdefault(prod.partner_id, []).append(index[prod.id])
        with self._catalogue_lock:
            self._partner_keys = keys
            self._product_index = index
            self._partner_products = {k: sorted(v) for k, v in by_partner.items()}
            self._product_names = {p.id: p.name for p in products}
            self._course_index = {cid: int(pos) for cid, pos in courses}

    def partner_for_key(self, api_key: str) -> PartnerAuth | None:
        return self._partner_keys.get(key_hash(api_key))

    def is_operator_key(self, api_key: str) -> bool:
        return hmac.compare_digest(key_hash(api_key), self.operator_key_hash)

    def product_index(self) -> dict[str, int]:
        return self._product_index

    def partner_products(self, partner_id: str) -> list[int]:
        return self._partner_products.get(partner_id, [])

    def course_index(self) -> dict[str, int]:
        """Knowledge item id → its row in the model's topic space."""
        return self._course_index

    def product_name(self, product_id: str) -> str:
        return self._product_names.get(product_id, product_id)

    # ------------------------------------------------------------------ lifecycle
    def start_workers(self) -> None:
        from backend.services.indexer import Indexer
        from backend.services.settlement import Settler

        self.settler = Settler(self)
        self.indexer = Indexer(self)
        if self.settings.background_workers:
            if self.settings.settle_interval_s > 0:
                self.settler.start(self.settings.settle_interval_s)
            if self.settings.index_interval_s > 0:
                self.indexer.start(self.settings.index_interval_s)

    def indexer_run(self) -> None:
        if self.indexer is not None:
            self.indexer.run_once()

    def settle_round(self) -> dict[str, int]:
        if self.settler is None:
            raise RuntimeError("the settler is not started")
        return self.settler.run_once()

    def close(self) -> None:
        for worker in (self.settler, self.indexer):
            stop = getattr(worker, "stop", None)
            if stop is not None:
                stop()
        self.engine.dispose()

    @classmethod
    def start(cls, settings: Settings, *, chain: ChainClient | None = None) -> Runtime:
        """Connect the database and the chain, deploy or load the contracts, load the model."""
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        engine = _database(settings)
        try:
            client = chain if chain is not None else connect(settings)
        except ChainError as exc:
            raise StartupError(f"chain: {exc}") from None
        roles = _roles(client)
        deployment = _deployment(settings, client, roles)
        _bind_database(engine, settings, deployment)
        ranker = _model(settings)
        operator_hash = _operator_key(settings, client)
        runtime = cls(settings, engine, ChainGateway(deployment), roles, ranker, operator_hash)
        if settings.seed_demo:
            from backend.services.seed import seed_if_empty

            seed_if_empty(runtime)
        runtime.start_workers()
        return runtime


def _database(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    try:
        engine = make_engine(url)
        migrate(engine)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StartupError(f"KNOWLEDGER_DATABASE_URL: cannot open {url!r}: {reason}") from None
    except Exception as exc:
        raise StartupError(f"KNOWLEDGER_DATABASE_URL: cannot use {url!r}: {exc}") from None
    return engine


def _roles(client: ChainClient) -> Roles:
    if client.target is ChainTarget.RPC:
        if not client.accounts:
            raise StartupError(
                "chain: no signing key: set KNOWLEDGER_PRIVATE_KEY or KNOWLEDGER_KEYSTORE_PATH (the service "
                "signs consents as the registrar and conversions as the reporter)"
            )
        key = client.accounts[0]
        return Roles(admin=key, registrar=key, reporter=key)
    named = NamedAccounts.from_wallets(client.accounts)
    return Roles(named.admin, named.registrar, named.reporter, named, list(client.accounts[7:]))


def _deployment(settings: Settings, client: ChainClient, roles: Roles) -> Deployment:
    path = settings.default_manifest_path(client.chain_id)
    if client.target is ChainTarget.EMBEDDED:
        # The in-process chain starts empty every time: deploy afresh.
        d = deploy_all(client, admin=roles.admin, registrar=roles.registrar, sender=roles.admin)
        d.manifest.write(settings.state_dir / "deployment-embedded.json")
        return _with_accounts(d, roles)
    if Path(path).is_file():
        try:
            return _with_accounts(load_deployment(client, path), roles)
        except ChainError as exc:
            raise StartupError(f"KNOWLEDGER_MANIFEST_PATH: {exc}") from None
    if client.target is ChainTarget.DEVNET and settings.auto_deploy:
        d = deploy_all(client, admin=roles.admin, registrar=roles.registrar, sender=roles.admin)
        d.manifest.write(path)
        log.info("deployed the contracts to the devnet; manifest %s", path)
        return _with_accounts(d, roles)
    raise StartupError(
        f"KNOWLEDGER_MANIFEST_PATH: no deployment manifest at {path}: run `knowledger deploy` first"
    )


def _with_accounts(d: Deployment, roles: Roles) -> Deployment:
    if roles.named is not None:
        d.accounts = roles.named
    registrar = d.consent.registrar()
    if registrar != roles.registrar:
        raise StartupError(
            f"chain: the registry's registrar is {registrar} but this service signs as {roles.registrar}: "
            "is KNOWLEDGER_PRIVATE_KEY the key the contracts were deployed with?"
        )
    return d


def _fingerprint(deployment: Deployment) -> str:
    m: Manifest = deployment.manifest
    return f"{m.chain_id}:{deployment.consent.address}:{deployment.ledger.address}"


def _bind_database(engine: Engine, settings: Settings, deployment: Deployment) -> None:
    """A database belongs to one deployment. The embedded chain is new (and empty) on every start, so its
    database starts empty too; on a devnet or a real network a mismatch stops start-up instead of mixing
    ledgers."""
    fingerprint = _fingerprint(deployment)
    if deployment.client.target is ChainTarget.EMBEDDED:
        with Session(engine) as s:
            used = s.get(ServiceMeta, "deployment") is not None
        if used:
            log.warning("the embedded chain starts empty: starting a fresh database too")
            _reset(engine)
        with Session(engine) as s:
            s.add(ServiceMeta(key="deployment", value=fingerprint))
            s.commit()
        return
    with Session(engine) as s:
        row = s.get(ServiceMeta, "deployment")
        if row is None:
            s.add(ServiceMeta(key="deployment", value=fingerprint))
            s.commit()
            return
        if row.value == fingerprint:
            return
        previous = row.value
    raise StartupError(
        f"KNOWLEDGER_DATABASE_URL: this database belongs to deployment {previous}, not {fingerprint}: "
        "use a fresh database or set KNOWLEDGER_MANIFEST_PATH to that deployment"
    )


def _reset(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name in names:
                conn.execute(text(f'DELETE FROM "{table.name}"'))


def resolve_artifact(path: Path) -> Path | None:
    """``path`` itself if it is an artifact directory, else the newest ``path/hybrid/<version>``."""
    if (path / "arrays.npz").is_file():
        return path
    versions = [p.parent for p in (path / "hybrid").glob("*/metadata.json")]
    return max(versions, key=lambda p: p.stat().st_mtime) if versions else None


def _model(settings: Settings) -> ProductRanker | None:
    root = settings.resolved_model_path
    path = resolve_artifact(root) if root.exists() else None
    if path is None:
        log.warning("no model artifact at %s: recommendations answer 503 until `knowledger train`", root)
        return None
    try:
        return ProductRanker.load(path)
    except (ArtifactError, OSError, ValueError) as exc:
        raise StartupError(f"KNOWLEDGER_MODEL_PATH: cannot load {path}: {exc}") from None


def _operator_key(settings: Settings, client: ChainClient) -> str:
    if settings.operator_key is not None:
        key = settings.operator_key.get_secret_value()
        if len(key) < 16:
            raise StartupError("KNOWLEDGER_OPERATOR_KEY: must be at least 16 characters")
        return key_hash(key)
    if client.target is ChainTarget.RPC:
        raise StartupError("KNOWLEDGER_OPERATOR_KEY: required on a real network")
    path = settings.state_dir / "operator.key"
    if not path.is_file():
        path.write_text(new_secret("op"), encoding="utf-8")
        path.chmod(0o600)
    return key_hash(path.read_text(encoding="utf-8").strip())
