"""Revert data → named exceptions: generated from the artifacts' ABIs, with messages that say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak

from backend.chain import errors
from backend.chain.errors import ContractReverted, Panic, RevertedWithReason, UnknownRevert, decode_revert

ARTIFACTS = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"
NAMES = ("ConsentRegistry", "PartnershipAgreements", "SettlementLedger")


def _abi_errors() -> list[tuple[str, dict]]:
    out = []
    for name in NAMES:
        for entry in json.loads((ARTIFACTS / f"{name}.json").read_text())["abi"]:
            if entry["type"] == "error":
                out.append((name, entry))
    return out


def _sample(t: str) -> object:
    if t == "address":
        return "0x" + "ab" * 20
    if t.startswith("bytes") and t != "bytes":
        return b"\x12" * int(t[5:])
    if t == "string":
        return "partner not a party"
    if t == "bool":
        return True
    return 7


@pytest.mark.parametrize(
    ("contract", "entry"), _abi_errors(), ids=lambda v: v if isinstance(v, str) else v["name"]
)
def test_every_abi_error_has_a_named_class_that_decodes_its_arguments(contract: str, entry: dict) -> None:
    types = [errors.abi_type(p) for p in entry["inputs"]]
    selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
    values = [_sample(t) for t in types]
    exc = decode_revert(selector + encode(types, values), context=f"{contract}.something")
    cls = getattr(errors, entry["name"])
    assert type(exc) is cls and issubclass(cls, ContractReverted)
    assert list(exc.args_by_name) == [p["name"] for p in entry["inputs"]]
    message = str(exc)
    assert message.startswith(f"{contract}.something reverted with {entry['name']}(")
    assert "{" not in message, "a hint references an argument the error does not have"
    # every error of ours carries a specific hint, not the generic fallback
    assert errors.DEFAULT_HINT not in message, (
        f"add a hint (what to do next) for {entry['name']} to HINTS in backend/chain/errors.py"
    )


def test_error_string_panic_and_unknown() -> None:
    reason = decode_revert(bytes.fromhex("08c379a0") + encode(["string"], ["too late"]), context="X.f")
    assert isinstance(reason, RevertedWithReason) and reason.reason == "too late"
    assert "X.f reverted" in str(reason) and "too late" in str(reason)
    panic = decode_revert("0x4e487b71" + "00" * 31 + "11")
    assert isinstance(panic, Panic) and panic.code == 0x11 and "overflow" in str(panic)
    unknown = decode_revert(b"\xde\xad\xbe\xef")
    assert isinstance(unknown, UnknownRevert) and "0xdeadbeef" in str(unknown)
    assert isinstance(decode_revert(None), UnknownRevert)
    assert "no revert data" in str(decode_revert(b""))


def test_openzeppelin_errors_are_known_with_role_names() -> None:
    selector = keccak(text="AccessControlUnauthorizedAccount(address,bytes32)")[:4]
    exc = decode_revert(
        selector + encode(["address", "bytes32"], ["0x" + "11" * 20, keccak(text="NOTICE_ADMIN_ROLE")])
    )
    assert isinstance(exc, errors.AccessControlUnauthorizedAccount)
    assert "NOTICE_ADMIN_ROLE" in str(exc)
    assert errors.error_class("ECDSAInvalidSignature").__name__ == "ECDSAInvalidSignature"


def test_unknown_class_name_says_what_exists() -> None:
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018
    with pytest.raises(KeyError, match="known"):
        errors.error_class("NoSuchError")
