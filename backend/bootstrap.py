"""Start-up steps, in order: the database, the chain and its signing roles, the deployment, the database's
binding to that deployment, the model, the operator key. Each fails with :class:`StartupError`, a one-line
message naming the setting to fix (a bad database URL, an unreachable node, a missing manifest or key).

:mod:`backend.container` runs them and builds the services from what they return."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel

from backend.chain import (
    ChainClient,
    ChainError,
    ChainTarget,
    Deployment,
    NamedAccounts,
    deploy_all,
    load_deployment,
)
from backend.core.config import Settings
from backend.core.db import make_engine, migrate
from backend.core.security import key_hash, new_secret
from backend.models import ServiceMeta
from backend.services.accounts import Roles
from recommender.artifacts import ArtifactError, resolve_artifact
from recommender.serving import ProductRanker

log = logging.getLogger("knowledger")


class StartupError(Exception):
    """The service cannot start; the message names what to fix."""


def open_database(settings: Settings) -> Engine:
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


def deployment_for(settings: Settings, client: ChainClient, roles: Roles) -> Deployment:
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
    return f"{deployment.manifest.chain_id}:{deployment.consent.address}:{deployment.ledger.address}"


def bind_database(engine: Engine, deployment: Deployment) -> None:
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


def load_model(settings: Settings) -> ProductRanker | None:
    root = settings.resolved_model_path
    path = resolve_artifact(root) if root.exists() else None
    if path is None:
        log.warning("no model artifact at %s: recommendations answer 503 until `knowledger train`", root)
        return None
    try:
        return ProductRanker.load(path)
    except (ArtifactError, OSError, ValueError) as exc:
        raise StartupError(f"KNOWLEDGER_MODEL_PATH: cannot load {path}: {exc}") from None


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
