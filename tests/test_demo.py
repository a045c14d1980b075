"""The README's main job, end to end on the embedded chain (a real EVM) and the real recommender."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from backend.chain import AgreementTerms, Party, split_commission
from backend.cli import app
from backend.demo import run_demo


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    result = run_demo(console, seed=1, epochs=3, out_dir=tmp_path)

    # refused before consent, and again right after the revocation; the late conversion rejected on chain
    assert len(result.refusals) == 3
    assert "profiling" in result.refusals[0] and "product_recommendation" in result.refusals[0]
    assert result.refusals[1].startswith("no on-chain consent for product_recommendation")
    assert result.refusals[2] == "SettlementLedgerNoConsent"

    # recommendations came after a consent check, each with its reasons
    assert result.consent_block > 0
    assert len(result.recommendations) == 5
    for rec in result.recommendations:
        assert rec["why"]["topics"] and rec["why"]["keywords"]

    # the statement is final and equals the exact split of the one settled premium
    terms = AgreementTerms(
        parties=(
            Party("0x" + "11" * 20, 600_000),
            Party("0x" + "22" * 20, 400_000),
            Party("0x" + "33" * 20, 0),
        ),
        partner="0x" + "33" * 20,
        reporter="0x" + "44" * 20,
        commission_rate=80_000,
        attribution_window=1,
        validation_window=1,
        valid_from=0,
        valid_until=1,
    )
    commission, amounts = split_commission(terms, 1_234_567)
    finals = [result.statement[p]["final"] for p in ("platform", "creator", "bank")]
    assert finals == amounts and sum(finals) == commission
    assert all(result.statement[p]["provisional"] == 0 for p in result.statement)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["refusals"] == result.refusals
    assert json.loads((tmp_path / "deployment.json").read_text())["chain_id"] > 0
    assert "refused" in console.export_text()


def test_demo_command_rejects_a_bad_option() -> None:
    outcome = CliRunner().invoke(app, ["demo", "--epochs", "0"])
    assert outcome.exit_code == 2
    assert "epochs" in outcome.output
