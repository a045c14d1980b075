"""``ChainClient``: a connected chain and the one place where transactions are built, signed and sent.

``ChainClient.send`` signs locally with the sender's key, estimates gas first (so a revert surfaces as a named
exception before anything is sent), sends the raw transaction and waits for the receipt (and, on real
networks, for ``confirmations``). It keeps per-transaction overhead low: the chain id is read once, nonces
are counted locally per sender under a lock (re-read once when the node refuses one), fees are cached
briefly on local chains, and calldata is encoded once with eth-abi. Reverts from ``eth_call``,
``eth_estimateGas`` or a mined failed transaction all go through ``errors.decode_revert``.

Clients are made by ``connect.py`` (``connect_embedded``, ``connect_devnet``, ``connect_rpc``, ``connect``).
The test-time controls (``increase_time``, ``mine``, ``snapshot``, ``revert``) are delegated to
``embedded.EmbeddedChain`` or ``devnet.AnvilControls``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import requests
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_keys.datatypes import PrivateKey
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from backend.core.shared_read import SharedRead

from . import errors
from .abi import AbiFunction, ContractHandle, EventDecoder, FunctionCall, abi_type
from .artifacts import load_artifact
from .constants import ChainTarget
from .devnet import AnvilControls
from .exceptions import (
    ChainError,
    ChainUnreachable,
    ContractReverted,
    InsufficientFunds,
    MissingKey,
    TransactionFailed,
    TransactionTimeout,
    WrongChain,
)
from .results import BlockHead, Event, TxResult
from .rpc import as_hex, block_head, is_connection_error, is_funds_error, is_missing_state
from .types import Wallet, checksum

if TYPE_CHECKING:
    from .devnet import AnvilNode
    from .embedded import EmbeddedChain

GWEI = 10**9
#: Tries to send one transaction when the node says its nonce or fee is stale: each try re-reads both (a key
#: that several processes send from loses a race now and then; each loss costs one more read).
SEND_ATTEMPTS = 5
#: What a node's refusal says when the nonce or the fee it was given is stale.
_NONCE_OR_FEE = ("nonce", "fee", "underpriced")


class LocalControls(Protocol):
    """Test-time controls of a local chain (``EmbeddedChain``, ``AnvilControls``)."""

    def increase_time(self, seconds: int) -> None: ...

    def mine(self, blocks: int) -> None: ...

    def snapshot(self) -> Any: ...

    def revert(self, snapshot_id: Any) -> None: ...


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
        embedded: EmbeddedChain | None = None,
        url_option: str = "KNOWLEDGER_RPC_URL",
        receipt_timeout: float | None = None,
    ) -> None:
        self.w3 = w3
        self.target = ChainTarget(target)
        self.url = url
        self.node = node
        self.confirmations = confirmations
        self._embedded = embedded
        self._local: LocalControls | None = embedded
        if embedded is None and self.target is not ChainTarget.RPC:
            self._local = AnvilControls(self._raw)
        self.url_option = url_option
        #: Concurrent callers share one head request, each getting one sent after it asked.
        self.heads = SharedRead(self._read_head)
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
        self._eth_keys: dict[str, PrivateKey] = {}
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
        """A handle on a deployed contract (ABI from ``contracts/artifacts/<name>.json`` unless given; a
        given ABI's events are decoded from then on, and its custom errors: ``errors.register_abi``)."""
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
            if is_connection_error(exc):
                detail = "timed out" if isinstance(exc, requests.exceptions.Timeout) else ""
                raise ChainUnreachable(self.url or str(self.target), detail, option=self.url_option) from exc
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
        """``eth_call`` a view (or simulate a write); reverts raise the named ``ContractReverted``
        subclass."""
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

    def call_many(self, calls: Sequence[tuple[FunctionCall, int | str]], *, chunk: int = 200) -> list[Any]:
        """``eth_call`` each (call, block) pair, as JSON-RPC batches of ``chunk`` on a node (one round trip
        per batch), one by one in process. Results in order; a revert raises its named error."""
        if self._embedded is not None or not hasattr(self.w3.provider, "make_batch_request"):
            return [self.call(fn, block=block) for fn, block in calls]
        out: list[Any] = []
        for start in range(0, len(calls), chunk):
            part = calls[start : start + chunk]
            requests_ = [
                (
                    "eth_call",
                    [{"to": fn.to, "data": "0x" + fn.data.hex()}, hex(b) if isinstance(b, int) else b],
                )
                for fn, b in part
            ]
            with self._rpc():
                responses = self.w3.provider.make_batch_request(requests_)
            if not isinstance(responses, list):
                raise ChainError(f"the node refused a batch of eth_call: {responses.get('error')}")
            for (fn, block), response in zip(part, responses, strict=True):
                if "error" in response:
                    error = response["error"]
                    if is_missing_state(error):
                        raise ChainError(
                            f"{fn.label} at block {block}: the node no longer holds that block's state "
                            f"({error}); use an archive node (the devnet of hardhat-free-devnet/ keeps all)"
                        )
                    data = error.get("data") if isinstance(error, Mapping) else None
                    raise errors.decode_revert(
                        data if isinstance(data, str) else None, context=fn.label, message=str(error)
                    )
                out.append(fn.decode(bytes.fromhex(str(response["result"]).removeprefix("0x"))))
        return out

    @property
    def reopened(self) -> bool:
        """True for an embedded chain reopened from its journal (it holds everything done before)."""
        return self._embedded is not None and self._embedded.reopened

    @property
    def block_number(self) -> int:
        with self._rpc():
            return int(self.w3.eth.block_number)

    def head(self) -> BlockHead:
        """The latest block's number, hash and timestamp in one request (a consent check's anchor). The
        in-process chain is asked directly for its canonical head (what ``eth_getBlockByNumber("latest")``
        returns, without building the whole block); a node is asked once for all concurrent callers, by a
        request sent after each of them asked (:class:`backend.core.shared_read.SharedRead`)."""
        if self._embedded is not None:
            return self._embedded.head()
        return self.heads.get()

    def _read_head(self) -> BlockHead:
        return block_head(self._raw("eth_getBlockByNumber", ["latest", False]))

    def block_hash(self, number: int) -> str | None:
        """The canonical hash of block ``number`` (None if the chain has no such block yet)."""
        if self._embedded is not None:
            return self._embedded.block_hash(number)
        block = self._raw("eth_getBlockByNumber", [hex(number), False])
        return None if not block else as_hex(block["hash"])

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
        address: str | Sequence[str],
        topics: Sequence[bytes | None],
        from_block: int = 0,
        to_block: int | str = "latest",
    ) -> list[Event]:
        """Decoded logs of ``address`` (or of any of several addresses) matching ``topics`` (None matches
        anything), in the node's order: by block, then log index. Logs of no known event are left out."""
        where = checksum(address) if isinstance(address, str) else [checksum(a) for a in address]
        flt: dict[str, Any] = {
            "address": where,
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
    def _require_local(self, what: str) -> LocalControls:
        if self._local is None:
            raise ChainError(f"{what} needs the embedded chain or a devnet, not a real network")
        return self._local

    def increase_time(self, seconds: int) -> int:
        """Move the chain's clock forward by ``seconds`` and mine a block; returns the new ``now()``."""
        local = self._require_local("increase_time")
        if seconds < 0:
            raise ValueError("time only moves forward")
        local.increase_time(int(seconds))
        return self.now()

    def mine(self, blocks: int = 1) -> None:
        self._require_local("mine").mine(blocks)

    def snapshot(self) -> Any:
        """Save the chain state; ``revert(id)`` returns to it (anvil ids are single-use)."""
        return self._require_local("snapshot").snapshot()

    def revert(self, snapshot_id: Any) -> None:
        self._require_local("revert").revert(snapshot_id)
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
        """Sign with a cached ``eth_keys`` key object: given raw key bytes, ``Account.sign_transaction``
        derives the public key (a full elliptic-curve multiplication) on every call, a third of a devnet
        transaction's client time; a key object carries it."""
        key = self._eth_keys.get(wallet.address)
        if key is None:
            key = self._eth_keys[wallet.address] = PrivateKey(wallet.private_key)
        return bytes(Account.sign_transaction(tx, key).raw_transaction)

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
                if is_funds_error(exc):
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
            for attempt in range(1, SEND_ATTEMPTS + 1):
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
                    # Another process sent from this key (several API processes share the registrar's), or
                    # the base fee rose past our cached fee: re-read the nonce and the fees and try again.
                    text = str(exc).lower()
                    retry = any(sign in text for sign in _NONCE_OR_FEE) and not is_funds_error(exc)
                    if attempt < SEND_ATTEMPTS and retry:
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
        if is_funds_error(exc):
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
    """(to, calldata, label, decoder) from our ``FunctionCall`` or a bound web3 ``ContractFunction``
    (``contract.functions.name(*args)``: encoded here from its ``abi`` and ``arguments``; the raw output is
    returned undecoded, as before)."""
    if isinstance(fn_call, FunctionCall):
        return fn_call.to, fn_call.data, fn_call.label, fn_call.decode
    entry = getattr(fn_call, "abi", None)
    arguments = getattr(fn_call, "arguments", None)
    address = getattr(fn_call, "address", None)
    if not isinstance(entry, Mapping) or arguments is None or address is None:
        raise TypeError(
            f"expected a FunctionCall (client.fn(...)) or a web3 contract function, got {fn_call!r}"
        )
    data = AbiFunction(entry).encode(tuple(arguments))
    label = getattr(fn_call, "fn_name", None)
    return checksum(address), data, label, None
