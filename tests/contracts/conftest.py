"""Helpers shared by the contract tests: agreements, consents and conversions built with the chain layer's
typed values, on top of the ``deployed`` fixture of ``tests/conftest.py``."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest

from backend.chain import TxResult
from backend.chain.deploy import Deployment
from backend.chain.types import (
    AgreementTerms,
    ConsentTerms,
    Conversion,
    ConversionData,
    Party,
    Purpose,
)

DAY = 86_400
#: Shares of the default three-party agreement: platform, partner (the bank or insurer), course creator.
DEFAULT_SHARES = (500_000, 300_000, 200_000)
#: 5% commission, 30-day attribution window, 14-day withdrawal right.
DEFAULT_RATE = 50_000
ATTRIBUTION_WINDOW = 30 * DAY
VALIDATION_WINDOW = 14 * DAY

_ids = itertools.count(1)


def rand32() -> bytes:
    return os.urandom(32)


def same_address(a: str, b: str) -> bool:
    return str(a).lower() == str(b).lower()


def next_conversion_id() -> int:
    """Conversion ids unique across the whole test session (snapshots revert the chain, not this counter)."""
    return next(_ids)


@dataclass
class Agreement:
    id: int
    terms: AgreementTerms


class ChainHelper:
    """What the contract tests do again and again, spelled once."""

    def __init__(self, d: Deployment, clock: Any) -> None:
        """``clock``: the ``clock`` fixture of tests/conftest.py (exact control of the chain's clock)."""
        self.d = d
        self.clock = clock
        self.client = d.client
        self.consent = d.consent
        self.agreements = d.agreements
        self.ledger = d.ledger
        self.acc = d.accounts
        assert self.acc is not None

    # ------------------------------------------------------------------ time
    def now(self) -> int:
        """The latest block's timestamp."""
        return self.client.now()

    def advance(self, seconds: int) -> int:
        """Move the chain's clock forward by ``seconds`` and mine a block; returns the new ``now()``."""
        return self.client.increase_time(seconds)

    def next_block_time(self) -> int:
        """The timestamp of the block the next transaction will be mined in, pinned to one second after the
        latest block: derive a transaction's expiries and deadlines from it, not from ``now()``."""
        return int(self.clock.next_block())

    def travel_to(self, timestamp: int) -> int:
        """Mine a block stamped exactly ``timestamp`` (later than the latest block); returns it."""
        return int(self.clock.travel_to(timestamp))

    # ------------------------------------------------------------------ consent
    def terms(
        self,
        purpose: Purpose = Purpose.PRODUCT_RECOMMENDATION,
        expires_in: int = 300 * DAY,
        partner: str | None = None,
    ) -> ConsentTerms:
        """Current terms for ``partner`` (default: the partner) that expire ``expires_in`` seconds after the
        block the next transaction is mined in (pinned: a grant sent next lasts exactly ``expires_in``)."""
        partner = partner or self.acc.partner
        return self.consent.current_terms(partner, purpose, self.next_block_time() + expires_in)

    def grant(
        self,
        subject: bytes | None = None,
        purpose: Purpose = Purpose.PRODUCT_RECOMMENDATION,
        expires_in: int = 300 * DAY,
        partner: str | None = None,
    ) -> bytes:
        subject = subject or rand32()
        self.consent.grant(
            subject, self.terms(purpose, expires_in, partner), rand32(), sender=self.acc.registrar
        )
        return subject

    def consented_subjects(self, n: int) -> list[bytes]:
        """``n`` pseudonyms holding ProductRecommendation consent for the partner, granted in one batch."""
        from backend.chain.types import ConsentGrant

        subjects = [rand32() for _ in range(n)]
        terms = self.terms()
        self.consent.grant_batch(
            [ConsentGrant(s, terms, rand32()) for s in subjects], sender=self.acc.registrar
        )
        return subjects

    # ------------------------------------------------------------------ agreements
    def agreement_terms(self, **overrides: Any) -> AgreementTerms:
        now = self.now()
        base = AgreementTerms(
            parties=(
                Party(self.acc.platform, DEFAULT_SHARES[0]),
                Party(self.acc.partner, DEFAULT_SHARES[1]),
                Party(self.acc.creator, DEFAULT_SHARES[2]),
            ),
            partner=self.acc.partner,
            reporter=self.acc.reporter,
            commission_rate=DEFAULT_RATE,
            attribution_window=ATTRIBUTION_WINDOW,
            validation_window=VALIDATION_WINDOW,
            valid_from=now - DAY,
            valid_until=now + 365 * DAY,
            currency="CNY",
            supersedes=0,
        )
        return replace(base, **overrides) if overrides else base

    def propose(self, terms: AgreementTerms | None = None, proposer: str | None = None) -> Agreement:
        terms = terms or self.agreement_terms()
        result = self.agreements.propose(terms, sender=proposer or terms.parties[0].account)
        return Agreement(int(result.value), terms)

    def activate(self, agreement: Agreement) -> Agreement:
        for i, party in enumerate(agreement.terms.parties):
            if not self.agreements.has_accepted(agreement.id, i):
                self.agreements.accept(agreement.id, agreement.terms, sender=party.account)
        return agreement

    def active_agreement(self, **overrides: Any) -> Agreement:
        return self.activate(self.propose(self.agreement_terms(**overrides) if overrides else None))

    # ------------------------------------------------------------------ conversions
    def conversion(
        self,
        subject: bytes,
        value: int = 10_000,
        time: int | None = None,
        recommended_at: int | None = None,
        conversion_id: int | None = None,
    ) -> Conversion:
        time = self.now() if time is None else time
        recommended_at = time - 3_600 if recommended_at is None else recommended_at
        cid = next_conversion_id() if conversion_id is None else conversion_id
        return Conversion(ConversionData(cid, time, recommended_at, value), rand32(), subject)

    def record(self, agreement: Agreement, conversions: Sequence[Conversion]) -> TxResult:
        return self.ledger.record_conversions(
            agreement.id, agreement.terms, conversions, sender=self.acc.reporter
        )

    def totals(self, agreement: Agreement) -> list[tuple[int, int, int]]:
        out = []
        for p in agreement.terms.parties:
            t = self.ledger.totals_of(agreement.id, p.account)
            out.append((t.provisional, t.final, t.reversed))
        return out


@pytest.fixture
def chain(deployed: Deployment, clock: Any) -> ChainHelper:
    return ChainHelper(deployed, clock)


@pytest.fixture
def isolated(deployed: Deployment) -> Callable[[], Any]:
    """A context manager factory for a snapshot reverted on exit (one per hypothesis example)."""
    from contextlib import contextmanager

    @contextmanager
    def _ctx() -> Any:
        snap = deployed.client.snapshot()
        try:
            yield
        finally:
            deployed.client.revert(snap)

    return _ctx
