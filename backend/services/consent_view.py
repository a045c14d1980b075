"""What the registry says about each (subject, partner), kept in step with the chain by its events.

A consent check must answer for the head block it names (``verified_at_block``), and must see a revocation
the moment it is mined, in this process or any other. Reading every learner's consent again at every new
block does that, at a cost that grows with traffic; this view reads a learner's consent once, and again only
when the chain says something changed for them:

- it follows the registry's events block by block (one ``eth_getLogs`` per new head, shared by every
  request): a grant or a revocation marks that (subject, partner) changed at its block, a partner's notice
  version every subject of that partner, the platform's notice version everyone;
- an answer read at block ``r`` holds at head ``h`` (``h >= r``) if nothing changed for it in blocks
  ``r+1..h`` (every event up to ``h`` is applied before the answer is used) and no purpose it holds has
  expired by ``h``'s time (the earliest expiry is read with the answer): nothing else changes a consent;
- a head behind what the view has applied (a lagging node) is answered by reading at that head directly;
  a head whose hash contradicts an applied block (a reorganisation) discards everything read before.

So the answer for head ``h`` is exactly what the registry holds at ``h``; processes that share nothing but
the chain stay as fresh as the chain.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from backend.chain import BlockHead, ChainClient, ChainTarget, ConsentRegistryClient, purposes_in_mask

#: Entries beyond this are forgotten oldest first (a forgotten entry is read again when next needed).
MAX_ENTRIES = 200_000
NEVER = 2**64


@dataclass(frozen=True)
class _Entry:
    mask: int
    read_block: int
    #: The chain time at which the answer may change by time alone: the earliest expiry of what it holds.
    good_until: int
    epoch: int


class ConsentView:
    def __init__(
        self, client: ChainClient, registry: ConsentRegistryClient, *, max_entries: int = MAX_ENTRIES
    ) -> None:
        self._client = client
        self._registry = registry
        self._max = max_entries
        self._check_hashes = client.target is not ChainTarget.EMBEDDED
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._synced: BlockHead | None = None
        self._entries: dict[tuple[bytes, str], _Entry] = {}
        self._changed: dict[tuple[bytes, str], int] = {}
        self._partner_changed: dict[str, int] = {}
        self._all_changed = -1
        self._epoch = 0
        #: Reads of the registry made on a miss (for metrics and tests).
        self.reads = 0

    # ------------------------------------------------------------------ answers
    def mask_at(self, subject: bytes, partner: str, head: BlockHead) -> int:
        """The consent mask of (``subject``, ``partner``) at ``head``; raises the chain's errors (callers
        fail closed)."""
        if not self._sync_to(head):
            return self._read(subject, partner, head)[0]
        key = (subject, partner)
        entry = self._entries.get(key)
        if entry is not None and self._holds(key, partner, entry, head):
            return entry.mask
        epoch = self._epoch
        mask, good_until = self._read(subject, partner, head)
        with self._lock:
            if epoch == self._epoch:
                if len(self._entries) >= self._max:
                    self._entries.pop(next(iter(self._entries)))
                self._entries[key] = _Entry(mask, head.number, good_until, epoch)
        return mask

    def known(self, subject: bytes, partner: str, head: BlockHead) -> int | None:
        """The mask at ``head`` when it can be answered without asking the chain (this view has applied
        the registry's events up to exactly ``head`` and holds an answer that still stands there); None
        otherwise (then :meth:`mask_at` asks). Pure CPU: the event loop may call it."""
        synced = self._synced
        if synced is None or synced.number != head.number or synced.hash != head.hash:
            return None
        key = (subject, partner)
        entry = self._entries.get(key)
        if entry is not None and self._holds(key, partner, entry, head):
            return entry.mask
        return None

    def _holds(self, key: tuple[bytes, str], partner: str, entry: _Entry, head: BlockHead) -> bool:
        last_change = max(
            self._changed.get(key, -1), self._partner_changed.get(partner, -1), self._all_changed
        )
        return (
            entry.epoch == self._epoch
            and entry.read_block <= head.number
            and last_change <= entry.read_block
            and head.timestamp < entry.good_until
        )

    def _read(self, subject: bytes, partner: str, head: BlockHead) -> tuple[int, int]:
        """The mask at ``head`` and the earliest expiry among the purposes it holds (pinned reads)."""
        self.reads += 1
        mask = self._registry.consent_mask(subject, partner, block=head.number)
        good_until = NEVER
        for purpose in purposes_in_mask(mask):
            state = self._registry.consent_of(subject, partner, purpose, block=head.number)
            good_until = min(good_until, state.expires_at)
        return mask, good_until

    # ------------------------------------------------------------------ following the chain
    def _sync_to(self, head: BlockHead) -> bool:
        """Apply the registry's events up to ``head``. False when ``head`` is behind what is applied (a
        lagging node): the caller reads at ``head`` directly."""
        synced = self._synced
        if synced is not None and synced.number == head.number and synced.hash == head.hash:
            return True
        with self._sync_lock:
            synced = self._synced
            if synced is None:
                self._synced = head
                return True
            if head.number < synced.number:
                return False
            if head.number == synced.number:
                if head.hash != synced.hash:
                    self._discard(head)
                return True
            if self._check_hashes and self._client.block_hash(synced.number) != synced.hash:
                self._discard(head)
                return True
            for change in self._registry.changes(from_block=synced.number + 1, to_block=head.number):
                self._apply(change.kind, change.subject, change.partner, change.block_number)
            self._synced = head
            if len(self._changed) > 4 * self._max:  # forget old history: everything read before is stale
                self._discard(head)
            return True

    def _apply(self, kind: str, subject: bytes | None, partner: str | None, block: int) -> None:
        with self._lock:
            if kind in ("granted", "revoked") and subject is not None and partner is not None:
                self._changed[(subject, partner)] = block
                self._entries.pop((subject, partner), None)
            elif kind == "partner_notice" and partner is not None:
                self._partner_changed[partner] = block
            else:
                self._all_changed = block
                self._entries.clear()

    def _discard(self, head: BlockHead) -> None:
        """Forget everything read so far (a reorganisation, or history grown too long)."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()
            self._changed.clear()
            self._partner_changed.clear()
            self._all_changed = head.number
            self._synced = head
