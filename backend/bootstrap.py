"""Start-up steps, in order: the database, the chain and its signing roles, the deployment, the database's
binding to that deployment, the model, the operator key. Each fails with :class:`StartupError`, a one-line
message naming the setting to fix (a bad database URL, an unreachable node, a missing manifest or key).

:mod:`backend.container` runs them and builds the services from what they return."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from sqlalchemy import inspect, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from backend.chain import (
    ChainClient,
    ChainError,
    ChainTarget,
    Deployment,
    NamedAccounts,
    connect,
    connect_embedded,
    deploy_all,
    load_deployment,
)
from backend.chain.journal import JournalCorrupt
from backend.core.config import Settings
from backend.core.db import make_engine, migrate
from backend.core.errors import ExpectedStartupError
from backend.core.security import key_hash, new_secret
from backend.models import ModelStatus, Profile, ServiceMeta
from backend.services.accounts import Roles
from backend.services.model import ServedModel
from backend.services.registry import ModelRegistry, RegistryError
from recommender.artifacts import ArtifactError, load_artifact, resolve_artifact

log = logging.getLogger("knowledger")


class StartupError(ExpectedStartupError):
    """The service cannot start; the message names what to fix."""


def open_database(settings: Settings) -> tuple[Engine, str | None]:
    """The engine, and the deployment the database already belongs to (None for a new database). Reads
    only: the schema is migrated by :func:`migrate_database` once every check has passed."""
    url = settings.resolved_database_url
    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            bound = None
            if inspect(conn).has_table(ServiceMeta.__tablename__):
                row = conn.execute(
                    text(f"SELECT value FROM {ServiceMeta.__tablename__} WHERE key = 'deployment'")
                ).first()
                bound = None if row is None else str(row[0])
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StartupError(f"KNOWLEDGER_DATABASE_URL: cannot open {url!r}: {reason}") from None
    except Exception as exc:
        raise StartupError(f"KNOWLEDGER_DATABASE_URL: cannot use {url!r}: {exc}") from None
    return engine, bound


def migrate_database(engine: Engine, settings: Settings) -> None:
    try:
        migrate(engine)
    except Exception as exc:
        url = settings.resolved_database_url
        raise StartupError(f"KNOWLEDGER_DATABASE_URL: cannot migrate {url!r}: {exc}") from None


def connect_chain(settings: Settings) -> ChainClient:
    """The chain the settings name; the embedded one is kept in the state directory's journal."""
    try:
        if settings.chain_target is ChainTarget.EMBEDDED:
            return connect_embedded(settings.resolved_embedded_journal)
        return connect(settings)
    except ChainError as exc:
        raise StartupError(f"chain: {exc}") from None
    except JournalCorrupt as exc:
        raise StartupError(f"KNOWLEDGER_EMBEDDED_JOURNAL: {exc}") from None


def roles_for(client: ChainClient) -> Roles:
    if client.target is ChainTarget.RPC:
        if not client.accounts:
            raise StartupError(
                "chain: no signing key: set KNOWLEDGER_PRIVATE_KEY or KNOWLEDGER_KEYSTORE_PATH (the service "
                "signs consents as the registrar and conversions as the reporter)"
            )
        key = client.accounts[0]
        return Roles(admin=key, registrar=key, reporter=key)
    named = NamedAccounts.from_wallets(client.accounts)
    return Roles(named.admin, named.registrar, named.reporter, named, tuple(client.accounts[7:]))


def deployment_for(
    settings: Settings, client: ChainClient, roles: Roles, bound: str | None
) -> tuple[Deployment, Roles, bool]:
    """The deployment this service uses, the roles it signs with, and whether it is new (deployed now).

    Everything is checked before anything is deployed: an existing manifest is loaded and its contracts
    verified on this chain; a database that already belongs to a deployment is never paired with a new one.
    The embedded chain keeps its manifest in the state directory beside its journal."""
    embedded = client.target is ChainTarget.EMBEDDED
    path = (
        settings.state_dir / EMBEDDED_MANIFEST
        if embedded
        else settings.default_manifest_path(client.chain_id)
    )
    if Path(path).is_file() and (client.reopened or not embedded):
        try:
            d = load_deployment(client, path)
        except ChainError as exc:
            raise StartupError(f"KNOWLEDGER_MANIFEST_PATH: {exc}") from None
        roles = _roles_of_manifest(d, roles, client)
        _check_binding(bound, d, settings)
        return _with_accounts(d, roles), roles, False
    if embedded and client.reopened:
        raise StartupError(
            f"KNOWLEDGER_STATE_DIR: the embedded chain in {settings.resolved_embedded_journal} has no "
            f"manifest at {path}: restore it, or move the state directory away to start afresh"
        )
    if bound is not None:
        where = settings.resolved_embedded_journal if embedded else path
        raise StartupError(
            f"KNOWLEDGER_DATABASE_URL: this database belongs to deployment {bound}, but there is no "
            f"deployment at {where}: point KNOWLEDGER_MANIFEST_PATH (or KNOWLEDGER_STATE_DIR) at that "
            "deployment, or use a fresh database"
        )
    if not embedded and not (client.target is ChainTarget.DEVNET and settings.auto_deploy):
        raise StartupError(
            f"KNOWLEDGER_MANIFEST_PATH: no deployment manifest at {path}: run `knowledger deploy` first"
        )
    d = deploy_all(client, admin=roles.admin, registrar=roles.registrar, sender=roles.admin)
    d.manifest.write(path)
    log.info("deployed the contracts to the %s chain; manifest %s", client.target.value, path)
    return _with_accounts(d, roles), roles, True


