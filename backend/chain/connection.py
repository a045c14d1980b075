"""Connections to the three chain targets and the one place where transactions are built, signed and sent.

- ``embedded``: an in-process eth-tester chain (py-evm), the default for tests and the demo. Its ten funded
  accounts are eth-tester's deterministic ones.
- ``devnet``: a local anvil node (``AnvilNode``), chain id 31337, the test mnemonic's accounts.
- ``rpc``: any JSON-RPC URL, with the key from the environment or an encrypted keystore.

``ChainClient.send`` signs locally with the sender's key, estimates gas first (so a revert surfaces as a named
exception before anything is sent), sends the raw transaction and waits for the receipt (and, on real
networks, for ``confirmations``). It keeps per-transaction overhead low: the chain id is read once, nonces
are counted locally per sender under a lock, fees are cached briefly on local chains, and calldata is
encoded once with eth-abi. Reverts from ``eth_call``, ``eth_estimateGas`` or a mined failed transaction all
go through ``errors.decode_revert``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_keys.datatypes import PrivateKey as _EthPrivateKey
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)
from web3.providers.eth_tester import EthereumTesterProvider

from . import errors
from .compiler import load_artifact
from .errors import (
    ChainError,
    ChainUnreachable,
    ContractReverted,
    InsufficientFunds,
    MissingKey,
    TransactionFailed,
    TransactionTimeout,
    WrongChain,
    abi_type,
)
from .types import Event, TxResult, Wallet, checksum

try:  # the public API re-derives the public key per signature; this helper takes a key object
    from eth_account._utils.signing import sign_transaction_dict as _sign_transaction_dict
except ImportError:  # pragma: no cover
    _sign_transaction_dict = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .devnet import AnvilNode
    from .settings import ChainSettings

GWEI = 10**9
CONTRACT_NAMES = ("ConsentRegistry", "PartnershipAgreements", "SettlementLedger")


class ChainTarget(StrEnum):
    EMBEDDED = "embedded"
    DEVNET = "devnet"
    RPC = "rpc"


# ------------------------------------------------------------------------------------------- ABI helpers


def _normalize(value: Any, param: Mapping[str, Any]) -> Any:
    """ABI-decoded value → Python: tuples to dicts by component name, addresses checksummed."""
    t = str(param["type"])
    if t.endswith("]"):
        inner = dict(param)
        inner["type"] = t[: t.rindex("[")]
        return [_normalize(v, inner) for v in value]
    if t == "tuple":
        return {c["name"]: _normalize(v, c) for v, c in zip(value, param["components"], strict=True)}
    if t == "address":
        return str(to_checksum_address(value))
    return value


class AbiFunction:
    """One ABI function: selector, input/output types, and fast encode/decode with eth-abi."""

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.entry = entry
        self.name = str(entry["name"])
        self.input_types = [abi_type(p) for p in entry["inputs"]]
        self.output_types = [abi_type(p) for p in entry.get("outputs", [])]
        self.signature = f"{self.name}({','.join(self.input_types)})"
        self.selector = bytes(keccak(text=self.signature))[:4]
        self.mutability = str(entry.get("stateMutability", "nonpayable"))

    def encode(self, args: Sequence[Any]) -> bytes:
        if len(args) != len(self.input_types):
            raise TypeError(f"{self.signature} takes {len(self.input_types)} arguments, got {len(args)}")
        return self.selector + abi_encode(self.input_types, list(args))

    def decode(self, data: bytes) -> Any:
        """Outputs as Python values: one output unwrapped, several as a tuple; structs stay tuples here
        (the typed clients build dataclasses from them)."""
        values = abi_decode(self.output_types, data)
        outs = self.entry.get("outputs", [])
        fixed = tuple(_fix_addresses(v, o) for v, o in zip(values, outs, strict=True))
        return fixed[0] if len(fixed) == 1 else fixed


def _fix_addresses(value: Any, param: Mapping[str, Any]) -> Any:
    t = str(param["type"])
    if t.endswith("]"):
        inner = dict(param)
        inner["type"] = t[: t.rindex("[")]
        return [_fix_addresses(v, inner) for v in value]
    if t == "tuple":
        return tuple(_fix_addresses(v, c) for v, c in zip(value, param["components"], strict=True))
    if t == "address":
        return str(to_checksum_address(value))
    return value


class EventDecoder:
    """Decodes logs of every known contract by topic0 (the events of all three ABIs)."""

    def __init__(self) -> None:
        self._by_topic: dict[bytes, Mapping[str, Any]] = {}

    def add_abi(self, abi: Sequence[Mapping[str, Any]]) -> None:
        for entry in abi:
            if entry.get("type") != "event" or entry.get("anonymous"):
                continue
            sig = f"{entry['name']}({','.join(abi_type(p) for p in entry['inputs'])})"
            self._by_topic[bytes(keccak(text=sig))] = entry

    def decode(self, log: Mapping[str, Any]) -> Event | None:
        topics = [bytes(t) for t in log.get("topics", [])]
        if not topics:
            return None
        entry = self._by_topic.get(topics[0])
        if entry is None:
            return None
        inputs = entry["inputs"]
        indexed = [p for p in inputs if p.get("indexed")]
        plain = [p for p in inputs if not p.get("indexed")]
        args: dict[str, Any] = {}
        for p, topic in zip(indexed, topics[1:], strict=False):
            t = abi_type(p)
            if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                args[p["name"]] = topic  # dynamic indexed values are stored as their hash
            else:
                args[p["name"]] = _normalize(abi_decode([t], topic)[0], p)
        data = bytes(log.get("data", b""))
        if plain:
            values = abi_decode([abi_type(p) for p in plain], data)
            for p, v in zip(plain, values, strict=True):
                args[p["name"]] = _normalize(v, p)
        ordered = {p["name"]: args[p["name"]] for p in inputs if p["name"] in args}
        block = log.get("blockNumber")
        tx_hash = log.get("transactionHash")
        return Event(
            str(entry["name"]),
            ordered,
            checksum(log["address"]),
            int(log.get("logIndex", 0)),
            None if block is None else int(block),
            None if tx_hash is None else "0x" + bytes(tx_hash).hex(),
        )


class ContractHandle:
    """A deployed contract: its address, ABI functions, and a ``ChainClient`` to call and send through."""

    def __init__(
        self, client: ChainClient, name: str, address: str, abi: Sequence[Mapping[str, Any]]
    ) -> None:
        self.client = client
        self.name = name
        self.address = checksum(address)
        self.abi = list(abi)
        self.functions: dict[str, AbiFunction] = {}
        for entry in self.abi:
            if entry.get("type") == "function":
                fn = AbiFunction(entry)
                if fn.name in self.functions:  # overloads: keep them reachable by signature
                    self.functions[fn.signature] = fn
                else:
                    self.functions[fn.name] = fn

    def fn(self, name: str, *args: Any) -> FunctionCall:
        try:
            abi_fn = self.functions[name]
        except KeyError:
            raise AttributeError(f"{self.name} has no function {name!r}") from None
        return FunctionCall(self, abi_fn, tuple(args))

    def call(self, name: str, *args: Any, sender: str | None = None, block: int | str = "latest") -> Any:
        return self.client.call(self.fn(name, *args), sender=sender, block=block)

    def send(
        self, name: str, *args: Any, sender: str | None = None, value: int = 0, gas: int | None = None
    ) -> TxResult:
        return self.client.send(self.fn(name, *args), sender=sender, value=value, gas=gas)

    def __repr__(self) -> str:
        return f"<{self.name} at {self.address}>"


class FunctionCall:
    """A contract function bound to its arguments (what ``ChainClient.send`` and ``.call`` take)."""

    def __init__(self, contract: ContractHandle, fn: AbiFunction, args: tuple[Any, ...]) -> None:
        self.contract = contract
        self.fn = fn
        self.args = args
        self._data: bytes | None = None

    @property
    def to(self) -> str:
        return self.contract.address

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.fn.encode(self.args)
        return self._data

    @property
    def label(self) -> str:
        return f"{self.contract.name}.{self.fn.name}"

    def decode(self, output: bytes) -> Any:
        return self.fn.decode(output)


# ---------------------------------------------------------------------------------- embedded eth-tester


def _embedded_web3() -> tuple[Web3, Any]:
    """An eth-tester chain whose reverts keep their raw data (as a node's would) and whose gas estimate is
    one execution instead of py-evm's ~13-step binary search."""
    from eth.exceptions import Revert as EVMRevert
    from eth.vm.spoof import SpoofTransaction
    from eth_tester import EthereumTester, PyEVMBackend
    from eth_tester.exceptions import TransactionFailed as TesterTransactionFailed

    def one_shot_estimate(state: Any, transaction: Any) -> int:
        snapshot = state.snapshot()
        try:
            computation = state.apply_transaction(
                SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
            )
        finally:
            state.revert(snapshot)
        if computation.is_error:
            raise computation.error
        used = int(transaction.intrinsic_gas) + int(computation.get_gas_used())
        # Headroom for the 63/64 rule on nested calls and the SSTORE stipend check; unused gas is refunded.
        return int(min(state.gas_limit, used + used // 32 + 2300))

    class Backend(PyEVMBackend):
        def estimate_gas(self, transaction: Any, block_number: Any = "latest") -> Any:
            self.chain.gas_estimator = one_shot_estimate
            return super().estimate_gas(transaction, block_number)

        def call(self, transaction: Any, block_number: Any = "latest") -> Any:
            from eth_tester.backends.pyevm import main as pyevm_main

            tx = dict(transaction)
            tx.setdefault("gas", self._max_available_gas())
            unsigned = self._get_normalized_and_unsigned_evm_transaction(tx, block_number)
            spoofed = SpoofTransaction(unsigned, from_=transaction["from"])
            computation = pyevm_main._execute_and_revert_transaction(self.chain, spoofed, block_number)
            if computation.is_error:
                err = computation.error
                if isinstance(err, EVMRevert):
                    raise TesterTransactionFailed(err)
                raise TesterTransactionFailed(str(err))
            return computation.output

    class Provider(EthereumTesterProvider):
        def make_request(self, method: Any, params: Any) -> Any:
            try:
                return super().make_request(method, params)
            except TesterTransactionFailed as exc:
                raw = _revert_bytes(exc)
                error: dict[str, Any] = {"code": 3, "message": "execution reverted"}
                if raw is not None:
                    error["data"] = "0x" + raw.hex()
                else:
                    error["message"] = str(exc)
                return {"jsonrpc": "2.0", "id": 0, "error": error}

    tester = EthereumTester(Backend())
    w3 = Web3(Provider(tester), middleware=[])
    return w3, tester


def _revert_bytes(exc: BaseException) -> bytes | None:
    """The raw revert data carried somewhere in eth-tester's exception chain, if any."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (bytes, bytearray)):
            return bytes(item)
        if isinstance(item, BaseException):
            todo.extend(item.args)
            if item.__cause__ is not None:
                todo.append(item.__cause__)
            if item.__context__ is not None:
                todo.append(item.__context__)
    return None


# --------------------------------------------------------------------------------------------- client


def _is_funds_error(exc: BaseException) -> bool:
    """Nodes word it differently: geth/anvil "insufficient funds", py-evm "cannot afford txn gas"."""
    text = str(exc).lower()
    return "insufficient funds" in text or "cannot afford" in text or "not enough balance" in text


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(
        exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)
    )


@dataclass(frozen=True)
class BlockHead:
    """The chain head as one request saw it: state at ``hash`` never changes, so an answer read at this
    block stays the answer for as long as the head is this block."""

    number: int
    hash: str
    timestamp: int


def _as_int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value)


def _as_hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


class ChainClient:
    """A connected chain: web3 plus the accounts this process can sign for, and test-time helpers."""

    def __init__(
        self,
        w3: Web3,
        target: ChainTarget,
        *,
        signers: Sequence[Wallet] = (),
        url: str | None = None,
        expected_chain_id: int | None = None,
        confirmations: int = 0,
        node: AnvilNode | None = None,
        tester: Any = None,
        url_option: str = "KNOWLEDGER_RPC_URL",
        receipt_timeout: float | None = None,
    ) -> None:
        self.w3 = w3
        self.target = ChainTarget(target)
        self.url = url
        self.node = node
        self.confirmations = confirmations
        self._tester = tester
        self._url_option = url_option
        self._signers: dict[str, Wallet] = {}
        self.accounts: list[Wallet] = []
        for s in signers:
            self.add_signer(s)
        self._nonces: dict[str, int] = {}
        self._nonce_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._fee_cache: tuple[float, dict[str, int]] | None = None
        self._fee_ttl = 0.0 if self.target is ChainTarget.RPC else 5.0
        self._receipt_timeout = receipt_timeout or (600.0 if self.target is ChainTarget.RPC else 120.0)
        self._eth_keys: dict[str, Any] = {}
        self._events = EventDecoder()
        self._abis: dict[str, list[dict[str, Any]]] = {}
        with self._rpc():
            self.chain_id: int = int(self.w3.eth.chain_id)
        if expected_chain_id is not None and self.chain_id != int(expected_chain_id):
            raise WrongChain(self.chain_id, int(expected_chain_id), option=url_option)

    # ------------------------------------------------------------------ accounts
    def add_signer(self, key: Wallet | bytes | str) -> Wallet:
        wallet = key if isinstance(key, Wallet) else Wallet(key)
        if wallet.address not in self._signers:
            self._signers[wallet.address] = wallet
            self.accounts.append(wallet)
        return wallet

    @property
    def default_sender(self) -> Wallet:
        if not self.accounts:
            raise MissingKey()
        return self.accounts[0]

    def signer_for(self, sender: str | None) -> Wallet:
        if sender is None:
            return self.default_sender
        if isinstance(sender, Wallet):
            return self._signers.get(sender.address) or self.add_signer(sender)
        try:
            return self._signers[checksum(sender)]
        except KeyError:
            raise MissingKey(address=str(sender)) from None

    # ------------------------------------------------------------------ contracts
    def abi_of(self, name: str) -> list[dict[str, Any]]:
        if name not in self._abis:
            self._abis[name] = list(load_artifact(name)["abi"])
            self._events.add_abi(self._abis[name])
        return self._abis[name]

    def contract(
        self, name: str, address: str, abi: Sequence[Mapping[str, Any]] | None = None
    ) -> ContractHandle:
        """A handle on a deployed contract (ABI from ``contracts/artifacts/<name>.json`` unless given)."""
        if abi is None:
            abi = self.abi_of(name)
        else:
            self._events.add_abi(abi)
            errors.register_abi(abi, name)
        return ContractHandle(self, name, address, abi)

    def deploy(
        self, name: str, *args: Any, sender: str | None = None, artifact: Mapping[str, Any] | None = None
    ) -> tuple[ContractHandle, TxResult]:
        """Deploy an artifact's bytecode with constructor ``args``; returns the handle and the receipt."""
        art = artifact if artifact is not None else load_artifact(name)
        abi = list(art["abi"])
        self._abis.setdefault(name, abi)
        self._events.add_abi(abi)
        data = self.deploy_data(art, args)
        result = self.transact(None, data, sender=sender, label=f"{name}.constructor")
        return self.contract(name, result.value, abi), result

    @staticmethod
    def deploy_data(artifact: Mapping[str, Any], args: Sequence[Any]) -> bytes:
        ctor = next((e for e in artifact["abi"] if e.get("type") == "constructor"), None)
        types = [abi_type(p) for p in ctor["inputs"]] if ctor else []
        bytecode = bytes.fromhex(str(artifact["bytecode"]).removeprefix("0x"))
        return bytecode + (abi_encode(types, list(args)) if types else b"")

    # ------------------------------------------------------------------ reads
    @contextlib.contextmanager
    def _rpc(self) -> Iterator[None]:
        """Map transport failures to ``ChainUnreachable`` (naming the URL and the option to check)."""
        try:
            yield
        except ChainError:
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                detail = "timed out" if isinstance(exc, requests.exceptions.Timeout) else ""
                raise ChainUnreachable(self.url or str(self.target), detail, option=self._url_option) from exc
            raise

    def _reverted(self, exc: BaseException, label: str | None) -> ContractReverted:
        data = getattr(exc, "data", None)
        if isinstance(data, Mapping):
            data = data.get("data") or data.get("result")
        message = getattr(exc, "message", None) or str(exc)
        return errors.decode_revert(
            data if isinstance(data, (str, bytes)) else None, context=label, message=message
        )

    def call(
        self, fn_call: FunctionCall | Any, *, sender: str | None = None, block: int | str = "latest"
    ) -> Any:
        """``eth_call`` a view (or simulate a write); reverts raise the named ``ContractReverted`` "
        "subclass."""
        to, data, label, decode = _unpack_call(fn_call)
        tx: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender is not None or self.accounts:
            tx["from"] = checksum(sender) if sender is not None else self.accounts[0].address
        with self._rpc():
            try:
                out = self.w3.eth.call(tx, block)  # type: ignore[arg-type]
            except ContractLogicError as exc:
                raise self._reverted(exc, label) from None
        return decode(bytes(out)) if decode is not None else bytes(out)

    @property
    def block_number(self) -> int:
        with self._rpc():
            return int(self.w3.eth.block_number)

    def head(self) -> BlockHead:
        """The latest block's number, hash and timestamp in one request (a consent check's anchor). The
        in-process chain is asked directly for its canonical head (what ``eth_getBlockByNumber("latest")``
        returns, without building the whole block)."""
        chain = getattr(getattr(self._tester, "backend", None), "chain", None)
        if chain is not None:
            header = chain.get_canonical_head()
            return BlockHead(int(header.block_number), "0x" + bytes(header.hash).hex(), int(header.timestamp))
        block = self._raw("eth_getBlockByNumber", ["latest", False])
        if not block:
            raise ChainError("the node returned no latest block")
        return BlockHead(_as_int(block["number"]), _as_hex(block["hash"]), _as_int(block["timestamp"]))

    def now(self) -> int:
        """The latest block's timestamp (the chain's clock, which tests move with ``increase_time``)."""
        with self._rpc():
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def balance(self, address: str) -> int:
        with self._rpc():
            return int(self.w3.eth.get_balance(checksum(address)))  # type: ignore[arg-type]

    def code_at(self, address: str) -> bytes:
        with self._rpc():
            return bytes(self.w3.eth.get_code(checksum(address)))  # type: ignore[arg-type]

    def get_logs(
        self,
        address: str,
        topics: Sequence[bytes | None],
        from_block: int = 0,
        to_block: int | str = "latest",
    ) -> list[Event]:
        """Decoded logs of ``address`` matching ``topics`` (None matches anything)."""
        flt: dict[str, Any] = {
            "address": checksum(address),
            "fromBlock": int(from_block),
            "toBlock": to_block,
            "topics": [None if t is None else "0x" + bytes(t).hex() for t in topics],
        }
        with self._rpc():
            logs = self.w3.eth.get_logs(flt)  # type: ignore[arg-type]
        return [e for e in (self._events.decode(dict(log)) for log in logs) if e is not None]

    def _raw(self, method: str, params: Sequence[Any] = ()) -> Any:
        with self._rpc():
            resp = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in resp:
            raise ChainError(f"{method} failed: {resp['error']}")
        return resp.get("result")

    # ------------------------------------------------------------------ time and snapshots (tests)
    def _require_local(self, what: str) -> None:
        if self.target is ChainTarget.RPC:
            raise ChainError(f"{what} needs the embedded chain or a devnet, not a real network")

    def increase_time(self, seconds: int) -> int:
        """Move the chain's clock forward by ``seconds`` and mine a block; returns the new ``now()``."""
        self._require_local("increase_time")
        if seconds < 0:
            raise ValueError("time only moves forward")
        if self._tester is not None:
            # eth-tester's time_travel(t) mines a block stamped t - 1 (and does nothing if t is the pending
            # block's time already): ask for one second more, and mine if nothing was mined.
            before = self.block_number
            pending = int(self._tester.get_block_by_number("pending")["timestamp"])
            target = max(self.now() + int(seconds) + 1, pending)
            self._tester.time_travel(target)
            if self.block_number == before:
                self._tester.mine_blocks(1)
        else:
            self._raw("evm_increaseTime", [int(seconds)])
            self._raw("evm_mine")
        return self.now()

    def mine(self, blocks: int = 1) -> None:
        self._require_local("mine")
        if self._tester is not None:
            self._tester.mine_blocks(blocks)
        else:
            for _ in range(blocks):
                self._raw("evm_mine")

    def snapshot(self) -> Any:
        """Save the chain state; ``revert(id)`` returns to it (anvil ids are single-use)."""
        self._require_local("snapshot")
        if self._tester is not None:
            return self._tester.take_snapshot()
        return self._raw("evm_snapshot")

    def revert(self, snapshot_id: Any) -> None:
        self._require_local("revert")
        if self._tester is not None:
            self._tester.revert_to_snapshot(snapshot_id)
        elif not self._raw("evm_revert", [snapshot_id]):
            raise ChainError(
                f"evm_revert({snapshot_id}) failed: anvil snapshots can be reverted to only once"
            )
        self._nonces.clear()
        self._fee_cache = None

    # ------------------------------------------------------------------ fees
    def fee_fields(self) -> dict[str, int]:
        """EIP-1559 fee fields (legacy ``gasPrice`` where the chain has no base fee); cached briefly on local
        chains."""
        cached = self._fee_cache
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._fee_ttl:
            return cached[1]
        with self._rpc():
            block = self.w3.eth.get_block("latest")
            base = block.get("baseFeePerGas")
            if base is None:
                fields = {"gasPrice": int(self.w3.eth.gas_price)}
            else:
                if self.target is ChainTarget.RPC:
                    try:
                        tip = int(self.w3.eth.max_priority_fee)
                    except (Web3RPCError, ValueError):
                        tip = GWEI
                else:
                    tip = GWEI
                fields = {"maxFeePerGas": 2 * int(base) + tip, "maxPriorityFeePerGas": tip}
        self._fee_cache = (now, fields)
        return fields

    @staticmethod
    def max_fee(fields: Mapping[str, int]) -> int:
        return int(fields.get("maxFeePerGas", fields.get("gasPrice", 0)))

    # ------------------------------------------------------------------ sending
    def _lock_for(self, address: str) -> threading.Lock:
        with self._locks_lock:
            lock = self._nonce_locks.get(address)
            if lock is None:
                lock = self._nonce_locks[address] = threading.Lock()
            return lock

    def _sign(self, wallet: Wallet, tx: dict[str, Any]) -> bytes:
        """Sign with a cached key object: ``Account.sign_transaction`` re-derives the public key (a full
        elliptic-curve multiplication) on every call, a third of a devnet transaction's client time."""
        key = self._eth_keys.get(wallet.address)
        if key is None:
            key = self._eth_keys[wallet.address] = _EthPrivateKey(wallet.private_key)
        if _sign_transaction_dict is not None:
            return bytes(_sign_transaction_dict(key, tx)[3])
        return bytes(Account.sign_transaction(tx, wallet.private_key).raw_transaction)  # pragma: no cover

    def estimate_gas(
        self, to: str | None, data: bytes, sender: str, value: int = 0, label: str | None = None
    ) -> int:
        tx: dict[str, Any] = {"from": sender, "data": "0x" + data.hex(), "value": value}
        if to is not None:
            tx["to"] = to
        with self._rpc():
            try:
                return int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
            except ContractLogicError as exc:
                raise self._reverted(exc, label) from None
            except ChainError:
                raise
            except Exception as exc:
                if _is_funds_error(exc):
                    raise InsufficientFunds(
                        sender, self.balance(sender), None, label or "this transaction"
                    ) from None
                raise

    def send(
        self,
        fn_call: FunctionCall | Any,
        sender: str | None = None,
        *,
        value: int = 0,
        gas: int | None = None,
    ) -> TxResult:
        """Sign and send a contract call from ``sender`` (default: the first account); wait for it to be
        mined. Reverts (during estimation or on chain) raise the named ``ContractReverted`` subclass."""
        to, data, label, _ = _unpack_call(fn_call)
        return self.transact(to, data, sender=sender, value=value, gas=gas, label=label)

    def transact(
        self,
        to: str | None,
        data: bytes,
        *,
        sender: str | None = None,
        value: int = 0,
        gas: int | None = None,
        label: str | None = None,
    ) -> TxResult:
        wallet = self.signer_for(sender)
        address = wallet.address
        if gas is None:
            estimate = self.estimate_gas(to, data, address, value, label)
            gas = estimate + estimate // 10 + 5_000
        fees = self.fee_fields()
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "gas": gas,
            "value": value,
            "data": data,
            **fees,
        }
        if to is not None:
            tx["to"] = to
        if "maxFeePerGas" in fees:
            tx["type"] = 2
        with self._lock_for(address):
            for attempt in (1, 2):
                nonce = self._nonces.get(address)
                if nonce is None:
                    with self._rpc():
                        nonce = int(self.w3.eth.get_transaction_count(address, "pending"))  # type: ignore[arg-type]
                tx["nonce"] = nonce
                raw = self._sign(wallet, tx)
                try:
                    with self._rpc():
                        tx_hash = bytes(self.w3.eth.send_raw_transaction(raw))
                    break
                except Exception as exc:
                    self._nonces.pop(address, None)
                    self._fee_cache = None
                    # Another process sent from this key, or the base fee rose past our cached fee: re-read
                    # the nonce and the fees once and try again.
                    text = str(exc).lower()
                    if attempt == 1 and ("nonce" in text or "fee" in text) and not _is_funds_error(exc):
                        fees = self.fee_fields()
                        tx.update(fees)
                        continue
                    raise self._send_error(exc, address, gas, fees, value, label) from None
            assert nonce is not None
            self._nonces[address] = nonce + 1
        receipt = self.wait_for_receipt(tx_hash)
        if int(receipt["status"]) != 1:
            self._raise_failed(tx, address, receipt, label)
        if self.confirmations > 1 and self.target is ChainTarget.RPC:
            self._wait_confirmations(int(receipt["blockNumber"]))
        events = tuple(
            e for e in (self._events.decode(log) for log in receipt.get("logs", [])) if e is not None
        )
        created = receipt.get("contractAddress")
        return TxResult(
            tx_hash="0x" + tx_hash.hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=events,
            value=checksum(created) if created else None,
        )

    def _send_error(
        self, exc: Exception, address: str, gas: int, fees: Mapping[str, int], value: int, label: str | None
    ) -> Exception:
        if isinstance(exc, ChainError):
            return exc
        if _is_funds_error(exc):
            with contextlib.suppress(ChainError):
                return InsufficientFunds(
                    address,
                    self.balance(address),
                    gas * self.max_fee(fees) + value,
                    label or "this transaction",
                )
            return InsufficientFunds(address, None, None, label or "this transaction")
        return TransactionFailed(f"{label or 'transaction'} was refused by the node: {exc}")

    def wait_for_receipt(self, tx_hash: bytes) -> Mapping[str, Any]:
        delay = 0.001 if self.target is not ChainTarget.RPC else 0.1
        deadline = time.monotonic() + self._receipt_timeout
        while True:
            with self._rpc():
                try:
                    return dict(self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
                except TransactionNotFound:
                    pass
            if time.monotonic() > deadline:
                raise TransactionTimeout("0x" + tx_hash.hex(), self._receipt_timeout)
            time.sleep(delay)
            delay = min(delay * 2, 0.05 if self.target is not ChainTarget.RPC else 2.0)

    def _wait_confirmations(self, block: int) -> None:
        deadline = time.monotonic() + self._receipt_timeout
        while self.block_number - block + 1 < self.confirmations:
            if time.monotonic() > deadline:
                raise ChainError(f"block {block} did not reach {self.confirmations} confirmations in time")
            time.sleep(1.0)

    def _raise_failed(
        self, tx: Mapping[str, Any], sender: str, receipt: Mapping[str, Any], label: str | None
    ) -> None:
        """A mined transaction failed: replay it with ``eth_call`` on the parent block for the revert data."""
        call: dict[str, Any] = {
            "from": sender,
            "data": "0x" + bytes(tx["data"]).hex(),
            "value": tx.get("value", 0),
        }
        if tx.get("to"):
            call["to"] = tx["to"]
        block = int(receipt["blockNumber"]) - 1
        tx_hash = receipt.get("transactionHash")
        with self._rpc():
            try:
                self.w3.eth.call(call, max(block, 0))  # type: ignore[arg-type]
            except ContractLogicError as exc:
                raise self._reverted(exc, label) from None
        used, limit = int(receipt["gasUsed"]), int(tx["gas"])
        why = "it ran out of gas" if used >= limit else "the replay did not reproduce the failure"
        hash_text = "0x" + bytes(tx_hash).hex() if tx_hash is not None else "?"
        raise TransactionFailed(
            f"{label or 'transaction'} {hash_text} failed on chain ({why}; gas used {used} of {limit}): "
            "send it again with more gas, or check the state it depends on"
        )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the HTTP session (keep-alive connections) of a devnet or RPC client."""
        session = getattr(self.w3, "_knowledger_session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.url or "in-process"
        return f"ChainClient({self.target.value}, {where}, chain {self.chain_id})"


def _unpack_call(fn_call: Any) -> tuple[str, bytes, str | None, Any]:
    """(to, calldata, label, decoder) from our ``FunctionCall`` or a web3 ``ContractFunction``."""
    if isinstance(fn_call, FunctionCall):
        return fn_call.to, fn_call.data, fn_call.label, fn_call.decode
    encode = getattr(fn_call, "_encode_transaction_data", None)
    if encode is None:
        raise TypeError(
            f"expected a FunctionCall (client.fn(...)) or a web3 contract function, got {fn_call!r}"
        )
    data = bytes.fromhex(str(encode()).removeprefix("0x"))
    label = getattr(fn_call, "fn_name", None)
    return checksum(fn_call.address), data, label, None


# ------------------------------------------------------------------------------------------ connecting


def connect_embedded() -> ChainClient:
    """A fresh in-process eth-tester chain with ten funded, deterministic accounts."""
    w3, tester = _embedded_web3()
    keys = [Wallet(bytes(k.to_bytes())) for k in tester.backend.account_keys]
    return ChainClient(w3, ChainTarget.EMBEDDED, signers=keys, tester=tester)


def _http_web3(url: str, *, trust_env: bool, timeout: float, poa: bool) -> Web3:
    session = requests.Session()
    session.trust_env = trust_env  # a loopback devnet needs no proxy lookup per request
    provider = Web3.HTTPProvider(
        url, request_kwargs={"timeout": timeout}, session=session, exception_retry_configuration=None
    )
    middleware: list[Any] = []
    if poa:
        from web3.middleware import ExtraDataToPOAMiddleware

        middleware.append(ExtraDataToPOAMiddleware)
    w3 = Web3(provider, middleware=middleware)
    w3._knowledger_session = session  # type: ignore[attr-defined]  # closed by ChainClient.close
    return w3


def _check_url(url: str, option: str) -> str:
    if not url or not url.startswith(("http://", "https://")):
        raise ChainUnreachable(url or "(empty URL)", "expected an http:// or https:// URL", option=option)
    return url


def connect_devnet(
    url_or_node: str | AnvilNode = "http://127.0.0.1:8545",
    *,
    expected_chain_id: int | None = None,
    url_option: str = "--rpc-url",
    timeout: float = 30.0,
) -> ChainClient:
    """A local anvil devnet (a running URL or an ``AnvilNode``), signing with the test mnemonic's accounts."""
    from .devnet import ANVIL_CHAIN_ID, AnvilNode, dev_wallets

    node = url_or_node if isinstance(url_or_node, AnvilNode) else None
    url = node.url if node is not None else _check_url(str(url_or_node), url_option)
    w3 = _http_web3(url, trust_env=False, timeout=timeout, poa=False)
    wallets = node.wallets() if node is not None else dev_wallets()
    return ChainClient(
        w3,
        ChainTarget.DEVNET,
        signers=wallets,
        url=url,
        expected_chain_id=expected_chain_id if expected_chain_id is not None else ANVIL_CHAIN_ID,
        node=node,
        url_option=url_option,
    )


def load_key(
    private_key: str | bytes | None = None,
    keystore: Path | str | None = None,
    keystore_password: str | None = None,
) -> Wallet:
    """The signing key: a raw private key, or an encrypted keystore (``Account.decrypt``)."""
    if private_key:
        try:
            return Wallet(private_key)
        except Exception:
            raise MissingKey("KNOWLEDGER_PRIVATE_KEY is not a valid private key (64 hex digits)") from None
    if keystore:
        path = Path(keystore)
        if not path.is_file():
            raise MissingKey(f"keystore {path} not found: check --keystore", option="--keystore")
        if keystore_password is None:
            raise MissingKey(
                f"keystore {path} needs its password in KNOWLEDGER_KEYSTORE_PASSWORD",
                option="KNOWLEDGER_KEYSTORE_PASSWORD",
            )
        try:
            key = Account.decrypt(path.read_text(encoding="utf-8"), keystore_password)
        except ValueError as exc:
            raise MissingKey(
                f"cannot decrypt keystore {path}: {exc} (is KNOWLEDGER_KEYSTORE_PASSWORD right?)",
                option="KNOWLEDGER_KEYSTORE_PASSWORD",
            ) from None
        return Wallet(bytes(key))
    raise MissingKey()


def connect_rpc(
    url: str,
    expected_chain_id: int | None = None,
    private_key: str | bytes | None = None,
    *,
    keystore: Path | str | None = None,
    keystore_password: str | None = None,
    confirmations: int = 1,
    url_option: str = "KNOWLEDGER_RPC_URL",
    require_key: bool = False,
    timeout: float = 60.0,
) -> ChainClient:
    """Any JSON-RPC node. ``expected_chain_id`` guards against pointing at the wrong network."""
    url = _check_url(url, url_option)
    signers: list[Wallet] = []
    if private_key or keystore or require_key:
        signers.append(load_key(private_key, keystore, keystore_password))
    w3 = _http_web3(url, trust_env=True, timeout=timeout, poa=True)
    return ChainClient(
        w3,
        ChainTarget.RPC,
        signers=signers,
        url=url,
        expected_chain_id=expected_chain_id,
        confirmations=confirmations,
        url_option=url_option,
    )


def connect(settings: ChainSettings | None = None) -> ChainClient:
    """Connect as configured by ``ChainSettings`` (``KNOWLEDGER_*`` environment variables)."""
    from .settings import ChainSettings

    s = settings or ChainSettings()
    if s.chain_target is ChainTarget.EMBEDDED:
        return connect_embedded()
    if s.chain_target is ChainTarget.DEVNET:
        return connect_devnet(
            s.rpc_url, expected_chain_id=s.chain_id, url_option="KNOWLEDGER_RPC_URL", timeout=s.rpc_timeout_s
        )
    key = s.private_key.get_secret_value() if s.private_key is not None else None
    password = s.keystore_password.get_secret_value() if s.keystore_password is not None else None
    return connect_rpc(
        s.rpc_url,
        s.chain_id,
        key,
        keystore=s.keystore_path,
        keystore_password=password,
        confirmations=s.confirmations,
        timeout=s.rpc_timeout_s,
    )
