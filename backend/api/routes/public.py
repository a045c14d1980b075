"""Unauthenticated reads: health, metrics, purposes and partners (the notices a user reads first), and the
relay of wallet-signed consents (the signature is the authority)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from backend.api.deps import RuntimeDep, SessionDep
from backend.models import ConsentAction, Partner, PartnerPublic
from backend.observability import metrics_response
from backend.services import consent as consent_service
from backend.services.settlement import outbox_counts

router = APIRouter()


@router.get("/health", tags=["ops"])
def health(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    """Database, chain, model and workers. 200 when all can serve, 503 otherwise (with the reason)."""
    out: dict[str, Any] = {"status": "ok"}
    try:
        out["outbox"] = outbox_counts(runtime)
        out["database"] = "ok"
    except Exception as exc:  # the database is down: say so, do not 500
        out["database"] = f"error: {type(exc).__name__}"
        out["status"] = "degraded"
    try:
        head = runtime.gateway.head()
        out["chain"] = {
            "status": "ok",
            "chain_id": runtime.chain.chain_id,
            "block": head.number,
            "target": runtime.chain.target.value,
        }
    except Exception as exc:
        out["chain"] = {"status": "unreachable", "detail": str(exc)}
        out["status"] = "degraded"
    out["model"] = {"version": runtime.model_version, "loaded": runtime.ranker is not None}
    if runtime.ranker is None:
        out["status"] = "degraded"
    out["contracts"] = runtime.deployment.addresses
    indexer = runtime.indexer
    out["indexer"] = {
        "next_block": getattr(indexer, "cursor", lambda: None)(),
        "last_error": getattr(indexer, "last_error", None),
    }
    out["settler"] = {"last_error": getattr(runtime.settler, "last_error", None)}
    if out["status"] != "ok":
        response.status_code = 503
    return out


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus exposition format."""
    return metrics_response(runtime)


@router.get("/api/v1/purposes", tags=["consent"])
def purposes(runtime: RuntimeDep) -> dict[str, Any]:
    return consent_service.purpose_list(runtime)


@router.get("/api/v1/partners", tags=["consent"], response_model=list[PartnerPublic])
def partners(session: SessionDep) -> list[Partner]:
    return list(session.exec(select(Partner).order_by(Partner.id)).all())


class RelayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ConsentAction
    #: The EIP-712 ``message`` that was signed (as returned in ``typed_data.message``).
    message: dict[str, Any]
    #: ``r‖s‖v`` (65 bytes) or EIP-2098 ``r‖vs`` (64 bytes), hex.
    signature: str = Field(min_length=128, max_length=132)
    #: The receipt whose hash is ``message.receiptHash`` (grants).
    receipt: dict[str, Any] | None = None


@router.post("/api/v1/consents/relay", tags=["consent"], status_code=201)
def relay(body: RelayBody, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    """Relay a wallet-signed grant or revocation to the registry (the service pays the gas)."""
    event = consent_service.relay(runtime, session, body.message, body.signature, body.receipt, body.action)
    return consent_service.event_public(event, with_receipt=True)
