"""The marketing funnel, per partner and per experiment arm, over time, read from the database.

Stages, each counted in the period it happened in:

- **recommendations** served (``recommendation.created_at``; the arm is the row's ``arm``);
- **conversions** reported, **settled** (recorded on chain, its transaction known), **final** and
  **reversed** (``conversion_event``, written with each change by :func:`backend.services.outbox.transition`;
  a conversion's arm is that of the recommendation it follows).

Rates are proportions of one cohort, so a numerator never exceeds its denominator: of the recommendations
served in the window, those that led to a conversion (at any time since); of the conversions reported in the
window, those the chain recorded; of those, the final ones and the reversed ones. Each comes with its Wilson
interval (statsmodels' ``proportion_confint``, as the experiment report uses).

The same figures, all-time and per partner, are Prometheus series (:class:`FunnelSeries`), read when scraped,
so every process reports the same numbers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import BigInteger, distinct, func, literal_column
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select
from statsmodels.stats.proportion import proportion_confint

from backend.disclosures import ConversionEvent, ConversionEventKind
from backend.errors import NotFound, Unprocessable
from backend.models import Conversion, ConversionState, Partner, Recommendation, iso, utcnow
from backend.observability import Metrics
from backend.schemas.funnel import (
    ArmFunnel,
    BucketName,
    FunnelBucket,
    FunnelRates,
    FunnelReport,
    PartnerFunnel,
    Rate,
    StageCounts,
)

log = logging.getLogger("knowledger.funnel")

BUCKETS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86_400}
#: The most periods one report covers.
MAX_BUCKETS = 1000
#: The default window: this many periods, the current one last.
DEFAULT_BUCKETS = 24
ALPHA = 0.05
STAGES = ("recommendations", "conversions", "settled", "final", "reversed")
#: conversion_event kind → the stage it counts in.
_EVENT_STAGE = {
    ConversionEventKind.ACCEPTED.value: "conversions",
    ConversionEventKind.SETTLED.value: "settled",
    ConversionEventKind.FINAL.value: "final",
    ConversionEventKind.REVERSED.value: "reversed",
}
_ON_CHAIN = {
    ConversionState.SETTLED.value,
    ConversionState.REVERSAL_PENDING.value,
    ConversionState.FINAL.value,
    ConversionState.REVERSED.value,
}


class epoch_seconds(FunctionElement[int]):
    """A timestamp column as whole Unix seconds, in SQL (SQLite and PostgreSQL)."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds)
