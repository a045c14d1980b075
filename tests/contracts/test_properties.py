"""Property tests (hypothesis) of the three invariants the ledger and the registry rest on:

- the split of a commission sums exactly to it, on chain and in the Python mirror, for any shares and values;
- recording conversions as one batch gives exactly what recording them one by one gives;
- the consent check at time t agrees with the history of grants, revocations, renewals and notice bumps.

Each example runs between a snapshot and a revert of the chain; the number of examples is bounded so the file
runs in well under two minutes on eth-tester.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.chain import errors
from backend.chain.types import (
    UINT112_MAX,
    AgreementTerms,
    Conversion,
    ConversionStatus,
    Party,
    Purpose,
    split_commission,
)

from .conftest import DAY, ChainHelper, rand32

CHAIN_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

# ------------------------------------------------------------------------------------------------ split


@st.composite
def shares(draw: st.DrawFn) -> list[int]:
    """2..32 shares (parts per million) summing to exactly 1e6, zeros allowed."""
    n = draw(st.integers(2, 32))
    cuts = sorted(draw(st.lists(st.integers(0, 1_000_000), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, 1_000_000]
    return [bounds[i + 1] - bounds[i] for i in range(n)]


def _terms_with(chain: ChainHelper, share_list: list[int], rate: int) -> AgreementTerms:
    base = chain.agreement_terms(commission_rate=rate)
    accounts = [f"0x{i + 1:040x}" for i in range(len(share_list))]
    return replace(
        base,
        parties=tuple(Party(a, s) for a, s in zip(accounts, share_list, strict=True)),
        partner=accounts[0],
    )


@settings(CHAIN_SETTINGS, max_examples=100)
@given(
    share_list=shares(),
    rate=st.one_of(st.integers(0, 1_000_000), st.sampled_from([1, 999_999, 1_000_000])),
    value=st.one_of(st.integers(0, UINT112_MAX), st.integers(0, 10_000), st.just(UINT112_MAX)),
)
def test_split_sums_exactly_on_chain_and_in_python(
    chain: ChainHelper, share_list: list[int], rate: int, value: int
) -> None:
    terms = _terms_with(chain, share_list, rate)
    commission, amounts = chain.ledger.split_commission(terms, value)
    assert (commission, amounts) == split_commission(terms, value)
    assert commission == value * rate // 1_000_000
    assert sum(amounts) == commission
    assert all(a >= 0 for a in amounts)
    for j in range(1, len(amounts)):
        assert amounts[j] == commission * share_list[j] // 1_000_000
    # the remainder given to parties[0] is less than one wei per party
    assert 0 <= amounts[0] - commission * share_list[0] // 1_000_000 < len(amounts)


# --------------------------------------------------------------------------------- batch == the singles


@dataclass(frozen=True)
class Outcome:
    totals: list[tuple[int, int, int]]
    statuses: list[ConversionStatus]
    recorded: list[Conversion]


def _record_batch(chain: ChainHelper, agreement, convs: list[Conversion]) -> Outcome:
    result = chain.record(agreement, convs)
    events = result.events_named("ConversionsRecorded")
    assert len(events) == 1
    recorded = [Conversion.from_abi(c) for c in events[0]["conversions"]]
    batch = chain.ledger.batch_of(result.value)
    assert [t[0] for t in chain.totals(agreement)] == list(batch.amounts)
    return Outcome(
        chain.totals(agreement),
        [chain.ledger.conversion_status(agreement.id, c.data.id) for c in convs],
        recorded,
    )


def _record_singles(chain: ChainHelper, agreement, convs: list[Conversion]) -> Outcome:
    recorded: list[Conversion] = []
    for c in convs:
        result = chain.ledger.record_conversion(agreement.id, agreement.terms, c, sender=chain.acc.reporter)
        (ev,) = result.events_named("ConversionsRecorded")
        assert ev["conversionsRoot"] == c.leaf()
        recorded += [Conversion.from_abi(x) for x in ev["conversions"]]
    return Outcome(
        chain.totals(agreement),
        [chain.ledger.conversion_status(agreement.id, c.data.id) for c in convs],
        recorded,
    )


@settings(CHAIN_SETTINGS, max_examples=25)
@given(
    values=st.lists(st.integers(1, UINT112_MAX >> 20), min_size=1, max_size=6),
    rate=st.integers(1, 1_000_000),
    ages=st.data(),
)
def test_batch_equals_the_same_singles(
    chain: ChainHelper, isolated, values: list[int], rate: int, ages
) -> None:
    with isolated():
        agreement = chain.active_agreement(commission_rate=rate)
        subjects = chain.consented_subjects(len(values))
        chain.advance(DAY)
        now = chain.now()
        convs = [
            chain.conversion(s, value=v, time=now - ages.draw(st.integers(0, DAY - 1)))
            for s, v in zip(subjects, values, strict=True)
        ]
        snap = chain.client.snapshot()
        batch = _record_batch(chain, agreement, convs)
        chain.client.revert(snap)
        assert all(
            chain.ledger.conversion_status(agreement.id, c.data.id) == ConversionStatus.UNKNOWN for c in convs
        )
        singles = _record_singles(chain, agreement, convs)
    assert batch == singles
    assert batch.recorded == convs
    expected = [0] * 3
    for c in convs:
        for j, a in enumerate(split_commission(agreement.terms, c.data.value)[1]):
            expected[j] += a
    assert [t[0] for t in batch.totals] == expected


# ----------------------------------------------------------------------------- consent at time t vs model


@dataclass
class Model:
    """The registry's rule for one (subject, partner, purpose), written out plainly."""

    granted_at: int = 0
    expires_at: int = 0
    revoked_at: int = 0
    platform_version: int = 0
    partner_version: int = 0
    nonce: int = 0
    current_platform: int = 1
    current_partner: int = 1

    def counts_at(self, t: int, now: int) -> bool:
        if self.granted_at == 0 or t > now:
            return False
        if not self.granted_at <= t < self.expires_at:
            return False
        if self.revoked_at and t >= self.revoked_at:
            return False
        return (self.platform_version, self.partner_version) == (self.current_platform, self.current_partner)

    def grant(self, now: int, expires_at: int, platform_version: int, partner_version: int) -> None:
        if not self.counts_at(now, now):
            self.granted_at, self.revoked_at = now, 0
        self.expires_at = expires_at
        self.platform_version, self.partner_version = platform_version, partner_version
        self.nonce += 1

    def can_revoke(self) -> bool:
        return self.granted_at != 0 and self.revoked_at == 0

    def revoke(self, now: int) -> None:
        self.revoked_at = now
        self.nonce += 1


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(60, 60 * DAY)),
        st.tuples(st.just("grant_stale"), st.integers(60, 60 * DAY)),
        st.tuples(st.just("revoke"), st.just(0)),
        st.tuples(st.just("advance"), st.integers(1, 40 * DAY)),
        st.tuples(st.just("bump_partner"), st.just(0)),
        st.tuples(st.just("bump_platform"), st.just(0)),
    ),
    min_size=1,
    max_size=9,
)


