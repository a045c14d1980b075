"""What the three typed contract clients share: the handle, calls, sends, event logs, the EIP-712 domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .abi import ContractHandle
from .client import ChainClient
from .results import Event, TxResult
from .types import checksum


class ContractClient:
    """A typed client of the contract ``contract_name`` at ``address`` on ``client``'s chain.

    ``from_block`` is where the contract was deployed: log queries (rebuilding terms or batches from
    events) start there instead of at genesis.
    """

    contract_name: ClassVar[str]

    def __init__(self, client: ChainClient, address: str, *, from_block: int = 0) -> None:
        self.client = client
        self.contract: ContractHandle = client.contract(self.contract_name, address)
        self.from_block = from_block

    @property
    def address(self) -> str:
        return self.contract.address

    def _call(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        return self.client.call(self.contract.fn(name, *args), block=block)

    def _send(self, name: str, *args: Any, sender: str | None) -> TxResult:
        return self.client.send(self.contract.fn(name, *args), sender=sender)

    def _logs(
        self,
        event: str,
        indexed: Sequence[int | bytes | None] = (),
        *,
        from_block: int | None = None,
        to_block: int | str = "latest",
    ) -> list[Event]:
        """This contract's ``event`` logs (topic0 from the ABI) whose indexed arguments match ``indexed`` in
        declaration order (None matches anything; ints are uint256 topics), from ``from_block`` (default:
        the deployment block) to ``to_block``."""
        topics: list[bytes | None] = [self.contract.event_topic(event)]
        for value in indexed:
            topics.append(value.to_bytes(32, "big") if isinstance(value, int) else value)
        while len(topics) > 1 and topics[-1] is None:
            topics.pop()
        start = self.from_block if from_block is None else from_block
        return [e for e in self.client.get_logs(self.address, topics, start, to_block) if e.name == event]

    def _if_held(self, account: str | None) -> str | None:
        """``account`` if this process holds its key (so it can be the default sender), else None."""
        if account and account in {a.address for a in self.client.accounts}:
            return account
        return None


class Eip712Client(ContractClient):
    """A contract that verifies EIP-712 signatures (OpenZeppelin ``EIP712``)."""

    def domain_separator(self) -> bytes:
        return bytes(self._call("DOMAIN_SEPARATOR"))

    def eip712_domain(self) -> dict[str, Any]:
        """The ERC-5267 domain the contract signs under."""
        fields, name, version, chain_id, contract, salt, extensions = self._call("eip712Domain")
        return {
            "fields": bytes(fields),
            "name": name,
            "version": version,
            "chainId": int(chain_id),
            "verifyingContract": checksum(contract),
            "salt": bytes(salt),
            "extensions": list(extensions),
        }
