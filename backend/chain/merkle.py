"""The settlement ledger's Merkle tree, built exactly as ``SettlementLedger._merkleRoot`` builds it.

Leaves are ``keccak256(abi.encode(conversion))`` in batch order. Each level hashes neighbours pairwise with
OpenZeppelin's commutative keccak (``Hashes.commutativeKeccak256``: the smaller word first) and promotes an
unpaired last node unchanged; the root of a one-leaf tree is the leaf. Proofs are the sibling hashes from
the leaf upwards, skipping levels where the node was promoted, so ``MerkleProof.verify`` accepts them.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import keccak


def hash_pair(a: bytes, b: bytes) -> bytes:
    """``Hashes.commutativeKeccak256(a, b)``."""
    return bytes(keccak(a + b if a < b else b + a))


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    for leaf in leaves:
        if len(leaf) != 32:
            raise ValueError(f"leaves must be 32 bytes, got {len(leaf)}")
    level = [bytes(x) for x in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        levels.append(level)
    return levels


def root(leaves: Sequence[bytes]) -> bytes:
    return _levels(leaves)[-1][0]


def proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for {len(leaves)} leaves")
    out: list[bytes] = []
    for level in _levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            out.append(level[sibling])
        index //= 2
    return out


def verify(proof_: Sequence[bytes], root_: bytes, leaf: bytes) -> bool:
    """``MerkleProof.verify``: fold the proof into the leaf and compare with the root."""
    node = bytes(leaf)
    for sibling in proof_:
        node = hash_pair(node, bytes(sibling))
    return node == bytes(root_)
