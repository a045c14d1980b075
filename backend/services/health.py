"""Health and metrics: whether the database, the chain, the model and the workers can serve, and which
process runs the singleton workers."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from backend.chain import Deployment
from backend.observability import Metrics
from backend.schemas.ops import (
    ChainHealth,
    Health,
    IndexerHealth,
    LeadershipHealth,
    ModelHealth,
    WebhookHealth,
    WorkerHealth,
)
from backend.services.gateway import ChainGateway
from backend.services.indexer import Indexer
from backend.services.leadership import Leadership
from backend.services.model import ModelSlot
from backend.services.outbox import counts
from backend.services.settlement import Settler
from backend.services.webhook_delivery import WebhookDeliverer, queue_counts


class HealthService:
    def __init__(
        self,
        engine: Engine,
        gateway: ChainGateway,
        model: ModelSlot,
        deployment: Deployment,
        indexer: Indexer,
        settler: Settler,
        deliverer: WebhookDeliverer,
        leadership: Leadership,
        metrics: Metrics,
    ) -> None:
        self._deliverer = deliverer
        self._engine = engine
        self._gateway = gateway
        self._model = model
        self._deployment = deployment
        self._indexer = indexer
        self._settler = settler
        self._leadership = leadership
        self._metrics = metrics

    def health(self) -> Health:
        """``ok`` when the database, the chain and the model can all serve, ``degraded`` otherwise."""
        status = "ok"
        outbox: dict[str, int] | None = None
        webhooks = WebhookHealth(last_error=self._deliverer.last_error)
        try:
            outbox = counts(self._engine)
            queue = queue_counts(self._engine)
            webhooks.pending, webhooks.dead = queue["pending"], queue["dead"]
            database = "ok"
        except Exception as exc:  # the database is down: say so, do not 500
            database = f"error: {type(exc).__name__}"
            status = "degraded"
        try:
            head = self._gateway.head()
            client = self._gateway.client
            chain = ChainHealth(
                status="ok", chain_id=client.chain_id, block=head.number, target=client.target.value
            )
        except Exception as exc:
            chain = ChainHealth(status="unreachable", detail=str(exc))
            status = "degraded"
        if self._model.ranker is None:
            status = "degraded"
        try:
            next_block: int | None = self._indexer.cursor()
        except Exception:
            next_block = None
        return Health(
            status=status,
            database=database,
            outbox=outbox,
            chain=chain,
            model=ModelHealth(version=self._model.version, loaded=self._model.ranker is not None),
            contracts=self._deployment.addresses,
            indexer=IndexerHealth(next_block=next_block, last_error=self._indexer.last_error),
            settler=WorkerHealth(last_error=self._settler.last_error),
            webhooks=webhooks,
            leadership=self.leadership(),
        )

    def leadership(self) -> LeadershipHealth:
        lead = self._leadership
        leader = lead.leader()
        return LeadershipHealth(
            mode=lead.mode,
            process=lead.identity,
            leader=leader,
            leading=leader == lead.identity,
            workers=lead.workers,
        )

    def metrics(self) -> bytes:
        """The Prometheus exposition, with the gauges read now."""
        m = self._metrics
        for state, n in counts(self._engine).items():
            m.outbox.labels(state).set(n)
        m.index_lag.set(self._indexer.lag())
        m.chain_up.set(1 if self._gateway.available else 0)
        m.model_loaded.set(1 if self._model.ranker is not None else 0)
        m.leader.set(1 if self._leadership.leading else 0)
        return m.render()
