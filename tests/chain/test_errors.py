"""Revert data → named exceptions: one generated class per error of the artifacts' ABIs (and OpenZeppelin's),
with messages that say what to do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_abi import encode
from eth_abi.tools import get_abi_strategy
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.chain import CONTRACT_NAMES, codegen, errors
from backend.chain.constants import ARTIFACTS_DIR as ARTIFACTS
from backend.chain.errors import (
    ContractReverted,
    ErrorSpec,
    ForeignContractError,
    Panic,
    RevertedWithReason,
    SettlementLedgerNoConsent,
    UnknownRevert,
    decode_revert,
)
from backend.chain.exceptions import attribute_name

NAMES = CONTRACT_NAMES


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
        f"add a hint (what to do next) for {entry['name']} to backend/chain/error_hints.toml and run "
        f"`{codegen.COMMAND}`"
    )


def _every_error() -> list[ErrorSpec]:
    """Every error of every ABI (once per declaring contract) and every OpenZeppelin error we list."""
    specs = [ErrorSpec.from_abi(entry, contract) for contract, entry in _abi_errors()]
    return specs + [ErrorSpec.from_signature(s) for s in codegen.OZ_ERRORS]


def _expected(type_: str, value: Any) -> Any:
    if type_ == "address":
        return to_checksum_address(value)
    return value


@pytest.mark.parametrize("spec", _every_error(), ids=lambda s: f"{s.contracts[0]}.{s.name}")
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_error_round_trips_into_its_static_class(spec: ErrorSpec, data: st.DataObject) -> None:
    types = [t for _, t in spec.inputs]
    values = [data.draw(get_abi_strategy(t), label=n) for n, t in spec.inputs]
    exc = decode_revert(spec.selector + encode(types, values), context="C.f")
    cls = getattr(errors, spec.name)
    assert (
        type(exc) is cls
        and cls is errors.error_class(spec.name)
        and cls.__module__.endswith("contract_errors")
    )
    assert (
        cls.spec is not None and cls.spec.selector == spec.selector and cls.spec.signature == spec.signature
    )
    assert errors.selector_of(spec.name) == "0x" + bytes(keccak(text=spec.signature))[:4].hex()
    expected = [_expected(t, v) for t, v in zip(types, values, strict=True)]
    assert list(exc.values) == expected
    assert exc.args_by_name == dict(zip([n for n, _ in cls.spec.inputs], expected, strict=True))
    for (name, _), value in zip(cls.spec.inputs, expected, strict=True):
        assert getattr(exc, attribute_name(name)) == value
    assert spec.name in str(exc) and exc.selector == "0x" + spec.selector.hex()


def test_error_classes_are_plain_module_attributes() -> None:
    assert SettlementLedgerNoConsent is errors.SettlementLedgerNoConsent
    assert issubclass(SettlementLedgerNoConsent, ContractReverted)
    assert [n for n, _ in SettlementLedgerNoConsent.spec.inputs] == ["conversionId", "subject"]  # type: ignore[union-attr]
    exc = decode_revert(
        bytes.fromhex(errors.selector_of("SettlementLedgerNoConsent")[2:])
        + encode(["uint64", "bytes32"], [9, b"\1" * 32])
    )
    assert isinstance(exc, SettlementLedgerNoConsent)
    assert (exc.conversion_id, exc.subject) == (9, b"\1" * 32)
    assert exc.args_by_name == {"conversionId": 9, "subject": b"\1" * 32}


def test_attribute_names_are_snake_case_and_never_shadow_a_revert_attribute() -> None:
    assert attribute_name("conversionId") == "conversion_id"
    assert attribute_name("maxExpiresAt") == "max_expires_at"
    assert attribute_name("receiptHash") == "receipt_hash"
    assert attribute_name("data") == "data_"
    assert attribute_name("from") == "from_"


def test_a_foreign_contract_error_decodes_by_name_and_ours_keep_their_class() -> None:
    abi = [
        {
            "type": "error",
            "name": "VaultLocked",
            "inputs": [{"name": "until", "type": "uint256"}, {"name": "owner", "type": "address"}],
        },
        {"type": "error", "name": "ECDSAInvalidSignature", "inputs": []},
    ]
    errors.register_abi(abi, "Vault")
    owner = "0x" + "cd" * 20
    data = keccak(text="VaultLocked(uint256,address)")[:4] + encode(["uint256", "address"], [5, owner])
    exc = decode_revert(data, context="Vault.withdraw")
    assert type(exc) is ForeignContractError
    assert exc.error_spec.name == "VaultLocked" and exc.error_spec.contracts == ("Vault",)
    assert exc.args_by_name == {"until": 5, "owner": to_checksum_address(owner)}
    assert str(exc).startswith("Vault.withdraw reverted with VaultLocked(until=5, owner=0x")
    ours = decode_revert(keccak(text="ECDSAInvalidSignature()")[:4])
    assert type(ours) is errors.ECDSAInvalidSignature


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
