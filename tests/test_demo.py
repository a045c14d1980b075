"""The README's main job, end to end through the service on the embedded chain (a real EVM), a real
SQLite database and the real recommender."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from backend.cli import app
from backend.demo import run_demo


def test_demo_tells_the_whole_story_through_the_api(tmp_path: Path) -> None:
    console = Console(record=True, width=140)
    out = tmp_path / "demo"
    result = run_demo(console, seed_=1, epochs=3, out_dir=out)

    # refused before consent and right after the revocation; the late conversion rejected on chain
    assert len(result.refusals) == 3
    assert "profiling" in result.refusals[0] and "product_recommendation" in result.refusals[0]
    assert "product_recommendation" in result.refusals[1] and "profiling" not in result.refusals[1]
    assert result.refusals[2] == "SettlementLedgerNoConsent"

    # recommendations came after an on-chain consent check, each with its reasons
    assert result.consent_block > 0
    assert len(result.recommendations) == 5
    for rec in result.recommendations:
        assert rec["explanation"]["topics"] and rec["explanation"]["keywords"]

    # the settled conversion carries its transaction; the final statement is its exact split
    conv = result.conversion
    assert conv["state"] == "settled" and conv["tx_hash"].startswith("0x") and conv["batch_id"] == 1
    finals = [result.statement[p]["final"] for p in ("platform", "creator", "bank")]
    assert finals == conv["amounts"] and sum(finals) == conv["commission"]
    assert conv["commission"] == 1_234_567 * 80_000 // 1_000_000
    assert all(result.statement[p]["provisional"] == 0 for p in result.statement)
    assert result.reconcile_ok

    # every step went through the HTTP API; the same order id twice was answered with the same conversion
    assert "POST /api/v1/conversions → 200" in result.calls
    assert sum(c.startswith("POST /api/v1/recommendations") for c in result.calls) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refusals"] == result.refusals
    assert json.loads((out / "deployment-embedded.json").read_text())["chain_id"] > 0
    assert "refused" in console.export_text()


def test_demo_command_rejects_a_bad_option() -> None:
    outcome = CliRunner().invoke(app, ["demo", "--epochs", "0"])
    assert outcome.exit_code == 2
    assert "epochs" in outcome.output
