"""The web pages: a consent dashboard for learners, a settlement ledger for partners and a model and
experiments page for the operator. Static HTML, CSS and JavaScript modules (no build step), served by the
service itself; every page talks to the same JSON API as any other client, with the same credentials.

Each page is ``web/pages/<name>.html`` (its ``<main>``) put into ``web/layout.html`` (head, navigation) once,
at first request."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

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


@dataclass(frozen=True)
class Page:
    path: str
    name: str
    title: str
    nav: str | None = None  # its label in the navigation (None: not listed)
    script: bool = True
    signin: str | None = None  # the credential its sign-in form asks for (``web/signin.html``)
    signin_hint: str = ""


PAGES = (
    Page("/app/", "index", "KnowLedger", script=False),
    Page(
        "/app/consent",
        "consent",
        "Your consents · KnowLedger",
        "My consents",
        signin="Sign-in token",
        signin_hint="Open this page from your learning platform, or paste the sign-in token it gave you.",
    ),
    Page(
        "/app/partner",
        "partner",
        "Settlement ledger · KnowLedger",
        "Partner ledger",
        signin="Partner API key",
    ),
    Page(
        "/app/operator",
        "operator",
        "Model and experiments · KnowLedger",
        "Operator",
        signin="Operator API key",
    ),
)

router = APIRouter(include_in_schema=False)


@cache
def render(page: Page) -> str:
    current = ' aria-current="page"'
    nav = "\n".join(
        f'      <li><a href="{p.path}"{current if p is page else ""}>{escape(p.nav)}</a></li>'
        for p in PAGES
        if p.nav
    )
    script = f'  <script type="module" src="/app/static/{page.name}.js"></script>\n' if page.script else ""
    main = (WEB_ROOT / "pages" / f"{page.name}.html").read_text(encoding="utf-8")
    if page.signin:
        hint = f"  <p>{escape(page.signin_hint)}</p>\n" if page.signin_hint else ""
        form = (WEB_ROOT / "signin.html").read_text(encoding="utf-8")
        form = form.replace("$label", escape(page.signin)).replace("$hint", hint)
        main = main.replace("$signin", form.rstrip())
    if "$funnel" in main:  # the live funnel, shared by the partner's and the operator's pages
        main = main.replace("$funnel", (WEB_ROOT / "funnel.html").read_text(encoding="utf-8").rstrip())
    layout = (WEB_ROOT / "layout.html").read_text(encoding="utf-8")
    return (
        layout.replace("$title", escape(page.title))
        .replace("$script", script)
        .replace("$nav", nav)
        .replace("$main", main.rstrip("\n"))
    )


def _route(page: Page) -> None:
    def serve() -> HTMLResponse:
        return HTMLResponse(render(page), headers=SECURITY_HEADERS)

    router.add_api_route(page.path, serve, methods=["GET"], name=f"page_{page.name}")


for _page in PAGES:
    _route(_page)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)
