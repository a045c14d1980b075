"""Gas per operation and transactions per second, through the chain layer. Prints ONE JSON object.

Gas is each transaction's ``gasUsed`` (21,000 base and calldata included) on the in-process eth-tester chain,
measured on new storage (new consent records, new conversion ids). Batch figures are the batch's gas divided
by its size. Throughput is consent grants sent one after another through ``ChainClient.send`` (estimate, sign,
send, receipt) on eth-tester and on an anvil devnet started here; progress goes to stderr.

    .venv/bin/python scripts/bench_gas.py [--tx 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.chain import (
    AgreementTerms,
    AnvilNode,
    AnvilUnavailable,
    ChainClient,
    ConsentGrant,
    Conversion,
    ConversionData,
    Deployment,
    NamedAccounts,
    Party,
    Purpose,
    Wallet,
    connect_devnet,
    connect_embedded,
    deploy_all,
    subject_for_wallet,
)

DAY = 86_400
TARGETS = {
    "consent_grant": 47_500,
    "consent_grant_signed_batch100_each": 32_000,
    "consent_revoke": 30_000,
    "conversion_batch100_each": 8_000,
}


_counter = iter(range(1 << 62))


def h32() -> bytes:
    """A deterministic pseudo-random 32-byte value (reproducible calldata gas, unlike os.urandom)."""
    return bytes(keccak(text=f"bench-{next(_counter)}"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _deploy(client: ChainClient) -> Deployment:
    acc = NamedAccounts.from_wallets(client.accounts)
    d = deploy_all(client, admin=acc.admin, registrar=acc.registrar, sender=acc.admin)
    d.consent.set_partner_notice_version(acc.partner, 1, sender=acc.admin)
    d.accounts = acc
    return d


def measure_gas(d: Deployment) -> dict[str, int]:
    acc = d.accounts
    assert acc is not None
    chain, consent = d.client, d.consent
    out: dict[str, int] = {}
    now = chain.now()
    terms = consent.current_terms(acc.partner, Purpose.PRODUCT_RECOMMENDATION, now + 300 * DAY)

    log("consent: registrar grant and revoke ...")
    consent.grant(h32(), terms, h32())  # warm-up: first write to the contract
    subject = h32()
    out["consent_grant"] = consent.grant(subject, terms, h32()).gas_used
    out["consent_revoke"] = consent.revoke(subject, acc.partner, Purpose.PRODUCT_RECOMMENDATION).gas_used

    log("consent: 100 wallets sign, one relayed grantBySigBatch ...")
    wallets = [Wallet(h32()) for _ in range(100)]
    deadline = now + DAY
    signed = [
        consent.sign_grant(w, ConsentGrant(subject_for_wallet(w), terms, h32()), deadline, nonce=0)
        for w in wallets
    ]
    batch = consent.grant_by_sig_batch(signed, sender=acc.outsider)
    out["consent_grant_signed_batch100_each"] = batch.gas_used // 100
    one = Wallet(h32())
    single = consent.sign_grant(one, ConsentGrant(subject_for_wallet(one), terms, h32()), deadline, nonce=0)
    out["consent_grant_signed"] = consent.grant_by_sig(single, sender=acc.outsider).gas_used

    log("agreements: propose and accept (3 parties) ...")
    agreement = AgreementTerms(
        parties=(Party(acc.platform, 500_000), Party(acc.partner, 300_000), Party(acc.creator, 200_000)),
        partner=acc.partner,
        reporter=acc.reporter,
        commission_rate=50_000,
        attribution_window=30 * DAY,
        validation_window=14 * DAY,
        valid_from=now - DAY,
        valid_until=now + 365 * DAY,
        currency="CNY",
    )
    proposed = d.agreements.propose(agreement, sender=acc.platform)
    out["agreement_propose"] = proposed.gas_used
    aid = int(proposed.value)
    out["agreement_accept"] = d.agreements.accept(aid, agreement, sender=acc.partner).gas_used
    out["agreement_accept_activating"] = d.agreements.accept(aid, agreement, sender=acc.creator).gas_used

    log("ledger: one conversion, then a batch of 100 (100 consented subjects, sequential ids) ...")
    subjects = [h32() for _ in range(101)]
    consent.grant_batch([ConsentGrant(s, terms, h32()) for s in subjects])
    t = chain.now()
    first = Conversion(ConversionData(1, t, t - 3_600, 1_000_000), h32(), subjects[0])
    out["conversion_record"] = d.ledger.record_conversion(aid, agreement, first).gas_used
    conversions = [
        Conversion(ConversionData(1_000 + i, t, t - 3_600, 1_000_000 + i), h32(), s)
        for i, s in enumerate(subjects[1:])
    ]
    out["conversion_batch100_each"] = d.ledger.record_conversions(aid, agreement, conversions).gas_used // 100
    return out


def throughput(d: Deployment, n: int) -> float:
    """Consent grants per second, each sent and mined before the next (through ChainClient.send)."""
    acc = d.accounts
    assert acc is not None
    terms = d.consent.current_terms(acc.partner, Purpose.PROFILING, d.client.now() + 300 * DAY)
    work = [(h32(), h32()) for _ in range(n)]
    d.consent.grant(h32(), terms, h32())  # warm caches (nonce, fees)
    start = time.perf_counter()
    for subject, receipt in work:
        d.consent.grant(subject, terms, receipt)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tx", type=int, default=200, help="transactions for the throughput runs")
    args = parser.parse_args(argv)

    log("deploying on eth-tester ...")
    embedded = _deploy(connect_embedded())
    result: dict[str, Any] = dict(measure_gas(embedded))
    log(f"throughput on eth-tester ({args.tx} grants) ...")
    result["tx_per_s_eth_tester"] = round(throughput(embedded, args.tx), 1)

    try:
        with AnvilNode() as node:
            log(f"throughput on anvil at {node.url} ({args.tx} grants) ...")
            devnet = _deploy(connect_devnet(node))
            result["tx_per_s_anvil"] = round(throughput(devnet, args.tx), 1)
            devnet.client.close()
    except AnvilUnavailable as exc:
        result["tx_per_s_anvil"] = None
        result["tx_per_s_anvil_reason"] = str(exc)

    result["targets"] = dict(TARGETS)
    result["meets_targets"] = {k: result[k] <= v for k, v in TARGETS.items()}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
