"""The FastAPI application: ``create_app(settings)``; ``uvicorn backend.main:app`` serves the default."""

from __future__ import annotations

import functools
import gc
import logging
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.routes import (
    agreements,
    funnel,
    ingest,
    insights,
    me,
    models,
    operator,
    partner,
    public,
    sharing,
    web,
    webhooks,
)
from backend.container import Container
from backend.core.config import Settings, get_settings
from backend.errors import AppError, DatabaseUnavailable, PayloadTooLarge
from backend.observability import Metrics, MetricsMiddleware
from backend.schemas.common import UNION_TAGS
from backend.schemas.ops import Ping

log = logging.getLogger("knowledger")


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length or while streaming (pure ASGI). Paths
    under a prefix of ``larger`` (batch uploads) have that prefix's limit instead."""

    def __init__(self, app: Any, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = next((n for p, n in self.larger.items() if path.startswith(p)), self.default)
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Any, receive: Any, send: Any, max_bytes: int) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_error(send, PayloadTooLarge(f"request body over {max_bytes} bytes"))
                    return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _TooLarge(f"request body over {max_bytes} bytes")
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _send_error(send, PayloadTooLarge(f"request body over {max_bytes} bytes"))


#: The cyclic collector's thresholds once the start-up objects are frozen: Python's own (700, 10) for the
#: young generations, and a full pass after 100 middle ones instead of 10. With the start-up objects frozen,
#: the full pass's "a quarter of the long-lived objects are new" rule holds after a second or so of load (the
#: objects of the requests in flight are promoted and die later), so under load a full pass paused the event
#: loop for 25-38 ms about every 1.2 s, which is the 99th percentile of a request at 1,000 req/s; now about
#: every 12 s (measured with ``gc.callbacks`` during ``scripts/bench_api.py``: 2 full passes in a run,
#: against one every 1.2 s of load; the middle ones stay under 5 ms).
GC_THRESHOLDS = (700, 10, 100)


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive`` while a streamed body is read. An HTTPException, because FastAPI turns any
    other exception raised while it reads the body into a 400 "error parsing the body"."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


async def _send_error(send: Any, error: AppError) -> None:
    import json

    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _validation_message(exc: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    errors = exc.errors()
    fields = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body" and p not in UNION_TAGS]
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            fields.append(
                {
                    "field": "body",
                    "problem": f"JSON decode error: {ctx.get('error', 'invalid JSON')}",
                    "type": "json_invalid",
                }
            )
            continue
        fields.append(
            {"field": ".".join(loc) or "body", "problem": e.get("msg", "invalid"), "type": e.get("type")}
        )
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "malformed JSON body", fields
    text = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return 422, f"invalid request: {text}", fields


@functools.cache
def _allowed_methods(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each documented path as a pattern, with the methods it answers (from the OpenAPI document)."""
    out = []
    for template, operations in app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        out.append((re.compile(f"^{pattern}$"), frozenset(m.upper() for m in operations)))
    return out


def _method_not_allowed(request: Request) -> JSONResponse:
    """405 with an ``Allow`` header listing every method the path answers (the router on its own names only
    the methods of the first route whose path matched, or none)."""
    path = request.url.path
    allowed = {
        m for pattern, methods in _allowed_methods(request.app) if pattern.match(path) for m in methods
    }
    if not allowed:  # a page or a static file: read-only
        allowed = {"GET"}
    methods = ", ".join(sorted(allowed))
    message = f"{request.method} is not allowed on {path}; allowed: {methods}"
    return JSONResponse(
        {"error": {"code": "method_not_allowed", "message": message, "details": {"allow": sorted(allowed)}}},
        status_code=405,
        headers={"Allow": methods},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, fields = _validation_message(exc)
        code = "malformed_json" if status == 400 else "invalid_request"
        return JSONResponse(
            {"error": {"code": code, "message": message, "details": {"fields": fields}}}, status_code=status
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return _method_not_allowed(request)
        code = {
            400: "malformed_json",  # FastAPI: "There was an error parsing the body" (e.g. not UTF-8)
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail), "details": {}}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", str(exc).splitlines()[0])
        error = DatabaseUnavailable("the database is unavailable; nothing was done, try again")
        return JSONResponse(error.to_dict(), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        log.exception("unhandled error")
        return JSONResponse(
            {"error": {"code": "internal", "message": "internal error", "details": {}}}, status_code=500
        )


#: The largest body of ``POST /api/v1/events`` (1,000 events of the schema's longest fields fit).
STREAM_BODY_BYTES = 2 * 1024 * 1024


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """The app. Without ``container`` its lifespan starts one from ``settings`` (and closes it at shutdown);
    with one (the CLI, tests) it serves that container and leaves it open. Either way the lifespan starts
    the container's workers and stops them at shutdown."""
    settings = settings or (container.settings if container is not None else get_settings())
    metrics = container.metrics if container is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = container is None
        c = container if container is not None else Container.start(settings, metrics=metrics)
        app.state.container = c
        c.start_workers()
        # Everything built at start-up (the chain, the model, caches) lives as long as the process: keep it
        # out of the cyclic collector's full passes, which would otherwise pause requests for tens of ms.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await c.aclose()
            c.stop_workers()
            if own:
                c.close()

    app = FastAPI(
        title="KnowLedger",
        version="0.1.0",
        description="Consent-gated recommendations with an on-chain consent registry and settlement ledger.",
        lifespan=lifespan,
    )
    if container is not None:
        app.state.container = container
    install_error_handlers(app)
    for module in (
        public, me, partner, sharing, webhooks, funnel, operator, models, insights, agreements, ingest, web
    ):  # fmt: skip
        app.include_router(module.router)
    app.mount("/app/static", StaticFiles(directory=web.STATIC_ROOT), name="static")
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # a file upload, and a stream of up to 1,000 events (a few hundred bytes each)
        larger={"/api/v1/ingest/": settings.max_ingest_bytes, "/api/v1/events": STREAM_BODY_BYTES},
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/api/v1/ping", tags=["ops"], response_model=Ping)
    async def ping() -> dict[str, str]:
        """A trivial endpoint (the benchmark's baseline: same app, same middleware, no chain, no database)."""
        return {"status": "ok"}

    return app


def limit_native_threads() -> None:
    """A serving process scores one learner per request: tiny matrix products, for which BLAS/OpenMP
    worker threads only add contention. One native thread per process (call at process start)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def app_factory() -> FastAPI:
    """``uvicorn --factory backend.main:app_factory``."""
    limit_native_threads()
    return create_app()


def worker_app_factory() -> FastAPI:
    """One of the API processes of ``knowledger serve --workers N``, started by uvicorn's supervisor in a
    fresh interpreter: it builds its own container (its own database engine and chain connection) from the
    environment's settings when it starts. The command already checked, migrated, deployed and seeded before
    it started the processes, so they never seed. It stops when the command is gone."""
    limit_native_threads()
    _stop_with_parent()
    settings = Settings()
    settings.seed_demo = False
    return create_app(settings)


def _stop_with_parent() -> None:
    """Ask this process to stop (SIGTERM: a graceful shutdown) if the process that started it goes away,
    however it ends: an orphaned API process would otherwise keep serving the shared port."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="knowledger-parent-watch", daemon=True).start()
