"""The running A/B experiment, read back from the database: arm sizes, conversion rates, the comparison
and the sample-ratio-mismatch check.

What is counted (per arm of the experiment named in ``KNOWLEDGER_EXPERIMENT_NAME``, whose recommendation
rows carry ``arm = "<experiment>:<arm>"``, so rows of an earlier experiment never mix in):

- ``units``: distinct pseudonyms served at least one recommendation in the arm (the unit of assignment);
- ``converters``: distinct pseudonyms with at least one conversion, in any state but ``rejected`` or
  ``reversed``, linked to a recommendation of the arm;
- ``recommendations``, ``conversions`` and ``conversion_value`` (minor units) of those rows.

The statistics are :mod:`recommender.abtest`'s (a two-proportion z-test, a Wald interval for the
difference, a chi-square SRM test) and statsmodels' Wilson interval per arm. The first arm listed in
``KNOWLEDGER_EXPERIMENT_ARMS`` is the control. Every number is JSON-safe: anything undefined is None.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.engine import Engine
from sqlmodel import col
from statsmodels.stats.proportion import proportion_confint

from backend.models import Conversion, ConversionState, Recommendation
from backend.schemas.insights import ExperimentReport
from recommender.abtest import analyze, srm_check

ALPHA = 0.05
_LEVEL = f"{1 - ALPHA:.0%}".replace("%", " %")
_SIGNIFICANCE = f"{ALPHA:.0%}".replace("%", " %")
#: Below this many units in an arm the verdict says "not enough data" (the comparison is still shown).
MIN_UNITS_PER_ARM = 10
#: Conversions that do not count: the chain refused them, or they were undone.
NOT_CONVERTED = (ConversionState.REJECTED.value, ConversionState.REVERSED.value)


def _num(value: Any, digits: int = 6) -> float | None:
    """A finite float rounded to ``digits``, else None (JSON has no NaN or infinity)."""
    if value is None:
        return None
    v = float(value)
    return round(v, digits) if math.isfinite(v) else None


def _points(value: float) -> str:
    return f"{value * 100:.1f}"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _counts(engine: Engine, tags: list[str]) -> tuple[dict[str, dict[str, int]], int]:
    """Per stored arm tag: units, recommendations, converters, conversions, value; and the number of
    pseudonyms seen in more than one arm (only possible if the weights changed during the experiment)."""
    arm, pseudonym = col(Recommendation.arm), col(Recommendation.pseudonym)
    served = select(arm, func.count(distinct(pseudonym)), func.count()).where(arm.in_(tags)).group_by(arm)
    converted = (
        select(
            arm,
            func.count(distinct(pseudonym)),
            func.count(),
            func.coalesce(func.sum(col(Conversion.value)), 0),
        )
        .select_from(Conversion)
        .join(Recommendation, col(Conversion.recommendation_id) == col(Recommendation.id))
        .where(arm.in_(tags), col(Conversion.state).not_in(NOT_CONVERTED))
        .group_by(arm)
    )
    per_pseudonym = (
        select(pseudonym)
        .where(arm.in_(tags))
        .group_by(pseudonym)
        .having(func.count(distinct(arm)) > 1)
        .subquery()
    )
    crossed_q = select(func.count()).select_from(per_pseudonym)
    out = {
        tag: {"units": 0, "recommendations": 0, "converters": 0, "conversions": 0, "conversion_value": 0}
        for tag in tags
    }
    with engine.connect() as conn:
        for tag, units, n in conn.execute(served):
            out[str(tag)].update(units=int(units), recommendations=int(n))
        for tag, converters, n, value in conn.execute(converted):
            out[str(tag)].update(converters=int(converters), conversions=int(n), conversion_value=int(value))
        crossed = int(conn.execute(crossed_q).scalar_one())
    return out, crossed


class ExperimentService:
    def __init__(
        self,
        engine: Engine,
        name: str,
        experiment: tuple[tuple[str, ...], tuple[float, ...]],
        min_units: int = MIN_UNITS_PER_ARM,
    ) -> None:
        self._engine = engine
        self._name = name
        self._arms, self._weights = experiment
        self._min_units = min_units

    def report(self) -> ExperimentReport:
        """The experiment report the operator page shows (see the module docstring for what is counted)."""
        return ExperimentReport(
            **analysis(self._engine, self._name, self._arms, self._weights, self._min_units)
        )


def analysis(
    engine: Engine,
    name: str,
    arms: tuple[str, ...],
    weights: tuple[float, ...],
    min_units: int = MIN_UNITS_PER_ARM,
) -> dict[str, Any]:
    """The report as plain JSON values."""
    report: dict[str, Any] = {
        "experiment": name,
        "running": bool(arms),
        "control": arms[0] if arms else None,
        "treatment": arms[1] if len(arms) > 1 else None,
        "alpha": ALPHA,
        "min_units_per_arm": min_units,
        "arms": [],
        "total_units": 0,
        "crossed_units": 0,
        "comparison": None,
        "srm": None,
        "verdict": "no experiment running",
    }
    if not arms:
        return report
    tags = [f"{name}:{arm}" for arm in arms]
    counts, crossed = _counts(engine, tags)
    total_weight = sum(weights)
    rows: list[dict[str, Any]] = []
    for arm, weight, tag in zip(arms, weights, tags, strict=True):
        c = counts[tag]
        units, converters = c["units"], c["converters"]
        low = high = rate = None
        if units:
            rate = converters / units
            low, high = proportion_confint(converters, units, alpha=ALPHA, method="wilson")
        rows.append(
            {
                "arm": arm,
                "weight": _num(weight / total_weight),
                **c,
                "rate": _num(rate),
                "rate_ci_low": _num(low),
                "rate_ci_high": _num(high),
            }
        )
    total = sum(r["units"] for r in rows)
    report.update(arms=rows, total_units=total, crossed_units=crossed)
    if total == 0:
        report["verdict"] = f"not enough data: 0 units (at least {min_units} per arm needed)"
        return report

    srm = srm_check([r["units"] for r in rows], list(weights))  # abtest's strict default threshold
    report["srm"] = {
        "chi2": _num(srm.chi2),
        "p_value": _num(srm.p_value, 8),
        "threshold": srm.threshold,
        "mismatch": bool(srm.mismatch),
        "observed": {r["arm"]: r["units"] for r in rows},
        "expected": {r["arm"]: _num(e, 2) for r, e in zip(rows, srm.expected, strict=True)},
    }

    control, treatment = rows[0], rows[1]
    if control["units"] and treatment["units"]:
        result = analyze(
            control["converters"], control["units"], treatment["converters"], treatment["units"], alpha=ALPHA
        )
        fields = result.to_dict()
        report["comparison"] = {
            "control": control["arm"],
            "treatment": treatment["arm"],
            **{k: v if isinstance(v, bool | str) else _num(v) for k, v in fields.items() if k != "alpha"},
            "p_value": _num(result.p_value, 8),
        }

    if srm.mismatch:
        observed = ", ".join(f"{r['arm']} {r['units']}" for r in rows)
        planned = ", ".join(f"{r['arm']} {r['weight']:.0%}" for r in rows)
        report["verdict"] = (
            f"sample-ratio mismatch: the split is broken, do not read the comparison "
            f"(units {observed}; planned {planned}; {_p(srm.p_value)})"
        )
    elif min(r["units"] for r in rows) < min_units:
        report["verdict"] = f"not enough data: {total} units (at least {min_units} per arm needed)"
    else:
        report["verdict"] = _comparison_verdict(report["comparison"])
    return report


def _comparison_verdict(c: dict[str, Any]) -> str:
    diff = c["difference"] or 0.0
    direction = "higher than" if diff > 0 else "lower than" if diff < 0 else "the same as"
    amount = f"{_points(abs(diff))} points " if diff else ""
    low, high = c["ci_low"], c["ci_high"]
    interval = "no CI"
    if low is not None and high is not None:
        interval = f"{_LEVEL} CI {_points(low)} to {_points(high)} points"
    reading = "significant" if c["significant"] else "not significant"
    return (
        f"{c['treatment']} converts {amount}{direction} {c['control']} "
        f"({_points(c['treatment_rate'] or 0.0)} % vs {_points(c['control_rate'] or 0.0)} %; {interval}), "
        f"{_p(c['p_value'] if c['p_value'] is not None else 1.0)}: {reading} at the {_SIGNIFICANCE} level"
    )
