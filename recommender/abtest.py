"""A/B testing for recommendation variants: assignment, exposure/conversion logs and analysis.

Assignment is a pure function of the experiment name and the learner's pseudonym
(``SHA-256(experiment + "\\n" + pseudonym)``), so the same learner always sees the same arm on every
server, nothing needs storing to keep it sticky, and an auditor can recompute it. The bucket is the first
8 bytes of the digest read as a big-endian integer divided by 2^64, and arm ``i`` covers the bucket range
``[sum(w[:i]), sum(w[:i+1]))`` of the normalised weights.

Analysis uses statsmodels and scipy rather than hand-written formulas: a two-proportion z-test (pooled
variance), a confidence interval for the difference of proportions (Wald by default; any
``confint_proportions_2indep`` method may be chosen), power and sample size from Cohen's effect size
``h`` with ``NormalIndPower``, and a chi-square goodness-of-fit test for sample-ratio mismatch (an SRM
means the split itself is broken, e.g. one arm crashes before logging, and the comparison is void).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.stats import chisquare
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from recommender.data.schema import ID_HINT, ID_PATTERN

_ID = re.compile(ID_PATTERN)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")


def _check_pseudonym(pseudonym: str) -> None:
    if not isinstance(pseudonym, str) or not _ID.fullmatch(pseudonym):
        raise ValueError(f"pseudonym {pseudonym!r} is not {ID_HINT}")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{kind} {name!r} must be letters, digits and _ . : - (at most 128 characters)")


# ----------------------------------------------------------------------------------------------------
# assignment


def bucket(pseudonym: str, experiment: str) -> float:
    """The learner's position in [0, 1) for this experiment (uniform, independent across experiments)."""
    _check_name("experiment", experiment)
    _check_pseudonym(pseudonym)
    digest = hashlib.sha256(f"{experiment}\n{pseudonym}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(
    pseudonym: str, experiment: str, arms: Sequence[str], weights: Sequence[float] | None = None
) -> str:
    """The arm for ``pseudonym`` in ``experiment``: deterministic, sticky, proportional to ``weights``."""
    arms = list(arms)
    if not arms:
        raise ValueError("arms must not be empty")
    if len(set(arms)) != len(arms):
        raise ValueError(f"arms must be distinct, got {arms}")
    for arm in arms:
        _check_name("arm", arm)
    w = np.ones(len(arms)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(arms),):
        raise ValueError(f"weights must have one entry per arm ({len(arms)}), got {len(w)}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {list(w)}")
    edges = np.cumsum(w / w.sum())
    edges[-1] = 1.0
    b = bucket(pseudonym, experiment)
    return arms[int(np.searchsorted(edges, b, side="right"))]


# ----------------------------------------------------------------------------------------------------
# logs


@dataclass(frozen=True)
class ArmCounts:
    """Distinct exposed pseudonyms and how many of them converted (after or at exposure)."""

    exposures: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.exposures if self.exposures else 0.0


@runtime_checkable
class ExperimentLog(Protocol):
    """Where exposures and conversions are recorded; ``counts()`` gives experiment -> arm -> counts."""

    def log_exposure(self, experiment: str, pseudonym: str, arm: str, ts: datetime | None = None) -> None: ...

    def log_conversion(
        self, experiment: str, pseudonym: str, ts: datetime | None = None, value: float = 1.0
    ) -> None: ...

    def counts(self) -> dict[str, dict[str, ArmCounts]]: ...


