import hashlib
import hmac

import pytest

from backend.privacy import new_user_key, pseudonym, reference_hash


def test_pseudonym_is_the_keyed_hash_of_the_user_id() -> None:
    key = bytes(range(32))
    expected = hmac.new(key, b"user-42", hashlib.sha256).digest()
    assert pseudonym(key, "user-42") == expected
    assert len(pseudonym(key, "user-42")) == 32


def test_pseudonym_cannot_be_linked_without_the_key() -> None:
    a, b = new_user_key(), new_user_key()
    assert a != b
    assert pseudonym(a, "user-42") != pseudonym(b, "user-42")
    assert b"user-42" not in pseudonym(a, "user-42")


@pytest.mark.parametrize(("key", "uid"), [(b"short", "u"), (bytes(32), "")])
def test_pseudonym_rejects_bad_input(key: bytes, uid: str) -> None:
    with pytest.raises(ValueError):
        pseudonym(key, uid)


def test_reference_hash_is_domain_separated() -> None:
    assert reference_hash("receipt", "x") != reference_hash("order", "x")
    assert reference_hash("receipt", "x") == hashlib.sha256(b"knowledger:receipt:x").digest()
