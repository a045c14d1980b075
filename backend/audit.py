"""The auditor's replay: every consent-gated answer the service gave, checked against the chain.

The serving log holds, for each answer that relied on a learner's consent, who it was for (the pseudonym),
which partner asked, the block at which consent was verified and the purposes the answer relied on:

- a ``recommendation`` (profiling and product recommendation: the profile was scored for the partner);
- a ``data_export`` (data sharing: the learner's features went to the partner);
- an ``audience`` member, one answer per pseudonym in the audience (marketing contact: the partner may
  contact them), all at the audience's block.

The replay reads the registry's ``consentMask`` pinned at each block (the chain's own record, which never
changes for a block) and reports every answer whose purposes the chain did not hold there.

It needs only the log, from the service's database or from an export of it (:func:`export_log`, JSON
lines), and a JSON-RPC node of the chain (any archive-capable node: anvil, or a public RPC). It trusts
nothing else the service wrote: the registry's address comes from the log's header and is checked to hold
the registry's code on the node.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import text
from sqlalchemy.engine import Engine

from backend.chain import ChainClient, ConsentRegistryClient, Purpose, purposes_in_mask

#: What a recommendation relies on: a profile (profiling) used to suggest the partner's products.
RECOMMENDATION_PURPOSES = (Purpose.PROFILING, Purpose.PRODUCT_RECOMMENDATION)
#: What a data export relies on: the learner's features handed to the partner.
DATA_EXPORT_PURPOSES = (Purpose.DATA_SHARING,)
#: What an audience relies on, for each member: the partner may contact them.
AUDIENCE_PURPOSES = (Purpose.MARKETING_CONTACT,)
LOG_VERSION = 1


@dataclass(frozen=True)
class ServedAnswer:
    """One consent-gated answer from the serving log."""

    kind: str  # "recommendation", "data_export" or "audience"
    id: str
    subject: str  # 0x + 64 hex digits
    partner: str  # the partner's address
    block: int  # verified_at_block
    purposes: tuple[str, ...]  # API names of the purposes the answer relied on


@dataclass(frozen=True)
class LogHeader:
    chain_id: int
    registry: str


@dataclass(frozen=True)
class Violation:
    answer: ServedAnswer
    held: tuple[str, ...]

    def line(self) -> str:
        missing = sorted(set(self.answer.purposes) - set(self.held))
        return (
            f"violation: {self.answer.kind} {self.answer.id} for {self.answer.subject} to partner "
            f"{self.answer.partner} at block {self.answer.block} relied on {', '.join(missing)}, which the "
            f"registry did not hold there (it held: {', '.join(self.held) or 'nothing'})"
        )


class AuditError(Exception):
    """The log or the chain cannot be audited as given; the message names what to fix."""


# ------------------------------------------------------------------------------------------ the log
def header_from_database(engine: Engine) -> LogHeader:
    """The deployment the database belongs to (``service_meta``: ``chain_id:registry:ledger``)."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT value FROM service_meta WHERE key = 'deployment'")).first()
    if row is None:
        raise AuditError(
            "the database names no deployment (service_meta.deployment): is it a KnowLedger database?"
        )
    chain_id, registry, _ledger = str(row[0]).split(":")
    return LogHeader(int(chain_id), registry)


#: Each kind of answer: its purposes and the query of its log (id, pseudonym, partner address, block).
_LOGS = (
    (
        "recommendation",
        RECOMMENDATION_PURPOSES,
        "SELECT r.id, r.pseudonym, p.address, r.consent_block FROM recommendation r "
        "JOIN partner p ON p.id = r.partner_id ORDER BY r.created_at, r.id",
    ),
    (
        "data_export",
        DATA_EXPORT_PURPOSES,
        "SELECT e.id, e.pseudonym, p.address, e.consent_block FROM data_export e "
        "JOIN partner p ON p.id = e.partner_id ORDER BY e.created_at, e.id",
    ),
    (
        "audience",
        AUDIENCE_PURPOSES,
        "SELECT a.id, m.pseudonym, p.address, a.consent_block FROM audience_member m "
        "JOIN audience a ON a.id = m.audience_id JOIN partner p ON p.id = a.partner_id "
        "ORDER BY a.created_at, a.id, m.pseudonym",
    ),
)


