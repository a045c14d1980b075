"""Secrets the service issues (API keys, sign-in tokens) and how it stores them: only their SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def key_hash(key: str) -> str:
    """API keys and tokens are 256-bit random strings, stored as their SHA-256 (never in clear)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_secret(prefix: str) -> str:
    """A fresh 256-bit secret, e.g. ``pk_…`` (partner key), ``usr_…`` (sign-in token), ``op_…``."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def same_key(key: str, stored_hash: str) -> bool:
    """Whether ``key`` hashes to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(key_hash(key), stored_hash)