def _epoch_default(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


def _bucket(column: Any, width: int) -> Any:
    """The start of ``column``'s period (Unix seconds). The width is written into the SQL (one of
    :data:`BUCKETS`), so the selected expression and the grouped one are the same text for PostgreSQL."""
    w = literal_column(str(int(width)), BigInteger())
    return (epoch_seconds(column) // w) * w


def _utc(seconds: int) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _num(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


def rate(numerator: int, denominator: int) -> Rate:
    """``numerator / denominator`` with its Wilson interval at ``1 - ALPHA``."""
    if denominator <= 0:
        return Rate(numerator=numerator, denominator=denominator, rate=None, ci_low=None, ci_high=None)
    low, high = proportion_confint(numerator, denominator, alpha=ALPHA, method="wilson")
    return Rate(
        numerator=numerator,
        denominator=denominator,
        rate=_num(numerator / denominator),
        ci_low=_num(low),
        ci_high=_num(high),
    )


class _Tally:
    """Counts for one (partner, arm): per period and stage, and the cohorts behind the rates."""

    def __init__(self) -> None:
        self.series: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STAGES, 0))
        self.cohort = {"served": 0, "converted": 0, "reported": 0, "on_chain": 0, "final": 0, "reversed": 0}

    def add(self, other: _Tally) -> None:
        for start, stages in other.series.items():
            for stage, n in stages.items():
                self.series[start][stage] += n
        for key, n in other.cohort.items():
            self.cohort[key] += n

    def funnel(self, starts: list[int]) -> dict[str, Any]:
        series = [FunnelBucket(start=s, **self.series.get(s, dict.fromkeys(STAGES, 0))) for s in starts]
        totals = StageCounts(**{stage: sum(getattr(b, stage) for b in series) for stage in STAGES})
        c = self.cohort
        rates = FunnelRates(
            conversion=rate(c["converted"], c["served"]),
            settlement=rate(c["on_chain"], c["reported"]),
            finality=rate(c["final"], c["on_chain"]),
            reversal=rate(c["reversed"], c["on_chain"]),
        )
        return {"totals": totals, "rates": rates, "series": series}


class FunnelService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def window(since: int | None, until: int | None, bucket: BucketName) -> tuple[int, int, int]:
        """The window ``[since, until)`` and the period width; by default the last
        :data:`DEFAULT_BUCKETS` periods, the current one last."""
        width = BUCKETS[bucket]
        if until is None:
            until = int(time.time()) + 1
        if since is None:
            since = max(0, (until // width - (DEFAULT_BUCKETS - 1)) * width)
        if since >= until:
            raise Unprocessable(f"since ({since}) must be before until ({until})", field="since")
        periods = until // width - since // width + (1 if until % width else 0)
        if periods > MAX_BUCKETS:
            raise Unprocessable(
                f"the window spans {periods} periods of a {bucket}; at most {MAX_BUCKETS}: narrow it or "
                "choose a longer period",
                field="bucket",
            )
        return since, until, width

    def report(
        self,
        partner_id: str | None,
        since: int | None = None,
        until: int | None = None,
        bucket: BucketName = "hour",
    ) -> FunnelReport:
        """The funnel of one partner (``partner_id``) or of every partner (None), see the module docstring."""
        since, until, width = self.window(since, until, bucket)
        with Session(self._engine) as s:
            partners = s.exec(select(Partner.id, Partner.name).order_by(col(Partner.id))).all()
            names = {str(p): str(n) for p, n in partners}
            if partner_id is not None:
                if partner_id not in names:
                    raise NotFound(f"unknown partner {partner_id!r}")
                names = {partner_id: names[partner_id]}
            tallies = self._tally(s, partner_id, since, until, width)
        first = since // width * width
        starts = list(range(first, until, width))
        out = []
        for pid, name in names.items():
            arms = tallies.get(pid, {})
            overall = _Tally()
            for tally in arms.values():
                overall.add(tally)
            arm_funnels = [
                ArmFunnel(arm=arm, **tally.funnel(starts))
                for arm, tally in sorted(arms.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))
            ]
            out.append(PartnerFunnel(partner_id=pid, name=name, arms=arm_funnels, **overall.funnel(starts)))
        return FunnelReport(
            since=since,
            until=until,
            bucket=bucket,
            bucket_s=width,
            as_of=iso(utcnow()),
            confidence=1 - ALPHA,
            ci_method="wilson",
            partners=out,
        )

    @staticmethod
    def _tally(
        s: Session, partner_id: str | None, since: int, until: int, width: int
    ) -> dict[str, dict[str | None, _Tally]]:
        lo, hi = _utc(since), _utc(until)
        tallies: dict[str, dict[str | None, _Tally]] = defaultdict(lambda: defaultdict(_Tally))
        R, C, E = Recommendation, Conversion, ConversionEvent
        r_partner, r_arm, r_at = col(R.partner_id), col(R.arm), col(R.created_at)

        def mine(query: Any, partner_col: Any) -> Any:
            return query if partner_id is None else query.where(partner_col == partner_id)

        served = mine(
            sa_select(r_partner, r_arm, _bucket(r_at, width), func.count())
            .where(r_at >= lo, r_at < hi)
            .group_by(r_partner, r_arm, _bucket(r_at, width)),
            r_partner,
        )
        for pid, arm, start, n in s.execute(served).all():
            tally = tallies[str(pid)][arm]
            tally.series[int(start)]["recommendations"] += int(n)
            tally.cohort["served"] += int(n)

        converted = mine(
            sa_select(r_partner, r_arm, func.count(distinct(col(R.id))))
            .select_from(R)
            .join(C, col(C.recommendation_id) == col(R.id))
            .where(r_at >= lo, r_at < hi)
            .group_by(r_partner, r_arm),
            r_partner,
        )
        for pid, arm, n in s.execute(converted).all():
            tallies[str(pid)][arm].cohort["converted"] += int(n)

        e_at = col(E.at)
        events = mine(
            sa_select(col(E.partner_id), r_arm, col(E.event), _bucket(e_at, width), func.count())
            .select_from(E)
            .join(C, col(C.id) == col(E.conversion_id))
            .join(R, col(R.id) == col(C.recommendation_id))
            .where(e_at >= lo, e_at < hi, col(E.event).in_(tuple(_EVENT_STAGE)))
            .group_by(col(E.partner_id), r_arm, col(E.event), _bucket(e_at, width)),
            col(E.partner_id),
        )
        for pid, arm, event, start, n in s.execute(events).all():
            tallies[str(pid)][arm].series[int(start)][_EVENT_STAGE[str(event)]] += int(n)

        reported = mine(
            sa_select(col(E.partner_id), r_arm, col(C.state), func.count())
            .select_from(E)
            .join(C, col(C.id) == col(E.conversion_id))
            .join(R, col(R.id) == col(C.recommendation_id))
            .where(e_at >= lo, e_at < hi, col(E.event) == ConversionEventKind.ACCEPTED.value)
            .group_by(col(E.partner_id), r_arm, col(C.state)),
            col(E.partner_id),
        )
        for pid, arm, state, n in s.execute(reported).all():
            cohort = tallies[str(pid)][arm].cohort
            cohort["reported"] += int(n)
            if state in _ON_CHAIN:
                cohort["on_chain"] += int(n)
            if state == ConversionState.FINAL.value:
                cohort["final"] += int(n)
            if state == ConversionState.REVERSED.value:
                cohort["reversed"] += int(n)
        return tallies


class FunnelSeries(Collector):
    """All-time funnel counters per partner, read from the database when scraped:
    ``knowledger_funnel_recommendations_total{partner}`` and
    ``knowledger_funnel_conversions_total{partner, stage}`` (stage: reported, settled, final, reversed,
    rejected). The partner label is bounded (:meth:`backend.observability.Metrics.partner_label`)."""

    STAGE_OF_EVENT: ClassVar[dict[str, str]] = {
        ConversionEventKind.ACCEPTED.value: "reported",
        ConversionEventKind.SETTLED.value: "settled",
        ConversionEventKind.FINAL.value: "final",
        ConversionEventKind.REVERSED.value: "reversed",
        ConversionEventKind.REJECTED.value: "rejected",
    }

    def __init__(self, engine: Engine, metrics: Metrics) -> None:
        self._engine = engine
        self._metrics = metrics

    def describe(self) -> Iterator[CounterMetricFamily]:
        """The series' names, for the registry (so registering reads nothing)."""
        yield CounterMetricFamily("knowledger_funnel_recommendations", "", labels=["partner"])
        yield CounterMetricFamily("knowledger_funnel_conversions", "", labels=["partner", "stage"])

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            with Session(self._engine) as s:
                served = s.exec(
                    select(Recommendation.partner_id, func.count()).group_by(col(Recommendation.partner_id))
                ).all()
                events = s.exec(
                    select(ConversionEvent.partner_id, ConversionEvent.event, func.count()).group_by(
                        col(ConversionEvent.partner_id), col(ConversionEvent.event)
                    )
                ).all()
        except Exception as exc:  # the database is away: no series rather than a failed scrape
            log.warning("funnel metrics unavailable: %s", str(exc).splitlines()[0])
            return
        recommendations = CounterMetricFamily(
            "knowledger_funnel_recommendations", "Recommendations served, per partner", labels=["partner"]
        )
        for partner, n in self._fold((str(p), n) for p, n in served):
            recommendations.add_metric([partner], n)
        conversions = CounterMetricFamily(
            "knowledger_funnel_conversions",
            "Conversions reaching each stage (reported, settled, final, reversed, rejected), per partner",
            labels=["partner", "stage"],
        )
        staged = (
            (f"{p}\0{self.STAGE_OF_EVENT[str(e)]}", n) for p, e, n in events if str(e) in self.STAGE_OF_EVENT
        )
        for key, n in self._fold(staged):
            partner, stage = key.split("\0")
            conversions.add_metric([partner, stage], n)
        yield recommendations
        yield conversions

    def _fold(self, rows: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Sum rows by bounded partner label (partners past the cap share one)."""
        out: dict[str, int] = defaultdict(int)
        for key, n in rows:
            partner, sep, rest = key.partition("\0")
            out[self._metrics.partner_label(partner) + sep + rest] += int(n)
        return sorted(out.items())
