"""Pseudonyms: what the chain and partners see instead of a user.

A subject on chain is ``HMAC-SHA256(user_key, platform_user_id)``: a keyed hash, so nobody without the
per-user key can link the pseudonym back to the platform's user id, and erasing the key (a right-to-erasure
request) makes the on-chain history unlinkable for good. A user may instead act with their own wallet; their
subject is then the wallet address, left-padded to 32 bytes (see ``backend.chain.types.subject_for_wallet``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_BYTES = 32


def new_user_key() -> bytes:
    """A fresh random per-user key (kept off chain, deleted on erasure)."""
    return secrets.token_bytes(KEY_BYTES)


def pseudonym(user_key: bytes, platform_user_id: str) -> bytes:
    """The 32-byte subject pseudonym of ``platform_user_id`` under ``user_key``."""
    if len(user_key) < 16:
        raise ValueError("user_key must be at least 16 bytes")
    if not platform_user_id:
        raise ValueError("platform_user_id must not be empty")
    return hmac.new(user_key, platform_user_id.encode("utf-8"), hashlib.sha256).digest()


def reference_hash(kind: str, value: str) -> bytes:
    """A domain-separated SHA-256 of an off-chain reference (a receipt, a recommendation id, an order id)."""
    return hashlib.sha256(f"knowledger:{kind}:{value}".encode()).digest()
