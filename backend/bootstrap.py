"""Start-up steps, in order: the database, the chain and its signing roles, the deployment, the database's
binding to that deployment, the model, the operator key. Each fails with :class:`StartupError`, a one-line
message naming the setting to fix (a bad database URL, an unreachable node, a missing manifest or key).

:mod:`backend.container` runs them and builds the services from what they return.

Several processes, on one host or many, may start against one PostgreSQL database at once: the steps that
read or write what they share (the schema, the deployment, the binding, the operator key) run under
:func:`startup_lock`, one process at a time. The database records the deployment's manifest
(:func:`bind_database`), so a host without a manifest file of its own serves the deployment the database
belongs to (:func:`recorded_manifest`); a host without an operator key of its own takes the one recorded
there (its hash: the key itself stays in the state directory that generated it)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from sqlalchemy import create_engine, inspect, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
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
from backend.chain.deploy import Manifest
from backend.chain.journal import JournalCorrupt
from backend.core.config import Settings
from backend.core.db import make_engine, migrate
from backend.core.errors import ExpectedStartupError
from backend.core.security import key_hash, new_secret
from backend.models import ModelStatus, Profile, ServiceMeta
from backend.services.accounts import Roles
from backend.services.directory import VERSION_KEY
from backend.services.leadership import NAMESPACE, STARTUP_KEY
from backend.services.model import ServedModel
from backend.services.registry import ModelRegistry, RegistryError
from recommender.artifacts import ArtifactError, load_artifact, resolve_artifact

log = logging.getLogger("knowledger")


class StartupError(ExpectedStartupError):
    """The service cannot start; the message names what to fix."""


#: ``service_meta`` keys: the deployment's fingerprint, its manifest, the generated operator key's hash.
DEPLOYMENT_KEY = "deployment"
MANIFEST_KEY = "manifest"
OPERATOR_KEY = "operator_key_hash"


@contextlib.contextmanager
def startup_lock(settings: Settings) -> Iterator[None]:
    """Held while a process checks and writes what the processes sharing its database share: on PostgreSQL
    a session advisory lock (on a connection of its own, released when it closes or the process dies), so
    that two hosts starting at once neither migrate nor deploy twice. Nothing to hold on SQLite (one
    process)."""
    url = settings.resolved_database_url
    if not url.startswith("postgresql"):
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StartupError(f"KNOWLEDGER_DATABASE_URL: cannot open {url!r}: {reason}") from None
        with conn:
            conn.execute(text("SELECT pg_advisory_lock(:ns, :key)"), {"ns": NAMESPACE, "key": STARTUP_KEY})
            yield
    finally:
        engine.dispose()


def _meta(engine: Engine, key: str) -> str | None:
    with Session(engine) as s:
        row = s.get(ServiceMeta, key)
        return None if row is None else row.value


def recorded_manifest(engine: Engine) -> Manifest | None:
    """The manifest of the deployment this database belongs to, as :func:`bind_database` recorded it."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(ServiceMeta.__tablename__):
            return None
    value = _meta(engine, MANIFEST_KEY)
    return None if value is None else Manifest.from_dict(json.loads(value))


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
    settings: Settings,
    client: ChainClient,
    roles: Roles,
    bound: str | None,
    recorded: Manifest | None = None,
) -> tuple[Deployment, Roles, bool]:
    """The deployment this service uses, the roles it signs with, and whether it is new (deployed now).

    Everything is checked before anything is deployed: an existing manifest is loaded and its contracts
    verified on this chain; a database that already belongs to a deployment is never paired with a new one.
    The embedded chain keeps its manifest in the state directory beside its journal. Without a manifest file,
    a devnet or network service uses the manifest its database ``recorded`` (another host deployed)."""
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
    if not embedded and recorded is not None:
        try:
            d = load_deployment(client, recorded)
        except ChainError as exc:
            raise StartupError(
                f"KNOWLEDGER_DATABASE_URL: the deployment this database records cannot be used here: {exc}"
            ) from None
        roles = _roles_of_manifest(d, roles, client)
        _check_binding(bound, d, settings)
        log.info("no manifest at %s: serving the deployment the database records", path)
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
    """Record which deployment this database belongs to (checked before, by :func:`deployment_for`) and its
    manifest (for hosts without one), and start the directory's change counter."""
    fingerprint = _fingerprint(deployment)
    with Session(engine) as s:
        bound = s.get(ServiceMeta, DEPLOYMENT_KEY)
        if bound is None:
            s.add(ServiceMeta(key=DEPLOYMENT_KEY, value=fingerprint))
        elif bound.value != fingerprint:
            raise StartupError(
                f"KNOWLEDGER_DATABASE_URL: this database belongs to deployment {bound.value}, not "
                f"{fingerprint}: use a fresh database or set KNOWLEDGER_MANIFEST_PATH to that deployment"
            )
        if s.get(ServiceMeta, MANIFEST_KEY) is None:
            s.add(ServiceMeta(key=MANIFEST_KEY, value=deployment.manifest.to_json()))
        if s.get(ServiceMeta, VERSION_KEY) is None:
            s.add(ServiceMeta(key=VERSION_KEY, value="0"))
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


def operator_key_hash(settings: Settings, client: ChainClient, engine: Engine | None = None) -> str:
    """The operator key's hash: ``KNOWLEDGER_OPERATOR_KEY`` (required on a real network); on a local chain
    the key in ``<state dir>/operator.key``, else (given the shared database's ``engine``) the one another
    service on this database generated (its hash, recorded there), else a new key written to
    ``<state dir>/operator.key`` (and its hash recorded in the shared database)."""
    if settings.operator_key is not None:
        key = settings.operator_key.get_secret_value()
        if len(key) < 16:
            raise StartupError("KNOWLEDGER_OPERATOR_KEY: must be at least 16 characters")
        return key_hash(key)
    if client.target is ChainTarget.RPC:
        raise StartupError("KNOWLEDGER_OPERATOR_KEY: required on a real network")
    path = settings.state_dir / "operator.key"
    recorded = _meta(engine, OPERATOR_KEY) if engine is not None else None
    if not path.is_file():
        if recorded is not None:
            log.info("operator key: the one this database's first service generated (not in %s)", path)
            return recorded
        path.write_text(new_secret("op"), encoding="utf-8")
        path.chmod(0o600)
    digest = key_hash(path.read_text(encoding="utf-8").strip())
    if engine is not None and recorded is None:
        with Session(engine) as s:
            s.add(ServiceMeta(key=OPERATOR_KEY, value=digest))
            s.commit()
    return digest
