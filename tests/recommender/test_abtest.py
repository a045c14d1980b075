"""A/B testing: assignment, logs and statistics, checked against numbers computed by hand here."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recommender.abtest import (
    ExperimentLog,
    FileExperimentLog,
    InMemoryExperimentLog,
    analyze,
    analyze_log,
    assign,
    bucket,
    power,
    sample_size,
    srm_check,
)

Z_975 = 1.959963984540054  # standard normal 97.5% quantile
Z_80 = 0.8416212335729143  # standard normal 80% quantile


def phi(x: float) -> float:
    """Standard normal CDF via erf."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_bucket_is_the_documented_hash() -> None:
    digest = hashlib.sha256(b"reco-v2\nu_1234abcd").digest()
    expected = int.from_bytes(digest[:8], "big") / 2**64
    assert bucket("u_1234abcd", "reco-v2") == expected


def test_assignment_follows_bucket_ranges() -> None:
    pseudonyms = [f"u_{i:06d}" for i in range(200)]
    for p in pseudonyms:
        b = bucket(p, "exp")
        expected = "control" if b < 0.2 else "treatment"
        assert assign(p, "exp", ["control", "treatment"], weights=[1, 4]) == expected
    # sticky and experiment-specific
    assert assign("u_1", "exp", ["a", "b"]) == assign("u_1", "exp", ["a", "b"])
    arms_a = [assign(p, "exp-a", ["x", "y"]) for p in pseudonyms]
    arms_b = [assign(p, "exp-b", ["x", "y"]) for p in pseudonyms]
    assert arms_a != arms_b


def test_assignment_proportions_match_weights() -> None:
    n = 20_000
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(n):
        counts[assign(f"user{i}", "split-check", ["a", "b", "c"], weights=[0.5, 0.3, 0.2])] += 1
    # each share within 4 standard errors of its target: sqrt(p(1-p)/n) <= 0.0036
    for arm, target in zip("abc", (0.5, 0.3, 0.2), strict=True):
        assert abs(counts[arm] / n - target) < 4 * math.sqrt(target * (1 - target) / n)


def test_assignment_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="pseudonym"):
        assign("ann@example.org", "exp", ["a", "b"])
    with pytest.raises(ValueError, match="weights"):
        assign("u_1", "exp", ["a", "b"], weights=[1, -1])
    with pytest.raises(ValueError, match="distinct"):
        assign("u_1", "exp", ["a", "a"])


def test_analyze_matches_hand_computation() -> None:
    # control 40/1000 = 0.04, treatment 60/1000 = 0.06
    res = analyze(40, 1000, 60, 1000)
    # pooled p = 100/2000 = 0.05; se = sqrt(0.05 * 0.95 * (1/1000 + 1/1000)) = sqrt(9.5e-5)
    z = 0.02 / math.sqrt(0.05 * 0.95 * 2 / 1000)
    assert z == pytest.approx(2.0519567, abs=1e-6)
    assert res.z == pytest.approx(z)
    assert res.p_value == pytest.approx(2 * (1 - phi(z)))
    assert res.p_value == pytest.approx(0.0401739, abs=1e-6)
    # Wald CI of the difference: 0.02 +- 1.96 * sqrt(0.06*0.94/1000 + 0.04*0.96/1000)
    se = math.sqrt(0.06 * 0.94 / 1000 + 0.04 * 0.96 / 1000)
    assert res.ci_low == pytest.approx(0.02 - Z_975 * se)
    assert res.ci_high == pytest.approx(0.02 + Z_975 * se)
    assert (res.control_rate, res.treatment_rate, res.difference) == pytest.approx((0.04, 0.06, 0.02))
    assert res.relative_lift == pytest.approx(0.5)
    assert res.significant
    assert not analyze(40, 1000, 60, 1000, alpha=0.01).significant


def test_analyze_degenerate_and_invalid() -> None:
    res = analyze(0, 100, 0, 100)
    assert (res.z, res.p_value, res.significant) == (0.0, 1.0, False)
    with pytest.raises(ValueError, match="control_conversions"):
        analyze(11, 10, 1, 10)
    with pytest.raises(ValueError, match="treatment_n"):
        analyze(1, 10, 0, 0)


def test_srm_check_by_hand() -> None:
    # 60 vs 40 against 50/50: chi2 = (10^2/50) * 2 = 4; p = P(chi2_1 > 4) = erfc(sqrt(4/2))
    res = srm_check([60, 40], [0.5, 0.5])
    assert res.chi2 == pytest.approx(4.0)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(2.0)))
    assert res.expected == [50.0, 50.0]
    assert not res.mismatch  # 0.0455 is not below the 0.001 threshold
    # 5200 vs 4800 against 50/50: chi2 = 2 * 200^2 / 5000 = 16, p = erfc(sqrt(8)) ~ 6.3e-5
    big = srm_check({"a": 5200, "b": 4800}, {"a": 1, "b": 1})
    assert big.chi2 == pytest.approx(16.0)
    assert big.p_value == pytest.approx(math.erfc(math.sqrt(8.0)))
    assert big.mismatch
    with pytest.raises(ValueError, match="same arms"):
        srm_check({"a": 1, "b": 2}, {"a": 1, "c": 1})


