"""The in-process chain: eth-tester over py-evm. The only module that imports either.

Pinned in ``pyproject.toml``: ``eth-tester[py-evm]==0.14.0b1`` and ``py-evm==0.12.1b1``. Besides their public
APIs this module relies on a few of their private ones, listed here so that an upgrade knows what to check
(``tests/chain`` and ``tests/contracts`` exercise every one of them):

- ``PyEVMBackend.call`` is replaced (``Backend.call`` in ``_classes``) so that a revert keeps its raw data
  as a node's would: eth-tester turns ``Error(string)`` into text and drops custom errors' data, and
  ``errors.decode_revert`` needs the selector and arguments. The replacement does what eth-tester's ``call``
  does, through its private helpers ``PyEVMBackend._max_available_gas``,
  ``PyEVMBackend._get_normalized_and_unsigned_evm_transaction`` and
  ``eth_tester.backends.pyevm.main._execute_and_revert_transaction``, and raises ``TransactionFailed`` with
  py-evm's ``Revert`` (its ``args`` hold the data).
- ``PyEVMBackend.estimate_gas`` sets py-evm's ``Chain.gas_estimator`` (a public hook, set per chain here) to
  one execution plus headroom (``_one_shot_estimate``, built on py-evm's ``SpoofTransaction`` and state
  snapshots) instead of py-evm's binary search of about 13 executions: estimating dominates a transaction's
  cost on this chain.
- ``EmbeddedChain.head`` reads ``PyEVMBackend.chain.get_canonical_head()`` (the backend's py-evm chain, a
  public attribute without documented stability) instead of building the whole latest block.
- ``Provider.make_request`` turns eth-tester's ``TransactionFailed`` into a JSON-RPC error with the revert
  data (``code`` 3, ``data`` hex), which is what web3 reports for a node.

- ``PyEVMBackend.reset_to_genesis`` is replaced when the chain has a journal (``EmbeddedChain(path)``): the
  chain's database is a :func:`backend.chain.journal.journal_db` instead of eth-tester's in-memory one. The
  chain class is the one eth-tester's ``setup_tester_chain`` builds (taken from a throwaway chain, so its
  VM schedule and genesis rules are eth-tester's own); a new journal gets eth-tester's default genesis
  (``get_default_genesis_params``, ``generate_genesis_state_for_keys`` with its deterministic accounts), an
  existing one is reopened at its canonical head (py-evm's ``MiningChain(base_db)``).

Time travel, mining and snapshots use eth-tester's public API (``time_travel``, ``mine_blocks``,
``take_snapshot``, ``revert_to_snapshot``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from .results import BlockHead
from .types import Wallet


def _one_shot_estimate(state: Any, transaction: Any) -> int:
    """Gas for ``transaction``: one execution at the block's gas limit, plus headroom for the 63/64 rule on
    nested calls and the SSTORE stipend check (unused gas is refunded)."""
    from eth.vm.spoof import SpoofTransaction

    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0))
    finally:
        state.revert(snapshot)
    if computation.is_error:
        raise computation.error
    used = int(transaction.intrinsic_gas) + int(computation.get_gas_used())
    return int(min(state.gas_limit, used + used // 32 + 2300))


@functools.cache
def _classes() -> tuple[type[Any], type[EthereumTesterProvider]]:
    """The backend and provider classes (eth-tester and py-evm are imported on first use only)."""
    from eth.exceptions import Revert as EVMRevert
    from eth.vm.spoof import SpoofTransaction
    from eth_tester import PyEVMBackend
    from eth_tester.backends.pyevm import main as pyevm_main
    from eth_tester.exceptions import TransactionFailed as TesterTransactionFailed

    class Backend(PyEVMBackend):
        def __init__(self, journal: Path | None = None) -> None:
            self.journal_path = journal
            self.reopened = False
            super().__init__()

        def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
            if self.journal_path is None:
                super().reset_to_genesis(*args, **kwargs)
                return
            from eth_tester.backends.pyevm.main import (
                generate_genesis_state_for_keys,
                get_default_genesis_params,
                setup_tester_chain,
            )

            keys, scratch = setup_tester_chain()
            db = _journal_db(self.journal_path)
            if db.empty:
                chain = type(scratch).from_genesis(
                    db, get_default_genesis_params(), generate_genesis_state_for_keys(keys)
                )
            else:
                chain = type(scratch)(db)
                self.reopened = True
            self.account_keys, self.chain = keys, chain

        def estimate_gas(self, transaction: Any, block_number: Any = "latest") -> Any:
            self.chain.gas_estimator = _one_shot_estimate
            return super().estimate_gas(transaction, block_number)

        def call(self, transaction: Any, block_number: Any = "latest") -> Any:
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
            except (TesterTransactionFailed, OverflowError) as exc:
                # web3 tries to read every revert as ``Error(string)`` and only expects a DecodingError:
                # a custom error whose first argument is small reads as an impossible string length and
                # raises OverflowError, with eth-tester's failure (and the raw data) as its context
                raw = revert_bytes(exc)
                if isinstance(exc, OverflowError) and raw is None:
                    raise
                error: dict[str, Any] = {"code": 3, "message": "execution reverted"}
                if raw is not None:
                    error["data"] = "0x" + raw.hex()
                else:
                    error["message"] = str(exc)
                return {"jsonrpc": "2.0", "id": 0, "error": error}

    return Backend, Provider


def _journal_db(path: Path) -> Any:
    """A py-evm ``AtomicDatabaseAPI`` over a :class:`backend.chain.journal.JournalStore` in ``path``: reads
    from memory, each write (a direct one, or an atomic batch as one frame) journaled before it shows."""
    from eth.db.atomic import AtomicDBWriteBatch
    from eth.db.backends.base import BaseAtomicDB

    from .journal import Collect, JournalStore

    store = JournalStore(path)

    class JournalDB(BaseAtomicDB):
        empty = store.empty

        def __getitem__(self, key: bytes) -> bytes:
            return store.data[key]

        def __setitem__(self, key: bytes, value: bytes) -> None:
            store.commit([(key, value)])

        def __delitem__(self, key: bytes) -> None:
            if key not in store.data:
                raise KeyError(key)
            store.commit([(key, None)])

        def _exists(self, key: bytes) -> bool:
            return key in store.data

        @contextlib.contextmanager
        def atomic_batch(self) -> Iterator[Any]:
            target = Collect(store.data)
            with AtomicDBWriteBatch._commit_unless_raises(target) as batch:  # type: ignore[arg-type]
                yield batch
            store.commit(target.ops)

    return JournalDB()


def revert_bytes(exc: BaseException) -> bytes | None:
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


class EmbeddedChain:
    """An eth-tester chain with ten funded, deterministic accounts, its ``Web3`` (``w3``), and the controls
    tests use: the head, time travel, mining and snapshots.

    Without ``journal`` the chain lives in memory and starts empty. With it, its database is kept in that
    file (:mod:`backend.chain.journal`): a new file starts a new chain, an existing one is reopened where it
    stopped (``reopened``), after a clean stop or a killed process alike."""

    def __init__(self, journal: Path | None = None) -> None:
        from eth_tester import EthereumTester

        backend_class, provider = _classes()
        backend = backend_class(journal)
        self.reopened = bool(backend.reopened)
        self.tester = EthereumTester(backend)
        self.w3 = Web3(provider(self.tester), middleware=[])

    def wallets(self) -> list[Wallet]:
        return [Wallet(bytes(k.to_bytes())) for k in self.tester.backend.account_keys]

    def head(self) -> BlockHead:
        """The canonical head, read from py-evm without building the block."""
        header = self.tester.backend.chain.get_canonical_head()
        return BlockHead(int(header.block_number), "0x" + bytes(header.hash).hex(), int(header.timestamp))

    def block_hash(self, number: int) -> str | None:
        from eth.exceptions import HeaderNotFound

        try:
            header = self.tester.backend.chain.chaindb.get_canonical_block_header_by_number(number)
        except HeaderNotFound:
            return None
        return "0x" + bytes(header.hash).hex()

    def _latest(self, field: str) -> int:
        return int(self.tester.get_block_by_number("latest")[field])

    def increase_time(self, seconds: int) -> None:
        """Move the clock forward by ``seconds`` and mine a block. eth-tester's ``time_travel(t)`` mines a
        block stamped ``t - 1`` (and does nothing if ``t`` is the pending block's time already): ask for one
        second more, and mine if nothing was mined."""
        before = self._latest("number")
        pending = int(self.tester.get_block_by_number("pending")["timestamp"])
        target = max(self._latest("timestamp") + int(seconds) + 1, pending)
        self.tester.time_travel(target)
        if self._latest("number") == before:
            self.tester.mine_blocks(1)

    def mine(self, blocks: int) -> None:
        self.tester.mine_blocks(blocks)

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snapshot_id: Any) -> None:
        self.tester.revert_to_snapshot(snapshot_id)
