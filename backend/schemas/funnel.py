"""The marketing funnel: recommendations served, conversions reported, settled, final and reversed, per
partner and per experiment arm, over time, with rates and their confidence intervals."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

BucketName = Literal["minute", "hour", "day"]


class Rate(BaseModel):
    """A proportion with its Wilson interval (None when the denominator is 0)."""

    numerator: int
    denominator: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


class StageCounts(BaseModel):
    """What happened in the period (each counted when it happened)."""

    recommendations: int
    conversions: int
    settled: int
    final: int
    reversed: int


class FunnelBucket(StageCounts):
    #: The period's start (Unix seconds, UTC); it lasts the report's ``bucket_s``.
    start: int


class FunnelRates(BaseModel):
    #: Recommendations served in the window that led to at least one conversion, of those served.
    conversion: Rate
    #: Conversions reported in the window that the chain recorded, of those reported.
    settlement: Rate
    #: Of those recorded: final (past their validation window).
    finality: Rate
    #: Of those recorded: reversed.
    reversal: Rate


class Funnel(BaseModel):
    totals: StageCounts
    rates: FunnelRates
    series: list[FunnelBucket]


class ArmFunnel(Funnel):
    #: ``<experiment>:<arm>``, or None for recommendations served outside an experiment.
    arm: str | None


class PartnerFunnel(Funnel):
    partner_id: str
    name: str
    arms: list[ArmFunnel]


class FunnelReport(BaseModel):
    #: The window, [since, until) in Unix seconds, cut into periods of ``bucket_s``.
    since: int
    until: int
    bucket: BucketName
    bucket_s: int
    #: When the figures were read.
    as_of: str
    confidence: float
    ci_method: str
    partners: list[PartnerFunnel]
