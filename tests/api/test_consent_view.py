"""The consent view: the answer for a head block is exactly what the registry holds at that block, it is
read again only when the chain says something changed for that learner, and processes that share nothing but
the chain stay equally fresh."""

from __future__ import annotations

import random
from collections.abc import Callable

from backend.chain import ConsentRegistryClient, Purpose
from backend.services.consent_view import ConsentView

from .conftest import Service
from .test_endpoints import partner_address, subject_bytes

DAY = 86_400


def _registry(svc: Service) -> ConsentRegistryClient:
    return svc.container.deployment.consent


def test_a_learner_is_read_once_until_their_consent_changes(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    user, other = svc.new_user(), svc.new_user()
    svc.grant(user)
    gateway = svc.container.gateway
    bank = partner_address(svc, "bank")
    subject = subject_bytes(user)
    assert gateway.verify_consent(subject, bank).ok
    reads = gateway.consents.reads
    svc.grant(other)  # new blocks, none about ``user``
    check = gateway.verify_consent(subject, bank)
    assert check.ok and gateway.consents.reads == reads
    assert check.head.number == svc.container.chain.head().number  # the answer names the newest block
    svc.container.deployment.consent.revoke(  # straight on the registry, past the service
        subject, bank, Purpose.PROFILING, sender=svc.container.roles.registrar
    )
    check = gateway.verify_consent(subject, bank)
    assert not check.ok and check.missing == {Purpose.PROFILING}
    assert gateway.consents.reads == reads + 1


def test_a_partner_notice_voids_every_cached_answer_for_that_partner(
    make_service: Callable[..., Service],
) -> None:
    svc = make_service()
    user = svc.new_user()
    svc.grant(user, "insurer")
    gateway = svc.container.gateway
    insurer = partner_address(svc, "insurer")
    assert gateway.verify_consent(subject_bytes(user), insurer).ok
    r = svc.api.put("/api/v1/partners/insurer/notice", json={"notice_text": "New."}, headers=svc.operator)
    assert r.status_code == 200
    assert gateway.verify_consent(subject_bytes(user), insurer).held == frozenset()


def test_an_expired_consent_stops_counting_without_any_event(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    user = svc.new_user()
    for purpose in ("profiling", "product_recommendation"):
        r = svc.api.put(f"/api/v1/me/consents/bank/{purpose}", json={"days": 1}, headers=user["headers"])
        assert r.status_code == 201, r.text
    gateway = svc.container.gateway
    bank = partner_address(svc, "bank")
    assert gateway.verify_consent(subject_bytes(user), bank).ok
    svc.container.chain.increase_time(2 * DAY)  # a block past the expiry; nothing emitted about ``user``
    assert gateway.verify_consent(subject_bytes(user), bank).held == frozenset()


def test_a_second_process_sees_a_revocation_made_through_the_first(
    make_service: Callable[..., Service],
) -> None:
    """Two views share nothing but the chain (as two API processes would)."""
    svc = make_service()
    user = svc.new_user()
    svc.grant(user)
    c = svc.container
    other = ConsentView(c.chain, c.deployment.consent)
    bank = partner_address(svc, "bank")
    subject = subject_bytes(user)
    assert other.mask_at(subject, bank, c.chain.head()) == 0b11
    r = svc.api.delete("/api/v1/me/consents/bank/product_recommendation", headers=user["headers"])
    assert r.status_code == 200
    assert other.mask_at(subject, bank, c.chain.head()) == 0b01


def test_every_answer_equals_the_registry_at_the_block_it_names(make_service: Callable[..., Service]) -> None:
    """Grants, revocations, notice changes, expiry and unrelated blocks in a random order: after each, every
    learner's answer from the view equals a read of the registry pinned at the head the answer names."""
    svc = make_service()
    c = svc.container
    registry = _registry(svc)
    users = [svc.new_user() for _ in range(4)]
    partners = {pid: partner_address(svc, pid) for pid in ("bank", "insurer")}
    view = c.gateway.consents
    rng = random.Random(7)
    checked = 0
    for _ in range(60):
        user, pid = rng.choice(users), rng.choice(list(partners))
        purpose = rng.choice(["profiling", "product_recommendation", "marketing_contact"])
        action = rng.random()
        if action < 0.45:
            days = rng.choice([1, 30])
            svc.api.put(f"/api/v1/me/consents/{pid}/{purpose}", json={"days": days}, headers=user["headers"])
        elif action < 0.8:
            svc.api.delete(f"/api/v1/me/consents/{pid}/{purpose}", headers=user["headers"])
        elif action < 0.87:
            svc.api.put(f"/api/v1/partners/{pid}/notice", json={"notice_text": "v"}, headers=svc.operator)
        else:
            c.chain.increase_time(rng.choice([3_600, 2 * DAY]))
        head = c.chain.head()
        for u in users:
            for address in partners.values():
                got = view.mask_at(subject_bytes(u), address, head)
                assert got == registry.consent_mask(subject_bytes(u), address, block=head.number)
                checked += 1
    assert checked == 60 * len(users) * len(partners)
    assert view.reads < checked  # most answers came from what was read before
