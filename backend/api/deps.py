"""FastAPI dependencies: the services (each built once by :class:`backend.container.Container`), a
database session, and the three kinds of caller.

- users: ``Authorization: Bearer <token>`` (a token the operator issued at sign-in; see the README for
  plugging in an OIDC provider instead);
- partners: ``X-API-Key: pk_…`` (stored as SHA-256);
- the operator (also the consent registrar): ``X-API-Key: op_…``.

A route names only the services it calls (``ConsentDep``, ``LedgerDep``…); tests override any of these
with ``app.dependency_overrides``.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from backend.container import Container
from backend.errors import Forbidden, ServiceNotReady, Unauthenticated
from backend.models import User
from backend.services.agreements import AgreementService
from backend.services.audiences import AudienceService
from backend.services.consent import ConsentService
from backend.services.conversions import ConversionService
from backend.services.directory import Directory, PartnerAuth
from backend.services.experiment import ExperimentService
from backend.services.funnel import FunnelService
from backend.services.gateway import ChainGateway
from backend.services.health import HealthService
from backend.services.ingest import IngestService
from backend.services.insights import InsightsService
from backend.services.learner_view import LearnerView
from backend.services.ledger import LedgerService
from backend.services.lifecycle import ModelLifecycle
from backend.services.partners import PartnerService
from backend.services.recommend import RecommendationService
from backend.services.rounds import Rounds
from backend.services.sharing import DataSharingService
from backend.services.training import ModelTrainer
from backend.services.users import ProfileService, UserService
from backend.services.webhooks import WebhookService

T = TypeVar("T")


def container_of(request: Request) -> Container:
    container = getattr(request.app.state, "container", None)
    if container is None:
        raise ServiceNotReady("the service is starting")
    return container


async def get_container(request: Request) -> Container:
    """(async: a plain attribute read, no need for a worker thread)"""
    return container_of(request)


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_session(container: ContainerDep) -> AsyncIterator[Session]:
    """(async: opening a session does no I/O; a worker-thread hop per request would cost more)"""
    with Session(container.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _component(name: str) -> Callable[[Request], Any]:
    # reads the container from the request itself rather than through ``ContainerDep``: one dependency
    # fewer for FastAPI to solve per component, per request (the hot path names three)
    async def get(request: Request) -> Any:
        return getattr(container_of(request), name)

    get.__name__ = f"get_{name}"
    return get


get_gateway = _component("gateway")
get_directory = _component("directory")
get_consent = _component("consent")
get_users = _component("users")
get_profiles = _component("profiles")
get_partners = _component("partners")
get_recommendations = _component("recommendations")
get_conversions = _component("conversions")
get_agreements = _component("agreements")
get_ledger = _component("ledger")
get_experiment = _component("experiment")
get_insights = _component("insights")
get_rounds = _component("rounds")
get_health = _component("health")
get_ingest = _component("ingest")
get_learner_view = _component("learner_view")
get_models = _component("models")
get_trainer = _component("trainer")
get_sharing = _component("sharing")
get_audiences = _component("audiences")
get_webhooks = _component("webhooks")
get_funnel = _component("funnel")

GatewayDep = Annotated[ChainGateway, Depends(get_gateway)]
DirectoryDep = Annotated[Directory, Depends(get_directory)]
ConsentDep = Annotated[ConsentService, Depends(get_consent)]
UsersDep = Annotated[UserService, Depends(get_users)]
ProfilesDep = Annotated[ProfileService, Depends(get_profiles)]
PartnersDep = Annotated[PartnerService, Depends(get_partners)]
RecommendationsDep = Annotated[RecommendationService, Depends(get_recommendations)]
ConversionsDep = Annotated[ConversionService, Depends(get_conversions)]
AgreementsDep = Annotated[AgreementService, Depends(get_agreements)]
LedgerDep = Annotated[LedgerService, Depends(get_ledger)]
ExperimentDep = Annotated[ExperimentService, Depends(get_experiment)]
InsightsDep = Annotated[InsightsService, Depends(get_insights)]
RoundsDep = Annotated[Rounds, Depends(get_rounds)]
HealthDep = Annotated[HealthService, Depends(get_health)]
IngestDep = Annotated[IngestService, Depends(get_ingest)]
LearnerViewDep = Annotated[LearnerView, Depends(get_learner_view)]
ModelsDep = Annotated[ModelLifecycle, Depends(get_models)]
TrainerDep = Annotated[ModelTrainer, Depends(get_trainer)]
SharingDep = Annotated[DataSharingService, Depends(get_sharing)]
AudiencesDep = Annotated[AudienceService, Depends(get_audiences)]
WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
FunnelDep = Annotated[FunnelService, Depends(get_funnel)]


async def offload(gateway: ChainGateway, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` where it belongs: inline when the chain is in this process (its calls are CPU work under
    one lock; a worker thread would only fight the event loop for the GIL and starve), in a worker thread
    when the chain is a node on the network (its calls wait on I/O)."""
    if gateway.in_process:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args, limiter=_threads(gateway.threads))


