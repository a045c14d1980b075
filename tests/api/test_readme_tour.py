"""The README's curl tour runs as written: the block is read out of README.md and run by bash against a real
``knowledger serve`` on the embedded default (a fresh state directory, its own port)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

from tests import faults

from .conftest import Demo

README = Path(__file__).resolve().parents[2] / "README.md"


def tour() -> str:
    """The second ``bash`` block after the tour's heading (the first one starts the service)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### A tour with curl") :]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert blocks[0].strip().startswith("make serve"), blocks[0]
    return blocks[1]


def test_the_readme_tour_runs_verbatim(demo: Demo, tmp_path: Path) -> None:
    state = tmp_path / "var"
    served = faults.serve(
        state, demo.model_dir, chain={"KNOWLEDGER_CHAIN_TARGET": "embedded"}, operator_key=None
    )
    try:
        # the readiness line is printed once the port answers: the first request after it succeeds
        assert httpx.get(served.url + "/health", timeout=10).status_code == 200
        done = subprocess.run(
            ["bash", "-c", tour()],
            env={"PATH": "/usr/bin:/bin", "API": served.url, "KNOWLEDGER_STATE_DIR": str(state)},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        served.stop()
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in out + done.stderr and "error" not in done.stderr.lower(), done.stderr
    assert '"pseudonym":"0x' in out
    assert out.count('"code":"consent_required"') == 2  # before the grants, and right after the revocation
    assert '"action":"grant"' in out and '"receipt_hash":"0x' in out
    assert '"recommendation_id":"rec_' in out and '"verified_at_block":' in out
    assert '"state":"pending"' in out  # the conversion, accepted into the outbox
    assert '"ok":true' in out  # reconciled with the chain
    assert '"code":"invalid_request"' in out
    assert '"erased":true' in out
    assert '"status":"ok"' in out and "knowledger_http_requests" in out
