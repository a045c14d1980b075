"""The hostile suite: the faults real deployments see, against real processes (``knowledger serve``, anvil
behind a TCP proxy, a private PostgreSQL cluster), bounded to CI's time. ``scripts/bench_faults.py`` runs
the same scenarios at full length. Every assertion is about what was lost, doubled or wrongly served, never
about how fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import faults

from .conftest import Demo

pytestmark = pytest.mark.anvil


@pytest.fixture
def model(demo: Demo, anvil_bin: Path) -> Path:
    return demo.model_dir


def _no_loss(result: dict[str, object]) -> None:
    assert result["accepted"], result
    assert (result["lost"], result["doubled"], result["rejected"], result["still_open"]) == (0, 0, 0, 0), (
        result
    )


def test_a_chain_cut_under_a_steady_stream_of_conversions_loses_nothing(tmp_path: Path, model: Path) -> None:
    result = faults.outage(tmp_path, model, down_s=3.0, rate_hz=10.0)
    _no_loss(result)
    assert result["refused"] == 0  # accepted during the cut too: each settled once the chain came back


@pytest.mark.parametrize("skew_s", [900, -900], ids=["chain-ahead", "chain-behind"])
def test_a_chain_clock_ahead_or_behind_loses_nothing(tmp_path: Path, model: Path, skew_s: int) -> None:
    _no_loss(faults.outage(tmp_path, model, down_s=1.5, rate_hz=8.0, skew_s=skew_s))


def test_kill_9_in_the_middle_of_settlement_loses_and_doubles_nothing(tmp_path: Path, model: Path) -> None:
    result = faults.kill9(tmp_path, model, conversions=60, batch=5)
    _no_loss(result)


@pytest.mark.postgres
def test_a_postgresql_restart_in_the_middle_of_settlement_loses_nothing(tmp_path: Path, model: Path) -> None:
    if not faults.postgres_binaries():
        if os.environ.get("KNOWLEDGER_REQUIRE_POSTGRES", "") not in ("", "0"):
            pytest.fail("no PostgreSQL server binaries (initdb, pg_ctl) for a private cluster")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) for a private cluster")
    result = faults.pg_restart(tmp_path, model, down_s=2.0, rate_hz=8.0)
    _no_loss(result)
    assert result["server_errors"] == 0, result  # refused with 503 while the database was away, never 500


def test_a_revocation_storm_serves_nothing_after_a_revoke_and_the_audit_finds_no_violation(
    tmp_path: Path, model: Path
) -> None:
    result = faults.storm(tmp_path, model, learners_n=12, concurrency=8, requests=400)
    assert result["revocations"] > 0 and result["served"] > 0 and result["refused"] > 0, result
    assert result["errors"] == 0, result
    assert result["served_after_revoke"] == 0, result
    assert (result["audit_exit"], result["audit_violations"]) == (0, 0), result
    assert result["audit_answers"] == result["served"], result
    # a log row moved to a block where its learner had revoked is caught, by its id
    assert result["tampered_caught"] is True and result["tampered_exit"] == 1, result


def test_a_second_serve_on_a_state_directory_in_use_refuses_and_a_kill_9_loses_nothing(
    tmp_path: Path, model: Path
) -> None:
    """On the embedded default: a second ``serve`` on the same state directory refuses before touching it,
    naming the first; the first keeps serving; after ``kill -9`` the next start has every consent,
    conversion and statement, and reconciles."""
    state = tmp_path / "state"
    first = faults.serve(state, model, chain={"KNOWLEDGER_CHAIN_TARGET": "embedded"})
    try:
        bank = first.bank
        learner = faults.learners(first, 1)[0]
        rec = faults.recommendation(first, learner)
        with first.client() as api:
            ids = [
                api.post(
                    "/api/v1/conversions",
                    json={"recommendation_id": rec, "order_id": f"k-{n}", "value": 30_000 + n},
                    headers=bank,
                ).json()["id"]
                for n in range(5)
            ]
            api.post("/api/v1/operator/settle", headers=first.operator).raise_for_status()
        second = subprocess.run(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(faults.free_port())],
            cwd=faults.ROOT, env=first.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"in use by process {first.proc.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        with first.client() as api:  # untouched: its learners, keys and data still answer
            r = api.post("/api/v1/recommendations", json={"subject": learner["pseudonym"]}, headers=bank)
            assert r.status_code == 200, r.text
        first.kill9()
        again = faults.serve(state, model, chain={"KNOWLEDGER_CHAIN_TARGET": "embedded"})
        try:
            with again.client() as api:
                assert again.bank == bank
                r = api.post("/api/v1/recommendations", json={"subject": learner["pseudonym"]}, headers=bank)
                assert r.status_code == 200, r.text  # consent survived
                rows = [api.get(f"/api/v1/conversions/{i}", headers=bank).json() for i in ids]
                assert {row["state"] for row in rows} == {"settled"}
                agreement = rows[0]["agreement_id"]
                rc = api.get(f"/api/v1/ledger/agreements/{agreement}/reconcile", headers=bank).json()
                assert rc["ok"] is True and rc["conversions"]["on_chain"] == 5, json.dumps(rc)
        finally:
            again.stop()
    finally:
        first.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(first.url + "/health", timeout=2)
