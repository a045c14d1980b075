"""Prometheus metrics: request counts and latencies per route, consent decisions, the outbox and the
indexer, webhook deliveries and the marketing funnel per partner. Each app gets its own registry (so tests
can build many apps in one process).

Series labelled by partner stay bounded: partners are registered by the operator (a handful, not one per
request), and :meth:`Metrics.partner_label` caps the distinct values at :data:`MAX_PARTNER_LABELS` anyway,
folding any beyond into ``_other``."""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector

#: The most distinct ``partner`` label values a series takes; further partners share ``OTHER_PARTNER``.
MAX_PARTNER_LABELS = 200
OTHER_PARTNER = "_other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "knowledger_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "knowledger_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.outbox = Gauge(
            "knowledger_outbox_conversions", "Conversions by outbox state", ["state"], registry=self.registry
        )
        self.index_lag = Gauge(
            "knowledger_indexer_lag_blocks", "Blocks not yet indexed", registry=self.registry
        )
        self.chain_up = Gauge(
            "knowledger_chain_up", "1 if the chain answered the last request", registry=self.registry
        )
        self.model_loaded = Gauge("knowledger_model_loaded", "1 if a model is loaded", registry=self.registry)
        self.leader = Gauge(
            "knowledger_leader",
            "1 if this process runs the singleton workers (settler, indexer, webhook delivery)",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "knowledger_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, failed, dead)",
            ["partner", "outcome"],
            registry=self.registry,
        )
        self.webhook_latency = Histogram(
            "knowledger_webhook_delivery_seconds",
            "From a conversion's state change to its webhook's delivery",
            ["partner"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
            registry=self.registry,
        )
        self._partners: set[str] = set()
        self._partners_lock = threading.Lock()
        self._collectors: dict[str, Collector] = {}

    def partner_label(self, partner_id: str) -> str:
        """``partner_id`` as a label value, or ``_other`` once :data:`MAX_PARTNER_LABELS` are in use."""
        if partner_id in self._partners:
            return partner_id
        with self._partners_lock:
            if len(self._partners) >= MAX_PARTNER_LABELS:
                return OTHER_PARTNER
            self._partners.add(partner_id)
        return partner_id

    def add_collector(self, name: str, collector: Collector) -> None:
        """Register a collector that reads its series when scraped (replacing one of the same name)."""
        old = self._collectors.pop(name, None)
        if old is not None:
            self.registry.unregister(old)
        self.registry.register(collector)
        self._collectors[name] = collector

    def render(self) -> bytes:
        """The registry in Prometheus's text format."""
        return bytes(generate_latest(self.registry))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)


class MetricsMiddleware:
    """Pure ASGI (no per-request task switch): times each request under its route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], path, status["code"], time.perf_counter() - started)
