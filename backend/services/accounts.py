"""The service's signing accounts on chain."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.chain import NamedAccounts, Wallet


@dataclass(frozen=True)
class Roles:
    """Who signs what: the registrar writes consents, the reporter records conversions, the admin
    publishes notice versions. On local chains also the demo's named accounts (platform, creator,
    partners) and any further funded accounts."""

    admin: Wallet
    registrar: Wallet
    reporter: Wallet
    named: NamedAccounts | None = None
    extra: tuple[Wallet, ...] = field(default_factory=tuple)