def answers_from_database(engine: Engine) -> Iterator[ServedAnswer]:
    """Every consent-gated answer: recommendations, then data exports, then audience members, each oldest
    first."""
    with engine.connect() as conn:
        for kind, purposes, query in _LOGS:
            names = tuple(p.api_name for p in purposes)
            for answer_id, pseudonym, address, block in conn.execute(text(query)):
                yield ServedAnswer(kind, str(answer_id), str(pseudonym), str(address), int(block), names)


def export_log(engine: Engine, out: TextIO) -> int:
    """Write the serving log as JSON lines: a header (chain id, registry), then one answer per line."""
    header = header_from_database(engine)
    out.write(json.dumps({"knowledger_serving_log": LOG_VERSION, **asdict(header)}) + "\n")
    n = 0
    for answer in answers_from_database(engine):
        out.write(json.dumps(asdict(answer)) + "\n")
        n += 1
    return n


def read_log(path: Path) -> tuple[LogHeader, list[ServedAnswer]]:
    """An exported log; errors name the file and line."""
    answers: list[ServedAnswer] = []
    header: LogHeader | None = None
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if header is None:
                    if row.get("knowledger_serving_log") != LOG_VERSION:
                        raise ValueError(f"expected a serving log header (version {LOG_VERSION})")
                    header = LogHeader(int(row["chain_id"]), str(row["registry"]))
                    continue
                answers.append(
                    ServedAnswer(
                        str(row["kind"]),
                        str(row["id"]),
                        str(row["subject"]),
                        str(row["partner"]),
                        int(row["block"]),
                        tuple(str(p) for p in row["purposes"]),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditError(f"{path}:{lineno}: {exc}") from None
    if header is None:
        raise AuditError(f"{path}: empty (no header line)")
    return header, answers


# ------------------------------------------------------------------------------------------ the replay
def replay(
    client: ChainClient,
    header: LogHeader,
    answers: Iterable[ServedAnswer],
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Violation], dict[str, Any]]:
    """Check every answer against the registry at its block. Returns the violations and a summary."""
    if client.chain_id != header.chain_id:
        raise AuditError(
            f"the node serves chain {client.chain_id}, the log is of chain {header.chain_id}: "
            "is --rpc-url right?"
        )
    if not client.code_at(header.registry):
        raise AuditError(f"no contract at {header.registry} on chain {client.chain_id}: is --rpc-url right?")
    registry = ConsentRegistryClient(client, header.registry)
    answers = list(answers)
    head = client.block_number
    keys = sorted({(a.subject, a.partner, a.block) for a in answers})
    future = [k for k in keys if k[2] > head]
    if future:
        raise AuditError(
            f"the log names block {future[0][2]}, past the node's head {head}: is this the right chain?"
        )
    calls = [
        (
            registry.contract.fn("consentMask", bytes.fromhex(subject.removeprefix("0x")), partner),
            block,
        )
        for subject, partner, block in keys
    ]
    masks: dict[tuple[str, str, int], int] = {}
    batch = 500
    for start in range(0, len(calls), batch):
        for key, mask in zip(
            keys[start : start + batch], client.call_many(calls[start : start + batch]), strict=True
        ):
            masks[key] = int(mask)
        if progress is not None:
            progress(min(start + batch, len(calls)))
    violations = []
    for a in answers:
        held = tuple(sorted(p.api_name for p in purposes_in_mask(masks[(a.subject, a.partner, a.block)])))
        if not set(a.purposes) <= set(held):
            violations.append(Violation(a, held))
    summary = {
        "chain_id": header.chain_id,
        "registry": header.registry,
        "answers": len(answers),
        "kinds": {
            kind: sum(1 for a in answers if a.kind == kind) for kind in sorted({a.kind for a in answers})
        },
        "distinct_checks": len(keys),
        "first_block": min((a.block for a in answers), default=None),
        "last_block": max((a.block for a in answers), default=None),
        "violations": len(violations),
        "ok": not violations,
    }
    return violations, summary
