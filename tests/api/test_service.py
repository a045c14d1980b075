"""Service behaviour beyond single endpoints: start-up errors, the schema, the consent gate's freshness,
reversal and finality, the indexer's resumption, privacy and erasure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from backend.bootstrap import StartupError
from backend.chain import Purpose
from backend.cli import app as cli
from backend.container import Container
from backend.core.config import Settings, describe_settings_error
from backend.core.db import make_engine, migrate
from backend.models import ChainEvent, IndexerCursor, Profile, User
from backend.services.indexer import Indexer

from ._live import free_port
from .conftest import OPERATOR_KEY, Demo, Service

DAY = 86_400


# ---------------------------------------------------------------------------------------------- settings
def test_a_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWLEDGER_DATABASE_URL", "mysql://nope")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert describe_settings_error(info.value).startswith("bad setting: KNOWLEDGER_DATABASE_URL:")

    outcome = CliRunner().invoke(cli, ["serve"])
    assert outcome.exit_code == 2
    assert "KNOWLEDGER_DATABASE_URL" in outcome.output and "Traceback" not in outcome.output


def test_an_unreachable_database_stops_start_up_with_its_name(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        operator_key=OPERATOR_KEY,
        _env_file=None,  # type: ignore[call-arg]
    )
    with pytest.raises(StartupError, match="KNOWLEDGER_DATABASE_URL: cannot open"):
        Container.start(settings)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"KNOWLEDGER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
            "KNOWLEDGER_DATABASE_URL",
        ),
        (
            {
                "KNOWLEDGER_CHAIN_TARGET": "rpc",
                "KNOWLEDGER_RPC_URL": "http://127.0.0.1:1",
                "KNOWLEDGER_PRIVATE_KEY": "0x" + "11" * 32,
                "KNOWLEDGER_DATABASE_URL": "sqlite:///{state}/k.db",
            },
            "KNOWLEDGER_RPC_URL",
        ),
    ],
    ids=["database-unreachable", "rpc-without-a-node"],
)
def test_an_expected_start_up_error_is_one_line_and_exit_2(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: str
) -> None:
    monkeypatch.setenv("KNOWLEDGER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("KNOWLEDGER_MODEL_PATH", str(demo.model_dir))
    monkeypatch.setenv("KNOWLEDGER_OPERATOR_KEY", OPERATOR_KEY)
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(state=tmp_path))
    outcome = CliRunner().invoke(cli, ["serve", "--port", str(free_port())])
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    assert outcome.exit_code == 2, outcome.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], outcome.output
    assert "unexpected" not in lines[0]


@pytest.mark.anvil
def test_a_network_without_a_manifest_stops_start_up(tmp_path: Path, anvil_node: object) -> None:
    settings = Settings(
        state_dir=tmp_path,
        chain_target="devnet",
        rpc_url=anvil_node.url,  # type: ignore[attr-defined]
        auto_deploy=False,
        manifest_path=tmp_path / "missing.json",
        operator_key=OPERATOR_KEY,
        _env_file=None,  # type: ignore[call-arg]
    )
    with pytest.raises(StartupError, match="KNOWLEDGER_MANIFEST_PATH: no deployment manifest"):
        Container.start(settings)


pytestmark_anvil = pytest.mark.anvil
test_a_network_without_a_manifest_stops_start_up = pytest.mark.anvil(
    test_a_network_without_a_manifest_stops_start_up
)


# ---------------------------------------------------------------------------------------------- schema
def test_the_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


# ---------------------------------------------------------------------------------------------- consent gate
def test_a_revocation_made_outside_the_api_is_seen_by_the_next_request(service: Service) -> None:
    """The gate keeps no answer across blocks: a revocation sent straight to the registry (not through this
    API, so nothing here could invalidate anything) refuses the very next request."""
    user = service.new_user()
    service.grant(user)
    bank = service.partner()
    for _ in range(3):  # warm whatever could be cached
        assert (
            service.api.post(
                "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank
            ).status_code
            == 200
        )
    rt = service.container
    subject = bytes.fromhex(user["pseudonym"][2:])
    rt.deployment.consent.revoke(
        subject, rt.deployment.accounts.partner, Purpose.PROFILING, sender=rt.roles.registrar
    )
    r = service.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank)
    assert r.status_code == 403 and r.json()["error"]["details"]["missing"] == ["profiling"]


def test_a_new_partner_notice_voids_earlier_consent(service: Service) -> None:
    user = service.new_user()
    service.grant(user, "insurer")
    insurer = service.partner("insurer")
    assert (
        service.api.post(
            "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=insurer
        ).status_code
        == 200
    )
    r = service.api.put(
        "/api/v1/partners/insurer/notice", json={"notice_text": "A clearer notice."}, headers=service.operator
    )
    assert r.status_code == 200 and r.json()["notice_version"] == 2
    r = service.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=insurer)
    assert r.status_code == 403
    service.grant(user, "insurer")  # consent again, to the new notice
    assert (
        service.api.post(
            "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=insurer
        ).status_code
        == 200
    )


# ------------------------------------------------------------------------------- ledger lifecycle
def test_reversal_then_finality_keep_the_statement_equal_to_the_chain(
    make_service: Callable[..., Service],
) -> None:
    svc = make_service()
    api, bank = svc.api, svc.partner()
    user = svc.new_user()
    svc.grant(user)
    rec = api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank).json()
    ids = []
    for i, value in enumerate((100_000, 200_000, 300_000)):
        body = {"recommendation_id": rec["recommendation_id"], "order_id": f"R-{i}", "value": value}
        ids.append(api.post("/api/v1/conversions", json=body, headers=bank).json()["id"])
    api.post("/api/v1/operator/settle", headers=svc.operator)
    rows = [api.get(f"/api/v1/conversions/{i}", headers=bank).json() for i in ids]
    assert {r["batch_id"] for r in rows} == {rows[0]["batch_id"]}  # one batch

    r = api.post(f"/api/v1/conversions/{ids[1]}/reversal", headers=bank)
    assert r.status_code == 202 and r.json()["state"] == "reversal_pending"
    api.post("/api/v1/operator/settle", headers=svc.operator)
    reversed_row = api.get(f"/api/v1/conversions/{ids[1]}", headers=bank).json()
    assert reversed_row["state"] == "reversed" and reversed_row["reversal_tx_hash"]

    agreement_id = rows[0]["agreement_id"]
    st = api.get(f"/api/v1/ledger/agreements/{agreement_id}/statement", headers=bank).json()
    assert [p["reversed"] for p in st["parties"]] == [int(a) for a in reversed_row["amounts"]]
    assert api.get(f"/api/v1/ledger/agreements/{agreement_id}/reconcile", headers=bank).json()["ok"]

    svc.container.chain.increase_time(15 * DAY)  # past the 14-day validation window
    api.post("/api/v1/operator/settle", headers=svc.operator)
    st = api.get(f"/api/v1/ledger/agreements/{agreement_id}/statement", headers=bank).json()
    finals = [sum(int(r["amounts"][k]) for r in (rows[0], rows[2])) for k in range(3)]
    assert [p["final"] for p in st["parties"]] == finals
    assert all(p["provisional"] == 0 for p in st["parties"])
    late = api.post(f"/api/v1/conversions/{ids[0]}/reversal", headers=bank)
    assert late.status_code == 409 and "final" in late.json()["error"]["message"]
    assert api.get(f"/api/v1/ledger/agreements/{agreement_id}/reconcile", headers=bank).json()["ok"]


def test_reconcile_reports_a_tampered_statement_to_the_smallest_unit(
    make_service: Callable[..., Service],
) -> None:
    from backend.models import Conversion

    svc = make_service()
    api, bank = svc.api, svc.partner()
    user = svc.new_user()
    svc.grant(user)
    rec = api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank).json()
    conv = api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec["recommendation_id"], "order_id": "T-1", "value": 500_000},
        headers=bank,
    ).json()
    api.post("/api/v1/operator/settle", headers=svc.operator)
    with Session(svc.container.engine) as s:  # someone edits the service's copy
        row = s.get(Conversion, conv["id"])
        assert row is not None
        row.amounts = [str(int(row.amounts[0]) + 1), *row.amounts[1:]]
        s.add(row)
        s.commit()
    rc = api.get(f"/api/v1/ledger/agreements/{conv['agreement_id']}/reconcile", headers=bank).json()
    assert rc["ok"] is False
    assert rc["parties"][0]["statement_minus_events"]["provisional"] == 1
    assert rc["parties"][0]["ledger_minus_events"]["provisional"] == 0


# ---------------------------------------------------------------------------------------------- indexer
def test_the_indexer_resumes_from_its_cursor(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    rt = svc.container
    first = Indexer(rt.engine, rt.gateway, rt.deployment, rt.indexer.confirmations).run_once()
    assert first > 0
    with Session(rt.engine) as s:
        stored = len(s.exec(select(ChainEvent)).all())
        cursor = s.get(IndexerCursor, "events")
    assert stored == first and cursor is not None and cursor.next_block == rt.chain.block_number + 1
    assert (
        Indexer(rt.engine, rt.gateway, rt.deployment, rt.indexer.confirmations).run_once() == 0
    )  # a restarted indexer takes nothing twice

    user = svc.new_user()
    svc.grant(user)  # two new ConsentGranted events
    restarted = Indexer(rt.engine, rt.gateway, rt.deployment, rt.indexer.confirmations)
    assert restarted.run_once() == 2
    with Session(rt.engine) as s:
        names = [e.name for e in s.exec(select(ChainEvent).order_by(ChainEvent.id)).all()]
    assert names[-2:] == ["ConsentGranted", "ConsentGranted"]


def test_the_indexer_waits_for_confirmations(make_service: Callable[..., Service]) -> None:
    svc = make_service(index_confirmations=3)
    rt = svc.container
    idx = Indexer(rt.engine, rt.gateway, rt.deployment, rt.indexer.confirmations)
    idx.run_once()
    assert idx.cursor() == rt.chain.block_number - 3 + 1
    rt.chain.mine(3)
    idx.run_once()
    assert idx.cursor() == rt.chain.block_number - 3 + 1


# ---------------------------------------------------------------------------------------------- privacy
def test_partner_responses_never_carry_the_platform_user_id(service: Service) -> None:
    user = service.new_user()
    platform_id = service.api.get("/api/v1/me/export", headers=user["headers"]).json()["user"][
        "platform_user_id"
    ]
    service.grant(user)
    bank = service.partner()
    rec = service.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank)
    conv = service.api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec.json()["recommendation_id"], "order_id": "P-1", "value": 1_000},
        headers=bank,
    )
    agreement = conv.json()["agreement_id"]
    for r in (rec, conv, service.api.get(f"/api/v1/ledger/agreements/{agreement}/statement", headers=bank)):
        assert r.status_code < 300
        assert platform_id not in r.text and user["id"] not in r.text


def test_erasure_unlinks_the_pseudonym_and_revokes_on_chain(service: Service) -> None:
    user = service.new_user()
    service.grant(user)
    exported = service.api.get("/api/v1/me/export", headers=user["headers"]).json()
    assert exported["profile"] is not None and len(exported["consent_history"]) == 2

    r = service.api.request("DELETE", "/api/v1/me", json={"confirm": "erase"}, headers=user["headers"])
    assert r.status_code == 200 and len(r.json()["revoked_on_chain"]) == 2
    rt = service.container
    subject = bytes.fromhex(user["pseudonym"][2:])
    assert rt.deployment.consent.consent_mask(subject, rt.deployment.accounts.partner) == 0
    with Session(rt.engine) as s:
        row = s.get(User, user["id"])
        assert row is not None and row.user_key is None and row.platform_user_id is None and row.erased_at
        assert s.get(Profile, user["id"]) is None
    assert service.api.get("/api/v1/me", headers=user["headers"]).status_code == 401
    r = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner()
    )
    assert r.status_code == 404


# ---------------------------------------------------------------------------------------------- agreements
def test_an_agreement_proposed_by_the_operator_activates_with_relayed_signatures(
    make_service: Callable[..., Service],
) -> None:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    svc = make_service()
    named = svc.container.roles.named
    assert named is not None
    body = {
        "partner_id": "bank",
        "parties": [
            {"account": named.platform, "share": 700_000},
            {"account": named.creator, "share": 300_000},
            {"account": named.partner, "share": 0},
        ],
        "commission_rate": 50_000,
        "attribution_window_days": 7,
    }
    r = svc.api.post("/api/v1/agreements", json=body, headers=svc.operator)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "proposed" and created["terms"]["commission_rate"] == 50_000
    agreement_id = created["id"]
    chain_hash = svc.container.deployment.agreements.agreement_of(agreement_id).terms_hash
    assert "0x" + bytes(chain_hash).hex() == created["terms_hash"]  # the chain holds only the hash

    for wallet in (named.creator, named.partner):
        td = svc.api.get(f"/api/v1/agreements/{agreement_id}/typed-data", params={"party": wallet}).json()
        typed = td["typed_data"]
        signed = Account.sign_message(encode_typed_data(full_message=typed), wallet.private_key)
        acc = {
            "party": wallet,
            "deadline": typed["message"]["deadline"],
            "signature": "0x" + signed.signature.hex(),
        }
        r = svc.api.post(f"/api/v1/agreements/{agreement_id}/acceptances", json=acc)
        assert r.status_code == 201, r.text
    assert r.json()["status"] == "active"

    # a forged acceptance is refused by the contract, by name
    r = svc.api.post("/api/v1/agreements", json=body, headers=svc.operator)
    second = r.json()["id"]
    td = svc.api.get(f"/api/v1/agreements/{second}/typed-data", params={"party": named.creator}).json()
    forged = Account.sign_message(encode_typed_data(full_message=td["typed_data"]), Account.create().key)
    acc = {
        "party": named.creator,
        "deadline": td["typed_data"]["message"]["deadline"],
        "signature": "0x" + forged.signature.hex(),
    }
    r = svc.api.post(f"/api/v1/agreements/{second}/acceptances", json=acc)
    assert (
        r.status_code == 422
        and r.json()["error"]["details"]["chain_error"] == "PartnershipAgreementsInvalidSignature"
    )

    # the partner sees its new agreement, with the terms and parties
    listed = svc.api.get("/api/v1/ledger/agreements", headers=svc.partner()).json()["agreements"]
    assert {a["id"] for a in listed} >= {agreement_id, second}


def test_the_receipt_hash_is_what_the_chain_recorded(service: Service) -> None:
    from backend.services.consent import receipt_hash

    user = service.new_user()
    grant = service.grant(user, "insurer", ("marketing_contact",))[0]
    body = service.api.get(f"/api/v1/me/receipts/{grant['receipt_id']}", headers=user["headers"]).json()
    receipt = body["receipt"]
    # the receipt carries the TS 27560 / Kantara core fields, and the pseudonym, never the platform's id
    for key in (
        "version",
        "receipt_id",
        "timestamp",
        "jurisdiction",
        "pii_principal_id",
        "pii_controllers",
        "services",
        "collection_method",
        "sensitive",
    ):
        assert key in receipt
    assert receipt["pii_principal_id"] == user["pseudonym"]
    assert "0x" + receipt_hash(receipt).hex() == body["receipt_hash"] == grant["receipt_hash"]
    rt = service.container
    logged = [
        e for e in rt.chain.get_logs(rt.deployment.consent.address, [], 0) if e.tx_hash == grant["tx_hash"]
    ]
    assert [e.name for e in logged] == ["ConsentGranted"]
    assert "0x" + bytes(logged[0].args["receiptHash"]).hex() == grant["receipt_hash"]


def test_profile_course_ids_map_to_their_rows_in_the_topic_space(service: Service) -> None:
    split = service.split  # type: ignore[attr-defined]
    items = split.train_dataset.items["item_id"].tolist()
    user = service.new_user()
    profile = split.profiles.profile(split.user_ids[0]).to_dict()
    body = {"profile": profile, "course_ids": [items[700], items[3], items[512]], "product_ids": []}
    r = service.api.put(f"/api/v1/users/{user['id']}/profile", json=body, headers=service.operator)
    assert r.status_code == 200, r.text
    with Session(service.container.engine) as s:
        stored = s.get(Profile, user["id"])
        assert stored is not None and stored.course_indices == [700, 3, 512]