_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _threads(total: int) -> anyio.CapacityLimiter:
    """The worker-thread limiter of this event loop for requests that ask a chain on the network."""
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(total)
    return limiter


# ------------------------------------------------------------------------------------------ hot path
ModelT = TypeVar("ModelT", bound=BaseModel)


async def hot_path_body(request: Request, model: type[ModelT]) -> ModelT:
    """The JSON body of ``request`` as ``model``, read as FastAPI reads a body parameter (JSON when the
    content type is absent, ``application/json`` or ``application/*+json``; the raw text otherwise, which no
    model accepts), and failing with the same ``RequestValidationError`` (so the same 400 or 422)."""
    raw = await request.body()
    content_type = request.headers.get("content-type")
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if _is_json(content_type):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ]
            ) from None
        except ValueError:  # not UTF-8
            raise HTTPException(status_code=400, detail="There was an error parsing the body") from None
    else:
        data = raw.decode("utf-8", errors="replace")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def hot_path_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """What a route that reads ``model`` with :func:`hot_path_body` and a partner's key declares in the
    OpenAPI document (FastAPI would have derived it from the parameters)."""
    return {
        "parameters": [
            {
                "name": "x-api-key",
                "in": "header",
                "required": False,
                "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "X-Api-Key"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
    }


# ------------------------------------------------------------------------------------------ callers
async def current_partner(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> PartnerAuth:
    """(the directory from the request itself: on the hot path of every partner call, one dependency fewer
    for FastAPI to solve)"""
    directory = container_of(request).directory
    if not x_api_key:
        raise Unauthenticated("missing X-API-Key header (a partner API key)")
    await directory.current_async()
    partner = directory.partner_for_key(x_api_key)
    if partner is None:
        if directory.is_operator_key(x_api_key):
            raise Forbidden("this endpoint is for partners; the operator key cannot act as a partner")
        raise Unauthenticated("unknown API key")
    return partner


async def current_operator(
    directory: DirectoryDep, x_api_key: Annotated[str | None, Header()] = None
) -> None:
    if not x_api_key:
        raise Unauthenticated("missing X-API-Key header (the operator key)")
    await directory.current_async()
    if not directory.is_operator_key(x_api_key):
        if directory.partner_for_key(x_api_key) is not None:
            raise Forbidden("this endpoint is for the operator")
        raise Unauthenticated("unknown API key")


async def current_user(
    session: SessionDep, users: UsersDep, authorization: Annotated[str | None, Header()] = None
) -> User:
    """The signed-in user. To use an OIDC provider instead, verify its ID token here (issuer, audience,
    signature against the provider's JWKS) and look the user up by ``platform_user_id == claims["sub"]``."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthenticated("missing 'Authorization: Bearer <token>' header")
    user = users.by_token(session, authorization[7:].strip())
    if user is None:
        raise Unauthenticated("unknown or expired token")
    return user


async def current_caller(
    directory: DirectoryDep, x_api_key: Annotated[str | None, Header()] = None
) -> tuple[str, PartnerAuth | None]:
    """The operator (``("operator", None)``) or a partner (``(partner id, partner)``)."""
    if not x_api_key:
        raise Unauthenticated("missing X-API-Key header (the operator key or a partner API key)")
    await directory.current_async()
    if directory.is_operator_key(x_api_key):
        return "operator", None
    partner = directory.partner_for_key(x_api_key)
    if partner is None:
        raise Unauthenticated("unknown API key")
    return partner.id, partner


PartnerDep = Annotated[PartnerAuth, Depends(current_partner)]
CallerDep = Annotated[tuple[str, PartnerAuth | None], Depends(current_caller)]
OperatorDep = Annotated[None, Depends(current_operator)]
UserDep = Annotated[User, Depends(current_user)]