def _utc(ts: datetime | None) -> datetime:
    if ts is None:
        return datetime.now(UTC)
    if not isinstance(ts, datetime):
        raise TypeError(f"ts must be a datetime, got {type(ts).__name__}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class _Tally:
    """Event bookkeeping shared by the log implementations.

    A pseudonym is exposed to one arm per experiment (re-exposure to another arm is an error: assignment
    must be sticky). A conversion counts for the arm the pseudonym was first exposed to, once per
    pseudonym, and only if it happened at or after that exposure; conversions of unexposed pseudonyms are
    kept apart in ``unattributed``.
    """

    def __init__(self) -> None:
        self.first_exposure: dict[str, dict[str, tuple[str, datetime]]] = {}
        self.converted: dict[str, set[str]] = {}
        self.pending: dict[str, dict[str, datetime]] = {}
        self.unattributed: dict[str, int] = {}

    def check_exposure(self, experiment: str, pseudonym: str, arm: str) -> None:
        _check_name("experiment", experiment)
        _check_pseudonym(pseudonym)
        _check_name("arm", arm)
        seen = self.first_exposure.get(experiment, {}).get(pseudonym)
        if seen is not None and seen[0] != arm:
            raise ValueError(
                f"{pseudonym!r} was already exposed to arm {seen[0]!r} of {experiment!r}, not {arm!r}"
            )

    def exposure(self, experiment: str, pseudonym: str, arm: str, ts: datetime) -> None:
        self.check_exposure(experiment, pseudonym, arm)
        exp = self.first_exposure.setdefault(experiment, {})
        if pseudonym not in exp or ts < exp[pseudonym][1]:
            exp[pseudonym] = (arm, ts)
        # a conversion logged earlier than this exposure call but timestamped after it
        pending = self.pending.get(experiment, {})
        if pseudonym in pending and pending[pseudonym] >= exp[pseudonym][1]:
            self.converted.setdefault(experiment, set()).add(pseudonym)

    def conversion(self, experiment: str, pseudonym: str, ts: datetime) -> None:
        _check_name("experiment", experiment)
        _check_pseudonym(pseudonym)
        seen = self.first_exposure.get(experiment, {}).get(pseudonym)
        if seen is not None and ts >= seen[1]:
            self.converted.setdefault(experiment, set()).add(pseudonym)
        else:
            pend = self.pending.setdefault(experiment, {})
            if pseudonym not in pend or ts > pend[pseudonym]:
                pend[pseudonym] = ts
            if seen is None:
                self.unattributed[experiment] = self.unattributed.get(experiment, 0) + 1

    def counts(self) -> dict[str, dict[str, ArmCounts]]:
        out: dict[str, dict[str, ArmCounts]] = {}
        for experiment, exposures in self.first_exposure.items():
            converted = self.converted.get(experiment, set())
            per_arm: dict[str, list[int]] = {}
            for pseudonym, (arm, _) in exposures.items():
                cell = per_arm.setdefault(arm, [0, 0])
                cell[0] += 1
                cell[1] += int(pseudonym in converted)
            out[experiment] = {arm: ArmCounts(e, c) for arm, (e, c) in sorted(per_arm.items())}
        return out


class InMemoryExperimentLog:
    """An :class:`ExperimentLog` kept in memory (tests, single-process demos). Thread-safe."""

    def __init__(self) -> None:
        self._tally = _Tally()
        self._lock = threading.Lock()

    def log_exposure(self, experiment: str, pseudonym: str, arm: str, ts: datetime | None = None) -> None:
        with self._lock:
            self._tally.exposure(experiment, pseudonym, arm, _utc(ts))

    def log_conversion(
        self, experiment: str, pseudonym: str, ts: datetime | None = None, value: float = 1.0
    ) -> None:
        with self._lock:
            self._tally.conversion(experiment, pseudonym, _utc(ts))

    def counts(self) -> dict[str, dict[str, ArmCounts]]:
        with self._lock:
            return self._tally.counts()

    @property
    def unattributed(self) -> dict[str, int]:
        """Conversions by pseudonyms never exposed, per experiment (a sign of logging gaps)."""
        return dict(self._tally.unattributed)


_FIELDS = ("kind", "experiment", "pseudonym", "arm", "ts", "value")


class FileExperimentLog:
    """An append-only :class:`ExperimentLog` in a ``.jsonl`` or ``.csv`` file.

    Existing events are replayed on open, with errors naming the file, line and field, so a corrupted
    log is noticed instead of silently skewing results. Each event is flushed as it is written.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise ValueError(f"{self.path}: log file must end in .jsonl or .csv")
        self.format = suffix[1:]
        self._tally = _Tally()
        self._lock = threading.Lock()
        if self.path.exists():
            self._replay()

    def _replay(self) -> None:
        label = self.path.name
        with self.path.open(newline="", encoding="utf-8") as handle:
            if self.format == "jsonl":
                records = []
                for lineno, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{label} line {lineno}: not valid JSON ({exc.msg})") from exc
                    if not isinstance(rec, dict):
                        raise ValueError(f"{label} line {lineno}: expected a JSON object")
                    records.append((lineno, rec))
            else:
                reader = csv.DictReader(handle)
                if reader.fieldnames is None:
                    return
                missing = [f for f in _FIELDS if f not in reader.fieldnames]
                if missing:
                    raise ValueError(f"{label} line 1: missing columns {', '.join(missing)}")
                records = [(reader.line_num, dict(rec)) for rec in reader]
        for lineno, rec in records:
            self._apply(rec, f"{label} line {lineno}")

    def _apply(self, rec: Mapping[str, Any], where: str) -> None:
        for key in ("kind", "experiment", "pseudonym", "ts"):
            if not rec.get(key):
                raise ValueError(f"{where}, field {key!r}: missing")
        try:
            ts = _utc(datetime.fromisoformat(str(rec["ts"])))
        except ValueError as exc:
            raise ValueError(f"{where}, field 'ts': {rec['ts']!r} is not an ISO 8601 timestamp") from exc
        try:
            if rec["kind"] == "exposure":
                if not rec.get("arm"):
                    raise ValueError("field 'arm': missing")
                self._tally.exposure(str(rec["experiment"]), str(rec["pseudonym"]), str(rec["arm"]), ts)
            elif rec["kind"] == "conversion":
                self._tally.conversion(str(rec["experiment"]), str(rec["pseudonym"]), ts)
            else:
                raise ValueError(f"field 'kind': {rec['kind']!r} is not one of exposure, conversion")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc

    def _append(self, rec: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            if self.format == "jsonl":
                handle.write(json.dumps(rec, sort_keys=True) + "\n")
            else:
                writer = csv.DictWriter(handle, fieldnames=_FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(rec)
            handle.flush()

    def log_exposure(self, experiment: str, pseudonym: str, arm: str, ts: datetime | None = None) -> None:
        when = _utc(ts)
        with self._lock:
            self._tally.exposure(experiment, pseudonym, arm, when)
            self._append(
                {
                    "kind": "exposure",
                    "experiment": experiment,
                    "pseudonym": pseudonym,
                    "arm": arm,
                    "ts": when.isoformat(),
                    "value": "",
                }
            )

    def log_conversion(
        self, experiment: str, pseudonym: str, ts: datetime | None = None, value: float = 1.0
    ) -> None:
        when = _utc(ts)
        with self._lock:
            self._tally.conversion(experiment, pseudonym, when)
            self._append(
                {
                    "kind": "conversion",
                    "experiment": experiment,
                    "pseudonym": pseudonym,
                    "arm": "",
                    "ts": when.isoformat(),
                    "value": float(value),
                }
            )

    def counts(self) -> dict[str, dict[str, ArmCounts]]:
        with self._lock:
            return self._tally.counts()


# ----------------------------------------------------------------------------------------------------
# analysis


@dataclass(frozen=True)
class ABResult:
    """Treatment vs control on a conversion rate. ``difference`` = treatment - control; the CI is for
    that difference; ``z``/``p_value`` from the pooled two-proportion z-test."""

    control_rate: float
    treatment_rate: float
    difference: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    alpha: float
    ci_method: str

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def relative_lift(self) -> float:
        return self.difference / self.control_rate if self.control_rate > 0 else math.inf

    def to_dict(self) -> dict[str, float | bool | str]:
        return {
            "control_rate": self.control_rate,
            "treatment_rate": self.treatment_rate,
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "z": self.z,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "ci_method": self.ci_method,
            "significant": self.significant,
        }


def _check_counts(name: str, conversions: int, n: int) -> None:
    if int(n) != n or n <= 0:
        raise ValueError(f"{name}_n must be a positive integer, got {n}")
    if int(conversions) != conversions or not 0 <= conversions <= n:
        raise ValueError(f"{name}_conversions must be an integer in 0..{name}_n ({n}), got {conversions}")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def analyze(
    control_conversions: int,
    control_n: int,
    treatment_conversions: int,
    treatment_n: int,
    alpha: float = 0.05,
    ci_method: str = "wald",
) -> ABResult:
    """Two-sided comparison of conversion rates (see :class:`ABResult`)."""
    _check_counts("control", control_conversions, control_n)
    _check_counts("treatment", treatment_conversions, treatment_n)
    _check_alpha(alpha)
    p_c = control_conversions / control_n
    p_t = treatment_conversions / treatment_n
    pooled = (control_conversions + treatment_conversions) / (control_n + treatment_n)
    if pooled in (0.0, 1.0):
        # no variance at all: the z statistic is undefined; identical degenerate rates are no evidence
        z, p_value = 0.0, 1.0
    else:
        z_raw, p_raw = proportions_ztest(
            np.array([treatment_conversions, control_conversions]), np.array([treatment_n, control_n])
        )
        z, p_value = float(z_raw), float(p_raw)
    low, high = confint_proportions_2indep(
        treatment_conversions,
        treatment_n,
        control_conversions,
        control_n,
        method=ci_method,
        compare="diff",
        alpha=alpha,
    )
    return ABResult(
        control_rate=p_c,
        treatment_rate=p_t,
        difference=p_t - p_c,
        ci_low=float(low),
        ci_high=float(high),
        z=z,
        p_value=p_value,
        alpha=alpha,
        ci_method=ci_method,
    )


def analyze_log(
    log: ExperimentLog, experiment: str, control: str, treatment: str, alpha: float = 0.05
) -> ABResult:
    """:func:`analyze` on the counts an :class:`ExperimentLog` holds for two arms of ``experiment``."""
    counts = log.counts().get(experiment)
    if counts is None:
        raise KeyError(f"no exposures logged for experiment {experiment!r}")
    for arm in (control, treatment):
        if arm not in counts:
            raise KeyError(f"experiment {experiment!r} has no exposures in arm {arm!r}")
    c, t = counts[control], counts[treatment]
    return analyze(c.conversions, c.exposures, t.conversions, t.exposures, alpha=alpha)


@dataclass(frozen=True)
class SRMResult:
    """Chi-square goodness of fit of observed arm sizes to the planned split."""

    chi2: float
    p_value: float
    expected: list[float]
    threshold: float

    @property
    def mismatch(self) -> bool:
        """True when the split is implausible under the planned weights (p below ``threshold``)."""
        return self.p_value < self.threshold


def srm_check(
    observed_counts: Sequence[int] | Mapping[str, int],
    expected_weights: Sequence[float] | Mapping[str, float],
    threshold: float = 0.001,
) -> SRMResult:
    """Sample-ratio-mismatch test. Mappings are matched by arm name; sequences by position.

    The conventional threshold is strict (0.001) because the test is run on every experiment and a false
    alarm halts analysis.
    """
    if isinstance(observed_counts, Mapping):
        if not isinstance(expected_weights, Mapping) or set(observed_counts) != set(expected_weights):
            raise ValueError("observed_counts and expected_weights must name the same arms")
        arms = sorted(observed_counts)
        obs = np.array([observed_counts[a] for a in arms], dtype=np.float64)
        w = np.array([expected_weights[a] for a in arms], dtype=np.float64)
    else:
        obs = np.asarray(observed_counts, dtype=np.float64)
        w = np.asarray(list(expected_weights), dtype=np.float64)
    if obs.ndim != 1 or len(obs) < 2 or obs.shape != w.shape:
        raise ValueError("need at least two arms, with one weight per observed count")
    if np.any(obs < 0) or np.any(w <= 0) or obs.sum() <= 0:
        raise ValueError("counts must be non-negative with a positive total, and weights positive")
    expected = obs.sum() * w / w.sum()
    chi2, p = chisquare(obs, f_exp=expected)
    return SRMResult(
        chi2=float(chi2), p_value=float(p), expected=[float(e) for e in expected], threshold=threshold
    )


def _effect(baseline_rate: float, mde_abs: float) -> float:
    if not 0.0 < baseline_rate < 1.0:
        raise ValueError(f"baseline_rate must be in (0, 1), got {baseline_rate}")
    target = baseline_rate + mde_abs
    if mde_abs == 0 or not 0.0 < target < 1.0:
        raise ValueError(
            f"mde_abs must be non-zero and keep baseline_rate + mde_abs in (0, 1), got {mde_abs}"
        )
    return abs(float(proportion_effectsize(target, baseline_rate)))


def sample_size(
    baseline_rate: float, mde_abs: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> int:
    """Users needed in the control arm (treatment gets ``ratio`` times as many) to detect an absolute
    change ``mde_abs`` from ``baseline_rate`` with a two-sided test at ``alpha`` and the given power."""
    _check_alpha(alpha)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    h = _effect(baseline_rate, mde_abs)
    n = NormalIndPower().solve_power(
        effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    return math.ceil(float(np.asarray(n).item()) - 1e-9)


def power(
    baseline_rate: float, mde_abs: float, n_per_arm: int, alpha: float = 0.05, ratio: float = 1.0
) -> float:
    """Probability that a two-sided test at ``alpha`` detects an absolute change ``mde_abs`` with
    ``n_per_arm`` users in control (and ``ratio * n_per_arm`` in treatment)."""
    _check_alpha(alpha)
    if n_per_arm <= 0:
        raise ValueError(f"n_per_arm must be positive, got {n_per_arm}")
    h = _effect(baseline_rate, mde_abs)
    value = NormalIndPower().power(
        effect_size=h, nobs1=n_per_arm, alpha=alpha, ratio=ratio, alternative="two-sided"
    )
    return float(np.asarray(value).item())