#: Where the embedded chain's manifest lives, in the state directory.
EMBEDDED_MANIFEST = "deployment-embedded.json"


def _roles_of_manifest(d: Deployment, roles: Roles, client: ChainClient) -> Roles:
    """On a local chain the service holds every development key: it signs as the manifest's registrar and
    admin (``knowledger deploy`` makes the deployer both), whichever account that is."""
    if client.target is ChainTarget.RPC:
        return roles
    held = {w.address: w for w in client.accounts}
    manifest = d.manifest
    missing = [
        f"{role} {addr}"
        for role, addr in (("registrar", manifest.registrar), ("admin", manifest.admin))
        if addr not in held
    ]
    if missing:
        raise StartupError(
            f"chain: the deployment's {' and '.join(missing)} is not one of this devnet's accounts: "
            "redeploy with `knowledger deploy --target devnet`"
        )
    return replace(roles, registrar=held[manifest.registrar], admin=held[manifest.admin])


def _check_binding(bound: str | None, d: Deployment, settings: Settings) -> None:
    fingerprint = _fingerprint(d)
    if bound is not None and bound != fingerprint:
        raise StartupError(
            f"KNOWLEDGER_DATABASE_URL: this database belongs to deployment {bound}, not {fingerprint}: "
            "use a fresh database or set KNOWLEDGER_MANIFEST_PATH to that deployment"
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
    return f"{deployment.manifest.chain_id}:{deployment.consent.address}:{deployment.ledger.address}"


def bind_database(engine: Engine, deployment: Deployment) -> None:
    """Record which deployment this database belongs to (checked before, by :func:`deployment_for`)."""
    with Session(engine) as s:
        if s.get(ServiceMeta, "deployment") is None:
            s.add(ServiceMeta(key="deployment", value=_fingerprint(deployment)))
            s.commit()


def adopt_model(settings: Settings, registry: ModelRegistry) -> ServedModel | None:
    """The model to serve: the registry's served version; a registry still empty adopts the newest artifact
    in ``KNOWLEDGER_MODEL_PATH`` (what ``knowledger train`` wrote) as its first served version. A newer
    artifact found there later is registered as a candidate (promote it to serve it)."""
    root = settings.resolved_model_path
    try:
        path = resolve_artifact(root) if root.exists() else None
        meta = None if path is None else load_artifact(path)[1]
        if meta is not None and path is not None and registry.get(meta.version) is None:
            registry.register(path, source="demo", status=ModelStatus.CANDIDATE)
            if registry.served_version() is not None:
                log.warning(
                    "new artifact %s registered as a candidate: `knowledger model promote %s --force` "
                    "serves it",
                    meta.version,
                    meta.version,
                )
        served = registry.served_version()
        if served is not None:
            return registry.load(served)
        if meta is None:
            log.warning("no model artifact at %s: recommendations answer 503 until `knowledger train`", root)
            return None
        registry.record_serving(meta.version, action="imported", actor="service", detail={"from": str(path)})
        return registry.load(meta.version)
    except (ArtifactError, RegistryError, OSError) as exc:
        raise StartupError(f"KNOWLEDGER_MODEL_PATH: cannot load the model ({exc})") from None


def stamp_profiles(engine: Engine, version: str) -> None:
    """Profiles stored before they named their model were built for the model served then: this one."""
    with engine.begin() as conn:
        conn.execute(
            update(Profile).where(col(Profile.model_version).is_(None)).values(model_version=version)
        )


def operator_key_hash(settings: Settings, client: ChainClient) -> str:
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
