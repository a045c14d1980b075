"""``knowledger demo``: the whole KnowLedger story on the embedded chain, narrated.

deploy → seed the demo world → train → grant → recommend → agree → convert → settle → statement → revoke →
refusal. Every chain step is a real transaction on the in-process eth-tester EVM through ``backend.chain``;
every recommendation goes through the consent gate first (:func:`consent_gate`), so the demo exercises the
same rule the service enforces: no on-chain consent, no profile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backend.chain import (
    SCALE,
    AgreementTerms,
    ChainClient,
    ConsentGrant,
    ContractReverted,
    Conversion,
    ConversionData,
    Deployment,
    NamedAccounts,
    Party,
    Purpose,
    connect_embedded,
    currency_code,
    deploy_all,
    purposes_in_mask,
)
from backend.privacy import new_user_key, pseudonym, reference_hash
from recommender.data.demo import DemoSplit, demo_interaction_data, generate_demo_world
from recommender.evaluator import evaluate
from recommender.models.hybrid import HybridTwoTower
from recommender.models.popularity import Popularity
from recommender.serving import ProductRanker, save_hybrid_artifact

DAY = 86_400
#: The purposes a partner needs before a profile may reach the recommender.
GATE_PURPOSES = frozenset({Purpose.PROFILING, Purpose.PRODUCT_RECOMMENDATION})


class ConsentRefused(Exception):
    """The subject does not hold every purpose the request needs, for this partner, now."""

    def __init__(self, missing: frozenset[Purpose], block: int) -> None:
        names = ", ".join(sorted(p.name.lower() for p in missing))
        super().__init__(f"no on-chain consent for {names}, checked at block {block}")
        self.missing = missing
        self.block = block


def consent_gate(d: Deployment, subject: bytes, partner: str) -> int:
    """Check on chain, now, that ``subject`` consents to profiling and product recommendation for
    ``partner``; return the block number of the check or raise :class:`ConsentRefused`. One eth_call."""
    block = d.client.block_number
    held = purposes_in_mask(d.consent.consent_mask(subject, partner))
    missing = GATE_PURPOSES - held
    if missing:
        raise ConsentRefused(frozenset(missing), block)
    return block


@dataclass
class DemoResult:
    """What the demo did, for the summary table and for tests."""

    addresses: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    consent_block: int = 0
    split: dict[str, int] = field(default_factory=dict)
    statement: dict[str, dict[str, int]] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _Narrator:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.n = 0

    def step(self, title: str) -> None:
        self.n += 1
        self.console.rule(f"[bold cyan]{self.n}. {title}", align="left")

    def say(self, text: str) -> None:
        self.console.print(f"   {text}")


def _short(h: bytes | str) -> str:
    text = h.hex() if isinstance(h, bytes) else h
    text = text.removeprefix("0x")
    return f"0x{text[:8]}…{text[-4:]}"


def _train(
    split: DemoSplit, seed: int, epochs: int, console: Console
) -> tuple[HybridTwoTower, dict[str, dict[str, float]], float]:
    model = HybridTwoTower(epochs=epochs, seed=seed)
    with Progress(
        TextColumn("   training the hybrid two-tower model"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("train", total=epochs)
        model.epoch_callback = lambda epoch, _m: progress.update(task, completed=epoch + 1)
        started = time.perf_counter()
        model.fit(split.train)
        train_s = time.perf_counter() - started
    cold = split.cold_eval_users
    metrics = {
        "hybrid": evaluate(model, split.train, split.test, k=10, users=cold),
        "popularity": evaluate(Popularity().fit(split.train), split.train, split.test, k=10, users=cold),
    }
    return model, metrics, train_s


def _pick_learner(split: DemoSplit, world_interests: np.ndarray, finance_theme: int) -> int:
    """A cold-start learner (no finance history) with the strongest interest in personal finance."""
    cold = split.cold_eval_users
    return int(cold[np.argmax(world_interests[cold, finance_theme])])


def _recommend(ranker: ProductRanker, split: DemoSplit, user: int, k: int = 5) -> list[dict[str, Any]]:
    """Rank products for one consented learner through the serving path (a loaded artifact)."""
    user_id = split.user_ids[user]
    features = split.profiles.profile(user_id).features()
    row = {cid: i for i, cid in enumerate(split.train_dataset.items["item_id"])}
    history = split.train_dataset.interactions
    courses = [row[c] for c in history.loc[history["user_id"] == user_id, "item_id"].unique() if c in row]
    owned = split.train.interactions[user].indices.tolist()
    products = split.train_dataset.products.set_index("product_id")
    titles = split.train_dataset.items["title"]
    out = []
    for ranked in ranker.rank(features, k=k, history=owned, course_indices=courses):
        why = ranked.explanation or {"topics": [], "keywords": [], "courses": []}
        out.append(
            {
                "product_id": ranked.product_id,
                "name": str(products.loc[ranked.product_id, "name"]),
                "kind": str(products.loc[ranked.product_id, "kind"]),
                "score": ranked.score,
                "why": why,
                "course_titles": [str(titles.iloc[c["course_index"]]) for c in why["courses"]],
            }
        )
    return out


def run_demo(
    console: Console | None = None,
    *,
    seed: int = 0,
    epochs: int = 20,
    out_dir: Path = Path("var/demo"),
    chain_factory: Callable[[], ChainClient] = connect_embedded,
) -> DemoResult:
    """Run the story; print it to ``console``; write the manifest and a JSON summary under ``out_dir``."""
    console = console or Console()
    say = _Narrator(console)
    result = DemoResult()
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    say.step("Deploy the contracts on the embedded chain (in-process eth-tester EVM)")
    chain = chain_factory()
    acc = NamedAccounts.from_wallets(chain.accounts)
    d = deploy_all(chain, admin=acc.admin, registrar=acc.registrar, sender=acc.admin)
    d.accounts = acc
    d.manifest.write(out_dir / "deployment.json")
    result.addresses = d.addresses
    for name, addr in d.addresses.items():
        say.say(f"{name:<22} {addr}")
    d.consent.set_partner_notice_version(acc.partner, 1, sender=acc.admin)
    say.say(f"partner {_short(acc.partner)} (a bank) publishes notice v1; platform notice is v1")

    say.step("Seed the demo world and train the recommender")
    world = generate_demo_world(seed=seed)
    split = demo_interaction_data(world, seed=seed)
    ds = world.dataset
    say.say(
        f"{len(ds.users):,} learners, {len(ds.items):,} courses/e-books/audio, {len(ds.interactions):,} "
        f"interactions, {len(ds.products)} finance and insurance products, "
        f"{len(ds.conversions):,} conversions"
    )
    model, metrics, train_s = _train(split, seed, epochs, console)
    artifact = save_hybrid_artifact(
        model,
        split.train,
        out_dir / "models",
        knowledge=split.knowledge,
        metrics=metrics["hybrid"],
        item_ids=split.product_ids,
        overwrite=True,
    )
    ranker = ProductRanker.load(artifact)
    result.metrics = {k: {m: float(v) for m, v in vals.items()} for k, vals in metrics.items()}
    result.timings["train_s"] = train_s
    say.say(f"model artifact {artifact} (version {ranker.metadata.version})")
    say.say(
        f"cold-start learners (course history only): NDCG@10 hybrid {metrics['hybrid']['ndcg@10']:.3f} vs "
        f"popularity {metrics['popularity']['ndcg@10']:.3f} (trained in {train_s:.1f} s)"
    )

    finance = list(world.truth.themes).index("finance")
    user = _pick_learner(split, world.truth.interests, finance)
    user_id = split.user_ids[user]
    user_key = new_user_key()
    subject = pseudonym(user_key, user_id)
    say.say(f"learner {user_id}: pseudonym on chain {_short(subject)} (a keyed hash, never the id)")

    say.step("The partner asks for recommendations before any consent")
    try:
        consent_gate(d, subject, acc.partner)
    except ConsentRefused as refused:
        result.refusals.append(str(refused))
        say.say(f"[red]refused[/]: {refused}; no profile was read")

    say.step("The learner grants profiling and product-recommendation consent")
    expires = chain.now() + 365 * DAY
    receipt = {
        "subject": subject.hex(),
        "partner": acc.partner,
        "purposes": ["profiling", "product_recommendation"],
    }
    receipt_hash = reference_hash("receipt", json.dumps(receipt, sort_keys=True))
    tx = d.consent.grant_batch(
        [
            ConsentGrant(subject, d.consent.current_terms(acc.partner, purpose, expires), receipt_hash)
            for purpose in (Purpose.PROFILING, Purpose.PRODUCT_RECOMMENDATION)
        ],
        sender=acc.registrar,
    )
    say.say(
        f"tx {_short(tx.tx_hash)} in block {tx.block_number}, {tx.gas_used:,} gas, "
        f"receipt {_short(receipt_hash)}"
    )

    say.step("The partner asks again: consent checked on chain, then the model")
    result.consent_block = consent_gate(d, subject, acc.partner)
    recs = _recommend(ranker, split, user)
    result.recommendations = recs
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for col in ("product", "kind", "score", "topic", "your course"):
        table.add_column(col)
    for r in recs:
        topic = r["why"]["topics"][0]["topic"] if r["why"]["topics"] else ""
        course = r["course_titles"][0] if r["course_titles"] else ""
        table.add_row(r["name"], r["kind"], f"{r['score']:.2f}", topic, course)
    say.say(f"consent verified at block {result.consent_block}")
    console.print(table)

    say.step("Platform, course creator and bank agree on a revenue split")
    now = chain.now()
    terms = AgreementTerms(
        parties=(Party(acc.platform, 600_000), Party(acc.creator, 400_000), Party(acc.partner, 0)),
        partner=acc.partner,
        reporter=acc.reporter,
        commission_rate=80_000,  # 8% of the premium
        attribution_window=30 * DAY,
        validation_window=14 * DAY,  # distance-sold insurance: 14-day withdrawal right
        valid_from=now - DAY,
        valid_until=now + 365 * DAY,
        currency=currency_code("CNY"),
    )
    proposed = d.agreements.propose(terms, sender=acc.platform)
    agreement_id = int(proposed.value)
    signature = d.agreements.sign_acceptance(acc.creator, agreement_id, terms, deadline=now + DAY)
    d.agreements.accept_by_sig(agreement_id, terms, acc.creator, now + DAY, signature)
    d.agreements.accept(agreement_id, terms, sender=acc.partner)
    say.say(
        f"agreement #{agreement_id}: platform 60%, creator 40% of an 8% commission; the creator accepted by "
        f"EIP-712 signature, the bank by transaction → active: {d.agreements.is_active(agreement_id)}"
    )

    say.step("The learner buys the top product; the conversion is settled on chain")
    served_at = chain.now()
    rec_ref = reference_hash("recommendation", f"{user_id}:{served_at}")
    chain.increase_time(2 * DAY)
    premium = 1_234_567  # in fen (CNY cents): ¥12,345.67
    conversion = Conversion(ConversionData(1, chain.now() - 60, served_at, premium), rec_ref, subject)
    rec_tx = d.ledger.record_conversions(agreement_id, terms, [conversion], sender=acc.reporter)
    batch_id = int(rec_tx.value)
    commission, amounts = d.ledger.split_commission(terms, premium)
    say.say(
        f"premium ¥{premium / 100:,.2f} → commission {commission:,} fen split {amounts} "
        f"(sums to {sum(amounts):,}: exact) in tx {_short(rec_tx.tx_hash)}"
    )

    say.step("The learner revokes product-recommendation consent")
    revoke = d.consent.revoke(subject, acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=acc.registrar)
    say.say(f"tx {_short(revoke.tx_hash)} in block {revoke.block_number}, {revoke.gas_used:,} gas")
    try:
        consent_gate(d, subject, acc.partner)
    except ConsentRefused as refused:
        result.refusals.append(str(refused))
        say.say(f"the very next request: [red]refused[/] ({refused})")
    chain.increase_time(60)
    late = Conversion(ConversionData(2, chain.now() - 1, served_at, premium), rec_ref, subject)
    try:
        d.ledger.record_conversions(agreement_id, terms, [late], sender=acc.reporter)
    except ContractReverted as exc:
        result.refusals.append(type(exc).__name__)
        say.say(f"a conversion after the revocation is rejected on chain: [red]{type(exc).__name__}[/]")

    say.step("Statement, before and after the 14-day validation window")
    parties = {"platform": acc.platform, "creator": acc.creator, "bank": acc.partner}

    def statement() -> dict[str, dict[str, int]]:
        out = {}
        for name, addr in parties.items():
            t = d.ledger.totals_of(agreement_id, addr)
            out[name] = {"provisional": t.provisional, "final": t.final, "reversed": t.reversed}
        return out

    before = statement()
    chain.increase_time(15 * DAY)
    d.ledger.finalize_batch(batch_id, terms, sender=acc.outsider)
    result.statement = statement()
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for col in ("party", "provisional (fen)", "→ final (fen)", "reversed"):
        table.add_column(col)
    for name in parties:
        table.add_row(
            name,
            f"{before[name]['provisional']:,}",
            f"{result.statement[name]['final']:,}",
            f"{result.statement[name]['reversed']:,}",
        )
    console.print(table)
    say.say("anyone can recompute this from the ConversionsRecorded events and splitCommission")

    result.timings["total_s"] = time.perf_counter() - t0
    (out_dir / "summary.json").write_text(json.dumps(_jsonable(result), indent=2), encoding="utf-8")
    console.rule(
        f"[bold green]done in {result.timings['total_s']:.1f} s — summary in {out_dir / 'summary.json'}"
    )
    return result


def _jsonable(result: DemoResult) -> dict[str, Any]:
    return {
        "addresses": result.addresses,
        "metrics": result.metrics,
        "consent_block": result.consent_block,
        "recommendations": result.recommendations,
        "statement": result.statement,
        "refusals": result.refusals,
        "timings": result.timings,
        "scale": SCALE,
    }
