"""Browser test helpers: Debian's Chromium driven headless by Playwright for Python.

Playwright's own browser download is not used: the system browser (``/usr/bin/chromium``, Debian's
``chromium`` package, or ``KNOWLEDGER_CHROMIUM``) is launched through ``executable_path``. Without it the
browser tests skip with a message, unless ``KNOWLEDGER_REQUIRE_BROWSER=1`` (CI), which makes them fail.
Screenshots are written to ``reports/screenshots/`` (a CI artifact; not committed).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "reports" / "screenshots"

#: Flags for a root user in a container with a closed network (no sandbox, no GPU, no background traffic).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def _required() -> bool:
    return os.environ.get("KNOWLEDGER_REQUIRE_BROWSER", "") not in ("", "0", "false", "no")


def chromium_path() -> str | None:
    explicit = os.environ.get("KNOWLEDGER_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


def _unavailable(message: str) -> None:
    if _required():
        pytest.fail(message + " (KNOWLEDGER_REQUIRE_BROWSER=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
    path = chromium_path()
    if path is None:
        _unavailable("no Chromium found: apt-get install chromium (or set KNOWLEDGER_CHROMIUM)")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:
        pw.stop()
        _unavailable(f"Chromium at {path} did not start: {exc}")
    try:
        yield b
    finally:
        b.close()
        pw.stop()


def new_page(browser: Any, viewport: dict[str, int] = DESKTOP, *, bypass_csp: bool = False) -> Any:
    """A page in a fresh context (no shared storage). ``bypass_csp`` only to inject the axe checker."""
    context = browser.new_context(
        viewport=viewport, accept_downloads=True, locale="en-GB", timezone_id="UTC", bypass_csp=bypass_csp
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors  # checked by tests: a page must not throw
    return page


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The WCAG 2.1 A and AA rules axe-core checks automatically.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page: Any) -> list[str]:
    """Run axe-core (npm, pinned in package.json) on the page as it is now; one line per violation."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` (make install does)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async (tags) => {
          const { violations } = await axe.run(document, { runOnly: { type: 'tag', values: tags } });
          const where = (v) => v.nodes.map((n) => n.target.join(' ')).join(', ');
          return violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${where(v)}`);
        }""",
        AXE_TAGS,
    )
    return list(result)


#: Every control's accessible name, computed the way assistive technology does for our markup
#: (aria-labelledby, aria-label, <label for>, then text); the controls without one are returned.
UNLABELLED_CONTROLS_JS = """
() => {
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const name = (e) => {
    const ids = e.getAttribute('aria-labelledby');
    const text = (id) => (document.getElementById(id) || {}).textContent || '';
    if (ids) return ids.split(/\\s+/).map(text).join(' ').trim();
    if (e.getAttribute('aria-label')) return e.getAttribute('aria-label').trim();
    if (e.labels && e.labels.length) return Array.from(e.labels).map((l) => l.textContent).join(' ').trim();
    return (e.textContent || e.value || e.title || '').trim();
  };
  return Array.from(document.querySelectorAll('button, input, select, textarea, a[href], [role=switch]'))
    .filter(visible).filter((e) => !name(e)).map((e) => e.outerHTML.slice(0, 120));
}
"""

#: Whether the page is wider than the viewport (a phone would have to scroll sideways).
OVERFLOW_JS = "() => document.documentElement.scrollWidth - window.innerWidth"
