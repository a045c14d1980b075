"""A partner's own check of its statement, as docs/verify-ledger.md tells it: the service runs on a real anvil
devnet and settles conversions in batches (one reversed, one batch finalized after its validation window);
then the two recipes of the doc, the ethers.js script and the cast script, recompute the statement from the
chain's events, the contracts' ABIs and the agreement's terms alone, and must agree with the service's
statement and the ledger's own totals to the smallest unit, for every party and bucket."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backend.chain import connect_devnet
from backend.chain.constants import REPO_ROOT
from backend.chain.devnet import AnvilNode

from .conftest import Service

ETHERS_SCRIPT = REPO_ROOT / "scripts" / "verify_statement.mjs"
CAST_SCRIPT = REPO_ROOT / "scripts" / "verify_statement_cast.sh"
DOC = REPO_ROOT / "docs" / "verify-ledger.md"
NPM_CAST = REPO_ROOT / "node_modules" / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"
BUCKETS = ("provisional", "final", "reversed")


@pytest.fixture(scope="session")
def recipe_tools() -> dict[str, str]:
    """node (with npm's ethers), cast (npm's, else on PATH), jq and bc; skips without one of them, or fails
    under ``KNOWLEDGER_REQUIRE_ANVIL=1`` (CI), like the other anvil tests."""
    found = {
        "node": shutil.which("node"),
        "cast": str(NPM_CAST) if os.access(NPM_CAST, os.X_OK) else shutil.which("cast"),
        "jq": shutil.which("jq"),
        "bc": shutil.which("bc"),
    }
    missing = [name for name, path in found.items() if path is None]
    if not (REPO_ROOT / "node_modules" / "ethers" / "package.json").is_file():
        missing.append("npm package ethers")
    if missing:
        message = (
            f"the verification recipes need {', '.join(missing)}: run `npm ci` in {REPO_ROOT} "
            "(ethers, cast) and install Node.js 20+, jq and bc (`make verify-tools`)"
        )
        if os.environ.get("KNOWLEDGER_REQUIRE_ANVIL", "") not in ("", "0", "false", "no"):
            pytest.fail(f"KNOWLEDGER_REQUIRE_ANVIL=1 but {message}")
        pytest.skip(message)
    return {name: str(path) for name, path in found.items()}


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run a recipe; its exit status and the JSON it printed."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env={**os.environ, **(env or {})}
    )
    assert proc.stdout.strip(), f"{cmd[:2]} printed nothing (status {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def _recipes(
    tools: dict[str, str], rpc: str, manifest: Path, agreement_id: int, terms: Path
) -> dict[str, tuple[int, dict[str, Any]]]:
    """Both recipes, exactly as the doc runs them."""
    ledger = json.loads(manifest.read_text())["contracts"]["SettlementLedger"]
    return {
        "ethers": _run(
            [
                tools["node"],
                str(ETHERS_SCRIPT),
                "--rpc",
                rpc,
                "--manifest",
                str(manifest),
                "--agreement",
                str(agreement_id),
                "--terms",
                str(terms),
            ]
        ),
        "cast": _run(
            [
                "bash",
                str(CAST_SCRIPT),
                rpc,
                ledger["address"],
                str(agreement_id),
                str(terms),
                str(ledger["block_number"]),
            ],
            env={"CAST": tools["cast"]},
        ),
    }


def _settle(svc: Service) -> dict[str, int]:
    r = svc.api.post("/api/v1/operator/settle", headers=svc.operator)
    assert r.status_code == 200, r.text
    return dict(r.json()["round"])


def _activity(svc: Service) -> int:
    """Conversions in three batches: one reversed and two final in the first two (finalized once the chain's
    clock passed their validation window), one reversed and one provisional in the third. Returns the
    agreement id."""
    api, bank = svc.api, svc.partner("bank")
    user = svc.new_user()
    svc.grant(user)

    def recommend() -> str:
        r = api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank)
        assert r.status_code == 200, r.text
        return str(r.json()["recommendation_id"])

    def convert(rec: str, order_id: str, value: int) -> dict[str, Any]:
        body = {"recommendation_id": rec, "order_id": order_id, "value": value}
        r = api.post("/api/v1/conversions", json=body, headers=bank)
        assert r.status_code == 202, r.text
        return dict(r.json())

    def reverse(conversion: dict[str, Any]) -> None:
        r = api.post(f"/api/v1/conversions/{conversion['id']}/reversal", headers=bank)
        assert r.status_code == 202, r.text

    # values whose commission leaves a rounding remainder for parties[0]
    rec = recommend()
    first = [convert(rec, f"A-{i}", v) for i, v in enumerate((125_013, 987_654_321, 3_333_337))]
    assert _settle(svc)["settled"] == 3  # batch size 2: two batches
    reverse(first[1])
    assert _settle(svc)["reversed"] == 1

    agreement_id = int(first[0]["agreement_id"])
    terms = api.get(f"/api/v1/ledger/agreements/{agreement_id}", headers=bank).json()["terms"]
    svc.container.chain.increase_time(int(terms["validation_window"]) + 1)
    assert _settle(svc)["finalized"] == 2

    rec = recommend()
    second = [convert(rec, f"B-{i}", v) for i, v in enumerate((1_000_001, 77_777))]
    assert _settle(svc)["settled"] == 2
    reverse(second[0])
    assert _settle(svc)["reversed"] == 1
    r = api.post("/api/v1/operator/index", headers=svc.operator)
    assert r.status_code == 200, r.text
    states = {api.get(f"/api/v1/conversions/{c['id']}", headers=bank).json()["state"] for c in first + second}
    assert states == {"final", "reversed", "settled"}
    return agreement_id


@pytest.mark.anvil
def test_a_partner_recomputes_its_statement_with_ethers_and_with_cast(
    recipe_tools: dict[str, str], anvil_bin: Path, tmp_path: Path, make_service: Callable[..., Service]
) -> None:
    tools = recipe_tools
    node = AnvilNode(run_dir=tmp_path / "anvil", binary=anvil_bin).start()
    try:
        manifest = tmp_path / "manifest.json"
        svc = make_service(chain=connect_devnet(node), manifest_path=manifest, settle_batch_size=2)
        agreement_id = _activity(svc)
        bank = svc.partner("bank")
        agreement = svc.api.get(f"/api/v1/ledger/agreements/{agreement_id}", headers=bank).json()
        statement = svc.api.get(f"/api/v1/ledger/agreements/{agreement_id}/statement", headers=bank).json()
        terms_file = tmp_path / "terms.json"
        terms_file.write_text(json.dumps(agreement["terms"]))
        # the statement exercises every bucket, the remainder rule included
        platform, creator = statement["parties"][0], statement["parties"][1]
        assert all(platform[b] > 0 and creator[b] > 0 for b in BUCKETS)

        results = _recipes(tools, node.url, manifest, agreement_id, terms_file)
        for name, (status, report) in results.items():
            assert status == 0, (name, report)
            assert report["ok"] is True, (name, report)
            assert report["terms_hash"]["matches"] is True
            assert report["terms_hash"]["on_chain"] == agreement["terms_hash"]
            events = {"ConversionsRecorded": 3, "ConversionReversed": 2, "BatchFinalized": 2}
            assert report["events"] == events
            assert report["conversions"] == 5
            assert [p["account"] for p in report["parties"]] == [p["account"] for p in statement["parties"]]
            for ours, served in zip(report["parties"], statement["parties"], strict=True):
                for bucket in BUCKETS:
                    assert ours["from_events"][bucket] == str(served[bucket]), (name, ours, served)
                    assert ours["ledger_totals"][bucket] == str(served[bucket]), (name, ours, served)
        assert results["ethers"][1] == results["cast"][1]  # the two recipes print the same report

        # terms that are not the agreement's (two shares swapped) are caught by both
        wrong = dict(agreement["terms"])
        wrong["parties"] = [
            {**wrong["parties"][0], "share": wrong["parties"][1]["share"]},
            {**wrong["parties"][1], "share": wrong["parties"][0]["share"]},
            *wrong["parties"][2:],
        ]
        wrong_file = tmp_path / "wrong-terms.json"
        wrong_file.write_text(json.dumps({"terms": wrong}))
        for name, (status, report) in _recipes(tools, node.url, manifest, agreement_id, wrong_file).items():
            assert status == 1, (name, report)
            assert report["ok"] is False and report["terms_hash"]["matches"] is False, name
            assert report["terms_hash"]["on_chain"] == agreement["terms_hash"]
            assert not report["parties"][0]["matches"] and not report["parties"][1]["matches"], name
    finally:
        node.stop()


def test_the_doc_shows_the_cast_recipe_verbatim() -> None:
    """What partners read is what the test above runs."""
    doc = DOC.read_text(encoding="utf-8")
    assert CAST_SCRIPT.read_text(encoding="utf-8") in doc
    assert "node scripts/verify_statement.mjs" in doc
