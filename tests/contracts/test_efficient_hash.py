"""``EfficientHash.efficientKeccak256``, the contracts' one inline-assembly helper, equals the plain
``keccak256(abi.encode(a, b, c))`` it replaces and leaves memory as Solidity expects (memory-safe).

The helper is compiled into a small harness (tests/contracts/harness/) with the production compiler settings,
deployed on the embedded chain and compared, for arbitrary words, with the plain expression on chain and with
Python's ``keccak(abi.encode(...))``. The registry's own use is checked end to end: a granted record is found
with ``eth_getStorageAt`` at ``keccak256(abi.encode(subject, partner, purpose))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import solcx
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.chain import ChainClient, ContractHandle, compiler
from backend.chain.types import Purpose, checksum

from .conftest import ChainHelper, rand32

HARNESS = Path(__file__).parent / "harness" / "EfficientHashHarness.sol"
HELPER = compiler.CONTRACTS_DIR / "utils" / "EfficientHash.sol"

WORDS = st.binary(min_size=32, max_size=32)
UINT256 = st.integers(0, 2**256 - 1)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _compile_harness() -> dict[str, Any]:
    units = {
        str(HARNESS.relative_to(compiler.REPO_ROOT)): HARNESS.read_text(encoding="utf-8"),
        str(HELPER.relative_to(compiler.REPO_ROOT)): HELPER.read_text(encoding="utf-8"),
    }
    try:
        out = solcx.compile_standard(
            compiler.standard_input(units), solc_binary=compiler.SHIM, allow_empty=True
        )
    except solcx.exceptions.SolcError as exc:
        pytest.fail(f"the harness does not compile: {exc}")
    data = out["contracts"][str(HARNESS.relative_to(compiler.REPO_ROOT))]["EfficientHashHarness"]
    return {"abi": data["abi"], "bytecode": "0x" + data["evm"]["bytecode"]["object"]}


@pytest.fixture(scope="module")
def harness_artifact() -> dict[str, Any]:
    return _compile_harness()


@pytest.fixture
def harness(embedded_chain: ChainClient, harness_artifact: dict[str, Any]) -> ContractHandle:
    handle, _ = embedded_chain.deploy("EfficientHashHarness", artifact=harness_artifact)
    return handle


@SETTINGS
@given(a=WORDS, b=WORDS, c=WORDS)
def test_equals_keccak_of_abi_encode(harness: ContractHandle, a: bytes, b: bytes, c: bytes) -> None:
    efficient, plain = harness.call("both", a, b, c)
    assert efficient == plain == keccak(encode(["bytes32"] * 3, [a, b, c]))


@SETTINGS
@given(subject=WORDS, partner_word=UINT256, purpose_word=UINT256)
def test_record_slot_equals_abi_encode_of_the_cleaned_values(
    harness: ContractHandle, subject: bytes, partner_word: int, purpose_word: int
) -> None:
    efficient, plain = harness.call("recordSlot", subject, partner_word, purpose_word)
    partner = checksum("0x" + (partner_word % 2**160).to_bytes(20, "big").hex())
    expected = keccak(encode(["bytes32", "address", "uint8"], [subject, partner, purpose_word % 256]))
    assert efficient == plain == expected


@SETTINGS
@given(a=WORDS, b=WORDS, c=WORDS)
def test_leaves_the_free_memory_pointer_and_allocated_memory_alone(
    harness: ContractHandle, a: bytes, b: bytes, c: bytes
) -> None:
    pointer_moved, allocated_changed, next_allocation_intact, value = harness.call("memoryEffects", a, b, c)
    assert (pointer_moved, allocated_changed, next_allocation_intact) == (False, False, True)
    assert value == keccak(a + b + c)


def test_the_registry_keeps_a_record_at_keccak_of_abi_encode(chain: ChainHelper) -> None:
    purpose = Purpose.MARKETING_CONTACT
    subject = chain.grant(purpose=purpose)
    slot = keccak(encode(["bytes32", "address", "uint8"], [subject, chain.acc.partner, int(purpose)]))
    word = int.from_bytes(
        chain.client.w3.eth.get_storage_at(checksum(chain.consent.address), int.from_bytes(slot, "big")),
        "big",
    )
    state = chain.consent.consent_of(subject, chain.acc.partner, purpose)
    assert state.granted_at != 0
    assert word & (2**40 - 1) == state.granted_at
    assert (word >> 40) & (2**40 - 1) == state.expires_at
    assert word >> 168 == state.nonce == 1
    other = keccak(encode(["bytes32", "address", "uint8"], [rand32(), chain.acc.partner, int(purpose)]))
    assert chain.client.w3.eth.get_storage_at(
        checksum(chain.consent.address), int.from_bytes(other, "big")
    ) == bytes(32)
