"""The composition root: builds each component once and hands every service the pieces it uses.

``Container.start(settings)`` runs the start-up steps (:mod:`backend.bootstrap`): the database, the chain
and its signing roles, the deployment, the model, the operator key. Then it builds the consent gateway, the
directory of partners and products, each service, the singleton workers (settler, indexer, webhook
deliverer), which run in whichever process holds the leadership (:mod:`backend.services.leadership`), and the
model follower, which runs in every process. No service reaches into another's pieces or into this
container: each is given what it uses, here.

The FastAPI app (:func:`backend.main.create_app`) serves one container; its lifespan starts and stops the
workers. Tests build a container with their own settings (and chain) and drive the workers by hand. Every
process builds its own container after it starts: no engine, chain connection or thread crosses a fork.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from backend import bootstrap
from backend.chain import ChainClient, ChainTarget, Deployment
from backend.core.config import Settings
from backend.core.statelock import StateDirInUse, StateLock
from backend.observability import Metrics
from backend.services.accounts import Roles
from backend.services.agreements import AgreementService
from backend.services.audiences import AudienceService
from backend.services.consent import ConsentService
from backend.services.conversions import ConversionService
from backend.services.directory import Directory
from backend.services.erasure import ErasureRegister
from backend.services.experiment import ExperimentService
from backend.services.funnel import FunnelSeries, FunnelService
from backend.services.gateway import ChainGateway
from backend.services.health import HealthService
from backend.services.indexer import Indexer
from backend.services.ingest import IngestService
from backend.services.insights import InsightsService
from backend.services.leadership import Leadership, election_for
from backend.services.learner_view import LearnerView
from backend.services.ledger import LedgerService
from backend.services.lifecycle import ModelFollower, ModelLifecycle
from backend.services.model import ModelSlot
from backend.services.partners import PartnerService
from backend.services.profiles import ProfileRefresher
from backend.services.recommend import RecommendationService
from backend.services.registry import ModelRegistry
from backend.services.rounds import Rounds
from backend.services.seed import SeedResult, seed, seed_if_empty
from backend.services.settlement import Settler
from backend.services.sharing import DataSharingService
from backend.services.training import ModelTrainer
from backend.services.users import ProfileService, UserService
from backend.services.webhook_delivery import WebhookBacklog, WebhookDeliverer
from backend.services.webhooks import WebhookService
from recommender.data.demo import DemoSplit

log = logging.getLogger("knowledger")


@dataclass
class Container:
    settings: Settings
    engine: Engine
    chain: ChainClient
    deployment: Deployment
    roles: Roles
    gateway: ChainGateway
    model: ModelSlot
    directory: Directory
    metrics: Metrics
    consent: ConsentService
    users: UserService
    profiles: ProfileService
    partners: PartnerService
    recommendations: RecommendationService
    conversions: ConversionService
    agreements: AgreementService
    ledger: LedgerService
    experiment: ExperimentService
    insights: InsightsService
    settler: Settler
    indexer: Indexer
    rounds: Rounds
    health: HealthService
    erasure: ErasureRegister
    profile_refresher: ProfileRefresher
    ingest: IngestService
    learner_view: LearnerView
    models: ModelLifecycle
    model_follower: ModelFollower
    trainer: ModelTrainer
    sharing: DataSharingService
    audiences: AudienceService
    webhooks: WebhookService
    deliverer: WebhookDeliverer
    funnel: FunnelService
    leadership: Leadership
    seeded: SeedResult | None = field(default=None)
    _workers_started: bool = field(default=False, repr=False)
    _lock: StateLock | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        chain: ChainClient | None = None,
        metrics: Metrics | None = None,
        lock: StateLock | None = None,
    ) -> Container:
        """Lock the state directory, check the database, the chain, the roles and the deployment (before
        anything is deployed or written), then migrate, deploy if this is a new chain, load the model and
        build the services; seed the demo world into an empty database when ``KNOWLEDGER_SEED_DEMO``.
        ``lock``: the state directory's lock, if the caller took it already."""
        if lock is None and settings.exclusive_state:
            lock = StateLock(settings.state_dir)
        try:
            if lock is not None and not lock.held:
                lock.acquire()
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            with bootstrap.startup_lock(settings):  # one process at a time on a shared database
                engine, bound = bootstrap.open_database(settings)
                client = chain if chain is not None else bootstrap.connect_chain(settings)
                roles = bootstrap.roles_for(client)
                recorded = bootstrap.recorded_manifest(engine) if bound is not None else None
                deployment, roles, _ = bootstrap.deployment_for(settings, client, roles, bound, recorded)
                bootstrap.migrate_database(engine, settings)
                bootstrap.bind_database(engine, deployment)
                # hosts sharing a database share a generated operator key (one that owns its database keeps
                # today's: the key file in its state directory)
                shared = None if settings.exclusive_state else engine
                operator_hash = bootstrap.operator_key_hash(settings, client, shared)
                registry = ModelRegistry(engine, settings.state_dir / "model-cache")
                served = bootstrap.adopt_model(settings, registry)
                if served is not None:
                    bootstrap.stamp_profiles(engine, served.version)
            model = ModelSlot(served)
        except StateDirInUse as exc:
            raise bootstrap.StartupError(f"KNOWLEDGER_STATE_DIR: {exc}") from None
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        container = cls.build(settings, engine, deployment, roles, model, registry, operator_hash, metrics)
        container._lock = lock
        container.erasure.ensure_key()
        container.ingest.start()
        if settings.seed_demo:
            container.seed_if_empty()
        return container

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: Engine,
        deployment: Deployment,
        roles: Roles,
        model: ModelSlot,
        registry: ModelRegistry,
        operator_key_hash: str,
        metrics: Metrics | None = None,
    ) -> Container:
        """Wire the services from the started pieces (each built once)."""
        client = deployment.client
        gateway = ChainGateway(
            client, deployment.consent, threads=settings.chain_threads, rpc_timeout_s=settings.rpc_timeout_s
        )
        # a process that owns its database needs no check for other processes' changes
        directory = Directory(engine, operator_key_hash, shared=not settings.exclusive_state)
        metrics = metrics or Metrics()
        local = client.target is not ChainTarget.RPC
        confirmations = (
            settings.index_confirmations
            if settings.index_confirmations is not None
            else (0 if local else settings.confirmations)
        )
        settler = Settler(engine, gateway, deployment.ledger, roles.reporter, settings.settle_batch_size)
        indexer = Indexer(engine, gateway, deployment, confirmations)
        # The workers that must run in one process at a time (a new one is one more line here).
        leadership = Leadership(election_for(engine), settings.leader_poll_s)
        leadership.add(settler, settings.settle_interval_s)
        leadership.add(indexer, settings.index_interval_s)
        erasure = ErasureRegister(engine)
        refresher = ProfileRefresher(engine, model, registry.product_rows)
        lifecycle = ModelLifecycle(
            registry,
            model,
            refresher,
            metric=settings.promotion_metric,
            tolerance=settings.promotion_tolerance,
        )
        deliverer = WebhookDeliverer(
            engine,
            metrics,
            timeout_s=settings.webhook_timeout_s,
            retry_base_s=settings.webhook_retry_base_s,
            max_attempts=settings.webhook_max_attempts,
            allow_private=settings.webhook_allow_private,
        )
        leadership.add(deliverer, settings.webhook_interval_s)
        metrics.add_collector("funnel", FunnelSeries(engine, metrics))
        metrics.add_collector("webhook_queue", WebhookBacklog(engine, metrics))
        return cls(
            settings=settings,
            engine=engine,
            chain=client,
            deployment=deployment,
            roles=roles,
            gateway=gateway,
            model=model,
            directory=directory,
            metrics=metrics,
            consent=ConsentService(
                gateway,
                deployment.consent,
                roles.registrar,
                consent_days=settings.consent_days,
                signature_ttl_s=settings.signature_ttl_s,
            ),
            users=UserService(gateway, deployment.consent, roles.registrar, erasure),
            profiles=ProfileService(directory, model),
            partners=PartnerService(gateway, deployment.consent, roles.admin, directory),
            recommendations=RecommendationService(
                engine, gateway, directory, model, refresher, settings.experiment_name, settings.experiment
            ),
            conversions=ConversionService(gateway, deployment.ledger),
            agreements=AgreementService(
                gateway,
                deployment.agreements,
                roles,
                [a.address for a in client.accounts],
                settings.signature_ttl_s,
            ),
            ledger=LedgerService(gateway, deployment),
            experiment=ExperimentService(engine, settings.experiment_name, settings.experiment),
            insights=InsightsService(model, settings.reports_dir),
            settler=settler,
            indexer=indexer,
            rounds=Rounds(engine, settler, indexer),
            health=HealthService(
                engine, gateway, model, deployment, indexer, settler, deliverer, leadership, metrics
            ),
            erasure=erasure,
            profile_refresher=refresher,
            ingest=IngestService(engine, erasure, refresher, directory, leadership),
            learner_view=LearnerView(gateway, directory, model, refresher),
            models=lifecycle,
            model_follower=ModelFollower(lifecycle),
            trainer=ModelTrainer(engine, registry, model, lifecycle, settings.resolved_model_path),
            sharing=DataSharingService(engine, gateway),
            audiences=AudienceService(engine, gateway),
            webhooks=WebhookService(
                allow_http=settings.webhook_allow_http, allow_private=settings.webhook_allow_private
            ),
            deliverer=deliverer,
            funnel=FunnelService(engine),
            leadership=leadership,
        )

    def _seed_pieces(self) -> tuple[Any, ...]:
        return (
            self.engine,
            self.gateway,
            self.deployment.consent,
            self.roles,
            self.directory,
            self.agreements,
            self.settings.state_dir,
            self.profile_refresher,
        )

    def seed(self, split: DemoSplit | None = None, *, n_users: int | None = None) -> SeedResult:
        """Seed the demo world (:func:`backend.services.seed.seed`) into this service."""
        engine, gateway, registry, roles, directory, agreements, state_dir, refresher = self._seed_pieces()
        result = seed(
            engine,
            gateway,
            registry,
            roles,
            directory,
            agreements,
            state_dir,
            refresher,
            split,
            n_users=n_users,
        )
        self.seeded = result
        return result

    def seed_if_empty(self) -> SeedResult | None:
        """:meth:`seed`, only into a database without partners."""
        self.seeded = seed_if_empty(*self._seed_pieces())
        return self.seeded

    # ------------------------------------------------------------------ lifecycle
    def start_workers(self) -> None:
        """Join the election of the singleton workers (settler, indexer, webhook deliverer): the process
        that wins runs them (unless ``KNOWLEDGER_BACKGROUND_WORKERS`` is off, when this process only shows
        it is alive); and follow the served model version (every process)."""
        if self._workers_started:
            return
        self.leadership.start(run_workers=self.settings.background_workers)
        if self.settings.background_workers and self.settings.model_follow_interval_s > 0:
            self.model_follower.start(self.settings.model_follow_interval_s)
        self._workers_started = True

    def stop_workers(self) -> None:
        self.leadership.stop()
        self.model_follower.stop()
        self._workers_started = False

    async def aclose(self) -> None:
        """Close the connections the running event loop's requests awaited on (at the app's shutdown,
        before :meth:`close`)."""
        await self.recommendations.aclose()
        await self.directory.aclose()
        await self.gateway.aclose()

    def close(self) -> None:
        self.stop_workers()
        self.recommendations.serving_log.close()
        self.ingest.stop()
        self.deliverer.close()
        self.engine.dispose()
        self.chain.close()
        if self._lock is not None:
            self._lock.release()
