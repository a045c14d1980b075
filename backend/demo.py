"""``knowledger demo``: the whole KnowLedger story, told through the service's own HTTP API.

The demo starts the real service on the embedded chain (the in-process eth-tester EVM) and a fresh SQLite
file, then plays every role by calling the API: the operator seeds the demo world, the model is trained
and loaded, a learner grants consent, the bank asks for recommendations (refused before consent, served
after), reports a conversion, the settler records it on chain, the bank reads its statement and reconciles
it against the chain, the learner revokes, and the very next request is refused while a conversion for the
revoked learner is rejected on chain. Each step prints the HTTP call it made and what came back.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from backend.container import Container
from backend.core.config import Settings
from backend.main import create_app
from backend.services.seed import demo_split, train_with_progress

with warnings.catch_warnings():  # Starlette's TestClient warns about its httpx transport; it runs in-process
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

DAY = 86_400
DEMO_OPERATOR_KEY = "op_demo_operator_key_not_secret"


@dataclass
class DemoResult:
    """What the demo did, for the summary and for tests."""

    addresses: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    consent_block: int = 0
    conversion: dict[str, Any] = field(default_factory=dict)
    statement: dict[str, dict[str, int]] = field(default_factory=dict)
    reconcile_ok: bool = False
    refusals: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _Narrator:
    def __init__(self, console: Console, api: TestClient | None = None) -> None:
        self.console = console
        self.api = api
        self.n = 0
        self.calls: list[str] = []

    def step(self, title: str) -> None:
        self.n += 1
        self.console.rule(f"[bold cyan]{self.n}. {title}", align="left")

    def say(self, text: str) -> None:
        self.console.print(f"   {text}")

    def call(self, method: str, path: str, who: dict[str, str], **kwargs: Any) -> Any:
        assert self.api is not None
        r = self.api.request(method, path, headers=who, **kwargs)
        colour = "green" if r.status_code < 400 else "red"
        line = f"{method} {path} → {r.status_code}"
        self.calls.append(line)
        self.console.print(f"   [dim]{method} {path}[/] → [{colour}]{r.status_code}[/]")
        return r


def _short(text: str) -> str:
    text = text.removeprefix("0x")
    return f"0x{text[:8]}…{text[-4:]}"


def run_demo(
    console: Console | None = None, *, seed_: int = 0, epochs: int = 20, out_dir: Path = Path("var/demo")
) -> DemoResult:
    """Run the story; print it to ``console``; leave the database, manifest and summary under ``out_dir``."""
    console = console or Console()
    say = _Narrator(console)
    result = DemoResult()
    t0 = time.perf_counter()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    say.step("Seed the demo world and train the recommender")
    split = demo_split(seed=seed_)
    ds = split.train_dataset
    say.say(
        f"{len(ds.users):,} learners, {len(ds.items):,} courses/e-books/audio, {len(ds.interactions):,} "
        f"interactions, {len(ds.products)} finance and insurance products"
    )
    started = time.perf_counter()
    label = "   training the served hybrid model"
    artifact, metrics = train_with_progress(
        console, split, out_dir / "models", epochs, seed_, label=label, transient=True
    )
    result.timings["train_s"] = time.perf_counter() - started
    result.metrics = {k: {m: float(v) for m, v in vals.items()} for k, vals in metrics.items()}
    say.say(
        f"cold-start learners (course history only): NDCG@10 hybrid {metrics['hybrid']['ndcg@10']:.3f} vs "
        f"popularity {metrics['popularity']['ndcg@10']:.3f}; artifact {artifact}"
    )

    say.step("Start the service: deploy the contracts on the embedded chain, open the database")
    settings = Settings(
        state_dir=out_dir,
        model_path=artifact,
        operator_key=SecretStr(DEMO_OPERATOR_KEY),
        background_workers=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    container = Container.start(settings)
    try:
        return _story(console, say, container, split, result, t0, out_dir)
    finally:
        container.close()


def _story(
    console: Console,
    say: _Narrator,
    container: Container,
    split: Any,
    result: DemoResult,
    t0: float,
    out_dir: Path,
) -> DemoResult:
    result.addresses = container.deployment.addresses
    for name, addr in result.addresses.items():
        say.say(f"{name:<22} {addr}")
    say.say(f"database {container.settings.resolved_database_url}; model {container.model.version}")
    seeded = container.seed(split, n_users=200)
    say.say(
        f"seeded Harbour Bank and Evergreen Insurance (notices v1 on chain), {seeded.users} learners "
        f"with pseudonyms and profiles, and agreements {seeded.agreements} (platform 60 %, creator 40 %)"
    )
    api = TestClient(create_app(container=container), raise_server_exceptions=False)
    say.api = api
    operator = {"X-API-Key": DEMO_OPERATOR_KEY}
    bank = {"X-API-Key": seeded.partner_keys["bank"]}

    say.step("A learner signs in; the bank asks for recommendations before any consent")
    platform_id = split.user_ids[int(split.cold_eval_users[0])]
    found = say.call("GET", f"/api/v1/users?platform_user_id={platform_id}", operator).json()
    token = say.call("POST", f"/api/v1/users/{found['id']}/token", operator).json()["token"]
    learner = {"Authorization": f"Bearer {token}"}
    subject = found["pseudonym"]
    say.say(f"learner {platform_id} → pseudonym {_short(subject)} (a keyed hash; the id never leaves)")
    r = say.call("POST", "/api/v1/recommendations", bank, json={"subject": subject, "k": 5})
    result.refusals.append(r.json()["error"]["message"])
    say.say(f"[red]refused[/]: {r.json()['error']['message']}")

    say.step("The learner grants profiling and product-recommendation consent to the bank")
    for purpose in ("profiling", "product_recommendation"):
        g = say.call("PUT", f"/api/v1/me/consents/bank/{purpose}", learner).json()
        say.say(
            f"tx {_short(g['tx_hash'])} in block {g['block_number']}; receipt {g['receipt_id']} "
            f"(hash {_short(g['receipt_hash'])} on chain)"
        )

    say.step("The bank asks again: consent is checked on chain in the request, then the model runs")
    rec = say.call("POST", "/api/v1/recommendations", bank, json={"subject": subject, "k": 5}).json()
    result.recommendations = rec["products"]
    result.consent_block = rec["consent"]["verified_at_block"]
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for col in ("product", "score", "because of topic", "keywords"):
        table.add_column(col)
    for p in rec["products"]:
        topic = p["explanation"]["topics"][0]["topic"] if p["explanation"]["topics"] else ""
        table.add_row(p["name"], f"{p['score']:.2f}", topic, ", ".join(p["explanation"]["keywords"][:3]))
    say.say(
        f"{rec['recommendation_id']}, model {rec['model_version']}, "
        f"consent verified at block {result.consent_block}"
    )
    console.print(table)

    say.step("The learner buys the top product; the bank reports the conversion; the settler records it")
    premium = 1_234_567  # fen: ¥12,345.67
    body = {
        "recommendation_id": rec["recommendation_id"],
        "order_id": "POLICY-2026-0001",
        "value": premium,
        "product_id": rec["products"][0]["product_id"],
    }
    conv = say.call("POST", "/api/v1/conversions", bank, json=body).json()
    say.say(
        f"accepted into the outbox: conversion {conv['id']}, state {conv['state']}, split {conv['amounts']}"
    )
    again = say.call("POST", "/api/v1/conversions", bank, json=body)
    say.say(
        f"the same order id again → {again.status_code}, "
        f"the same conversion {again.json()['id']}: it settles once"
    )
    settle = say.call("POST", "/api/v1/operator/settle", operator).json()
    say.say(f"settlement round: {settle['round']}")
    conv = say.call("GET", f"/api/v1/conversions/{conv['id']}", bank).json()
    result.conversion = conv
    say.say(f"on chain: batch {conv['batch_id']}, tx {_short(conv['tx_hash'])}, block {conv['block_number']}")

    say.step("The bank reads its statement and verifies it against the chain")
    agreement_id = conv["agreement_id"]
    st = say.call("GET", f"/api/v1/ledger/agreements/{agreement_id}/statement", bank).json()
    rc = say.call("GET", f"/api/v1/ledger/agreements/{agreement_id}/reconcile", bank).json()
    result.reconcile_ok = bool(rc["ok"])
    say.say(
        f"provisional totals {st['totals']}; reconcile against chain events and ledger totals: ok={rc['ok']}"
    )

    say.step("The learner revokes product-recommendation consent")
    rv = say.call("DELETE", "/api/v1/me/consents/bank/product_recommendation", learner).json()
    say.say(f"tx {_short(rv['tx_hash'])} in block {rv['block_number']}")
    r = say.call("POST", "/api/v1/recommendations", bank, json={"subject": subject, "k": 5})
    result.refusals.append(r.json()["error"]["message"])
    say.say(f"the very next request: [red]refused[/] ({r.json()['error']['message']})")
    late = say.call(
        "POST",
        "/api/v1/conversions",
        bank,
        json={
            "recommendation_id": rec["recommendation_id"],
            "order_id": "POLICY-2026-0002",
            "value": premium,
        },
    ).json()
    say.call("POST", "/api/v1/operator/settle", operator)
    late = say.call("GET", f"/api/v1/conversions/{late['id']}", bank).json()
    result.refusals.append(str(late["error"]).split(":")[0])
    say.say(
        f"a conversion after the revocation is rejected on chain: [red]{late['state']}[/] ({late['error']})"
    )

    say.step("Fifteen days later the validation window has passed: the batch is final")
    container.chain.increase_time(15 * DAY)
    say.call("POST", "/api/v1/operator/settle", operator)
    st = say.call("GET", f"/api/v1/ledger/agreements/{agreement_id}/statement", bank).json()
    names = ["platform", "creator", "bank"]
    result.statement = {
        n: {k: p[k] for k in ("provisional", "final", "reversed")}
        for n, p in zip(names, st["parties"], strict=True)
    }
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for col in ("party", "account", "provisional", "final", "reversed"):
        table.add_column(col)
    for n, p in zip(names, st["parties"], strict=True):
        table.add_row(
            n, _short(p["account"]), f"{p['provisional']:,}", f"{p['final']:,}", f"{p['reversed']:,}"
        )
    console.print(table)
    rc = say.call("GET", f"/api/v1/ledger/agreements/{agreement_id}/reconcile", bank).json()
    result.reconcile_ok = result.reconcile_ok and bool(rc["ok"])
    say.say(f"reconciled with the chain to the fen: ok={rc['ok']}; anyone can recompute it from the events")

    result.calls = say.calls
    result.timings["total_s"] = time.perf_counter() - t0
    (out_dir / "summary.json").write_text(json.dumps(_jsonable(result), indent=2), encoding="utf-8")
    console.rule(
        f"[bold green]done in {result.timings['total_s']:.1f} s: summary in {out_dir / 'summary.json'}"
    )
    return result


def _jsonable(result: DemoResult) -> dict[str, Any]:
    return {
        "addresses": result.addresses,
        "metrics": result.metrics,
        "consent_block": result.consent_block,
        "recommendations": result.recommendations,
        "conversion": result.conversion,
        "statement": result.statement,
        "reconcile_ok": result.reconcile_ok,
        "refusals": result.refusals,
        "calls": result.calls,
        "timings": result.timings,
    }