def test_sample_size_cohen_table_and_formula() -> None:
    # Cohen (1988) table for h = 0.2, two-sided alpha .05, power .8: n = 392 per group (392.4 -> 393)
    h = 0.2
    n_formula = 2 * ((Z_975 + Z_80) / h) ** 2
    assert n_formula == pytest.approx(392.44, abs=0.01)
    # rates with h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1)) = 0.2: p = sin^2(asin(sqrt(.5)) -/+ .05)
    base = math.asin(math.sqrt(0.5))
    p1, p2 = math.sin(base - 0.05) ** 2, math.sin(base + 0.05) ** 2
    assert sample_size(p1, p2 - p1) == math.ceil(n_formula)
    # a typical case: 10% -> 12%
    h2 = 2 * math.asin(math.sqrt(0.12)) - 2 * math.asin(math.sqrt(0.10))
    assert sample_size(0.10, 0.02) == math.ceil(2 * ((Z_975 + Z_80) / h2) ** 2)


def test_power_by_hand() -> None:
    h = 2 * math.asin(math.sqrt(0.12)) - 2 * math.asin(math.sqrt(0.10))
    n = 2000
    shift = h * math.sqrt(n / 2)
    expected = phi(shift - Z_975) + phi(-shift - Z_975)
    assert power(0.10, 0.02, n) == pytest.approx(expected, rel=1e-6)
    assert power(0.10, 0.02, sample_size(0.10, 0.02)) >= 0.8
    with pytest.raises(ValueError, match="mde_abs"):
        power(0.10, 0.95, 100)


def _exercise(log: ExperimentLog) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(10):
        log.log_exposure("exp", f"u_{i}", "control" if i < 6 else "treatment", t0)
    log.log_exposure("exp", "u_0", "control", t0 + timedelta(hours=1))  # repeat exposure counts once
    log.log_conversion("exp", "u_0", t0 + timedelta(days=1))
    log.log_conversion("exp", "u_0", t0 + timedelta(days=2))  # repeat conversion counts once
    log.log_conversion("exp", "u_1", t0 - timedelta(days=1))  # before exposure: not attributed
    log.log_conversion("exp", "u_7", t0 + timedelta(days=1))
    log.log_conversion("exp", "u_8", t0 + timedelta(days=1))
    log.log_conversion("exp", "u_99", t0 + timedelta(days=1))  # never exposed


def test_in_memory_log_counts_distinct_users() -> None:
    log = InMemoryExperimentLog()
    assert isinstance(log, ExperimentLog)
    _exercise(log)
    counts = log.counts()["exp"]
    assert (counts["control"].exposures, counts["control"].conversions) == (6, 1)
    assert (counts["treatment"].exposures, counts["treatment"].conversions) == (4, 2)
    assert log.unattributed == {"exp": 1}
    res = analyze_log(log, "exp", "control", "treatment")
    assert (res.control_rate, res.treatment_rate) == pytest.approx((1 / 6, 2 / 4))
    with pytest.raises(ValueError, match="already exposed to arm 'control'"):
        log.log_exposure("exp", "u_0", "treatment")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_file_log_persists_and_replays(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ab{suffix}"
    log = FileExperimentLog(path)
    _exercise(log)
    reopened = FileExperimentLog(path)
    assert reopened.counts() == log.counts()
    assert reopened.counts()["exp"]["treatment"].conversions == 2


def test_file_log_reports_corrupt_lines(tmp_path: Path) -> None:
    path = tmp_path / "ab.jsonl"
    good = {
        "kind": "exposure",
        "experiment": "exp",
        "pseudonym": "u_1",
        "arm": "a",
        "ts": "2024-01-01T00:00:00+00:00",
    }
    path.write_text(json.dumps(good) + "\n" + "{not json\n")
    with pytest.raises(ValueError, match=r"ab.jsonl line 2: not valid JSON"):
        FileExperimentLog(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "ts": "soon"}) + "\n")
    with pytest.raises(ValueError, match=r"ab.jsonl line 2, field 'ts': 'soon' is not an ISO 8601 timestamp"):
        FileExperimentLog(path)
    path.write_text(json.dumps({**good, "kind": "click"}) + "\n")
    with pytest.raises(ValueError, match=r"ab.jsonl line 1: field 'kind': 'click' is not one of"):
        FileExperimentLog(path)
    with pytest.raises(ValueError, match=r"must end in \.jsonl or \.csv"):
        FileExperimentLog(tmp_path / "ab.txt")
