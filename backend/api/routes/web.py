"""The web pages: a consent dashboard for learners, a settlement ledger for partners and a model and
experiments page for the operator. Static HTML, CSS and JavaScript modules (no build step), served by the
service itself; every page talks to the same JSON API as any other client, with the same credentials."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
STATIC_ROOT = WEB_ROOT / "static"

#: The pages: no inline script or style, nothing from another origin, never framed (a consent toggle must
#: not be clickjacked), no referrer (the learner's sign-in token never leaves in a Referer header).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

PAGES = {"": "index.html", "consent": "consent.html", "partner": "partner.html", "operator": "operator.html"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


def _page(name: str) -> FileResponse:
    return FileResponse(WEB_ROOT / PAGES[name], media_type="text/html", headers=SECURITY_HEADERS)


@router.get("/app/")
def index() -> FileResponse:
    return _page("")


@router.get("/app/consent")
def consent_page() -> FileResponse:
    return _page("consent")


@router.get("/app/partner")
def partner_page() -> FileResponse:
    return _page("partner")


@router.get("/app/operator")
def operator_page() -> FileResponse:
    return _page("operator")