@settings(CHAIN_SETTINGS, max_examples=60)
@given(ops=OPS, offsets=st.lists(st.integers(-2 * DAY, 2 * DAY), min_size=3, max_size=6))
def test_consent_at_time_t_matches_the_history(chain: ChainHelper, isolated, ops, offsets: list[int]) -> None:
    purpose = Purpose.PRODUCT_RECOMMENDATION
    partner = chain.acc.partner
    subject = rand32()
    with isolated():
        model = Model(current_partner=chain.consent.partner_notice_version(partner))
        start = chain.now()
        marks = [start]

        def block_time(result) -> int:
            return int(chain.client.w3.eth.get_block(result.block_number)["timestamp"])

        for op, arg in ops:
            if op in ("grant", "grant_stale"):
                stale = op == "grant_stale" and model.current_partner > 1
                pv = model.current_partner - 1 if stale else model.current_partner
                terms = replace(chain.terms(purpose, expires_in=arg), partner_notice_version=pv)
                result = chain.consent.grant(subject, terms, rand32(), sender=chain.acc.registrar)
                model.grant(block_time(result), terms.expires_at, terms.platform_notice_version, pv)
                marks += [model.granted_at, model.expires_at]
            elif op == "revoke":
                if model.can_revoke():
                    result = chain.consent.revoke(subject, partner, purpose, sender=chain.acc.registrar)
                    model.revoke(block_time(result))
                    marks.append(model.revoked_at)
                else:
                    with pytest.raises(errors.ConsentRegistryNotGranted):
                        chain.consent.revoke(subject, partner, purpose, sender=chain.acc.registrar)
            elif op == "advance":
                marks.append(chain.advance(arg))
            elif op == "bump_partner":
                model.current_partner += 1
                chain.consent.set_partner_notice_version(
                    partner, model.current_partner, sender=chain.acc.admin
                )
            else:
                model.current_platform += 1
                chain.consent.set_platform_notice_version(model.current_platform, sender=chain.acc.admin)
            now = chain.now()
            assert chain.consent.is_consented(subject, partner, purpose) == model.counts_at(now, now)

        now = chain.now()
        state = chain.consent.consent_of(subject, partner, purpose)
        assert (state.granted_at, state.expires_at, state.revoked_at, state.nonce) == (
            model.granted_at,
            model.expires_at,
            model.revoked_at,
            model.nonce,
        )
        times = sorted(
            {max(0, m + d) for m in marks for d in (-1, 0, 1)} | {max(0, start + o) for o in offsets}
        )
        times = [t for t in times if t < 2**40]
        expected = [model.counts_at(t, now) for t in times]
        got = chain.consent.are_consented_at([subject] * len(times), partner, purpose, times)
        assert got == expected
        for t in times[:: max(1, len(times) // 6)]:
            assert chain.consent.is_consented_at(subject, partner, purpose, t) == model.counts_at(t, now)
        mask = chain.consent.consent_mask(subject, partner)
        assert bool(mask & purpose.bit) == model.counts_at(now, now)
