#!/usr/bin/env node
// Recompute a partner's settlement statement for one agreement from the chain alone, and compare it with
// the SettlementLedger's own per-party totals. Nothing here asks the KnowLedger service: the inputs are a
// node's JSON-RPC URL, the ledger's address, the agreement id and the agreement's terms (which the partner
// signed), and the contracts' ABIs from contracts/artifacts/.
//
//   node scripts/verify_statement.mjs --rpc URL (--manifest FILE | --ledger ADDRESS) --agreement ID \
//        --terms FILE [--agreements ADDRESS] [--from-block N] [--artifacts DIR]
//
// --terms: the terms as GET /api/v1/ledger/agreements/{id} returns them (the whole answer or its "terms"
// member); "-" reads them from standard input. --manifest: a deployment manifest (chain_id, contracts.*):
// it gives the ledger's address, its deployment block (where the event scan starts) and the agreements
// contract's address, and is checked against the node. Prints JSON; exit status 0 when everything
// agrees, 1 when something differs, 2 when the input is wrong or the node cannot be read.
//
// The rules, from contracts/interfaces/ISettlementLedger.sol:
//   split: commission = floor(value * commissionRate / 1e6); party i >= 1 gets floor(commission * share_i
//          / 1e6); parties[0] gets the rest, so the amounts sum to the commission exactly;
//   state: a conversion named by a ConversionReversed is reversed (reversal is refused once its batch is
//          final); otherwise it is final if its batch has a BatchFinalized, provisional if not.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import {
  AbiCoder,
  Contract,
  JsonRpcProvider,
  getAddress,
  keccak256,
  toUtf8Bytes,
  zeroPadBytes,
} from "ethers";

const SCALE = 1_000_000n;
const MASK64 = (1n << 64n) - 1n;
// ConversionData packs id [0,64), time [64,104), recommendedAt [104,144) and value [144,256).
const VALUE_SHIFT = 144n;
const LOG_CHUNK = 10_000; // blocks per eth_getLogs request (public nodes cap the range)
const BUCKETS = ["provisional", "final", "reversed"];

class InputError extends Error {}

function fail(message, status = 2) {
  process.stderr.write(`verify_statement: ${message}\n`);
  process.exit(status);
}

function readJson(path, what) {
  let text;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw new InputError(`${what}: cannot read ${path} (${err.code ?? err.message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`${what}: ${path} is not JSON (${err.message})`);
  }
}

function integer(value, field, max) {
  const ok =
    (typeof value === "number" && Number.isSafeInteger(value)) ||
    (typeof value === "string" && /^[0-9]+$/.test(value));
  if (!ok || BigInt(value) < 0n || BigInt(value) > max) {
    throw new InputError(`${field}: expected an integer in [0, ${max}], got ${JSON.stringify(value)}`);
  }
  return BigInt(value);
}

function address(value, field) {
  try {
    return getAddress(String(value));
  } catch {
    throw new InputError(`${field}: not an Ethereum address: ${JSON.stringify(value)}`);
  }
}

function currencyBytes32(code) {
  if (typeof code !== "string" || !/^[\x01-\x7f]{1,32}$/.test(code)) {
    throw new InputError(`terms.currency: expected 1 to 32 ASCII characters, got ${JSON.stringify(code)}`);
  }
  return zeroPadBytes(toUtf8Bytes(code), 32); // right-padded, as the contracts store it
}

/** The API's terms JSON as the ABI struct `IPartnershipAgreements.AgreementTerms`. */
function termsFromJson(doc) {
  const t = doc && typeof doc === "object" && doc.terms && typeof doc.terms === "object" ? doc.terms : doc;
  if (!t || typeof t !== "object") throw new InputError("terms: expected a JSON object");
  const need = (key) => {
    if (!(key in t)) throw new InputError(`terms.${key}: missing`);
    return t[key];
  };
  const U32 = (1n << 32n) - 1n;
  const U40 = (1n << 40n) - 1n;
  const parties = need("parties");
  if (!Array.isArray(parties) || parties.length === 0) {
    throw new InputError("terms.parties: expected a non-empty list of {account, share}");
  }
  return {
    parties: parties.map((p, i) => ({
      account: address(p?.account, `terms.parties[${i}].account`),
      share: integer(p?.share, `terms.parties[${i}].share`, U32),
    })),
    partner: address(need("partner"), "terms.partner"),
    reporter: address(need("reporter"), "terms.reporter"),
    commissionRate: integer(need("commission_rate"), "terms.commission_rate", U32),
    attributionWindow: integer(need("attribution_window"), "terms.attribution_window", U32),
    validationWindow: integer(need("validation_window"), "terms.validation_window", U32),
    validFrom: integer(need("valid_from"), "terms.valid_from", U40),
    validUntil: integer(need("valid_until"), "terms.valid_until", U40),
    currency: currencyBytes32(need("currency")),
    supersedes: integer(t.supersedes ?? 0, "terms.supersedes", (1n << 256n) - 1n),
  };
}

/** The ledger's split rule (`SettlementLedger._split`), in integers. */
function splitCommission(terms, value) {
  const commission = (value * terms.commissionRate) / SCALE;
  const amounts = terms.parties.map(() => 0n);
  let rest = commission;
  for (let j = 1; j < terms.parties.length; j++) {
    amounts[j] = (commission * terms.parties[j].share) / SCALE;
    rest -= amounts[j];
  }
  amounts[0] = rest;
  return { commission, amounts };
}

async function logs(contract, filter, fromBlock, toBlock) {
  const out = [];
  for (let start = fromBlock; start <= toBlock; start += LOG_CHUNK) {
    out.push(...(await contract.queryFilter(filter, start, Math.min(start + LOG_CHUNK - 1, toBlock))));
  }
  return out;
}

function options() {
  const { values } = parseArgs({
    options: {
      rpc: { type: "string" },
      manifest: { type: "string" },
      ledger: { type: "string" },
      agreements: { type: "string" },
      agreement: { type: "string" },
      terms: { type: "string" },
      "from-block": { type: "string" },
      artifacts: { type: "string" },
    },
    strict: true,
  });
  for (const key of ["rpc", "agreement", "terms"]) {
    if (values[key] === undefined) throw new InputError(`--${key}: missing`);
  }
  if (values.manifest === undefined && values.ledger === undefined) {
    throw new InputError("--ledger: missing (or give --manifest)");
  }
  return values;
}

async function main() {
  const opts = options();
  const agreementId = integer(opts.agreement, "--agreement", BigInt(Number.MAX_SAFE_INTEGER));
  if (agreementId === 0n) throw new InputError("--agreement: agreement ids start at 1");
  const terms = termsFromJson(readJson(opts.terms, "--terms"));
  const manifest = opts.manifest === undefined ? null : readJson(opts.manifest, "--manifest");
  const contractOf = (name) => {
    const record = manifest?.contracts?.[name];
    if (!record) throw new InputError(`--manifest: no contracts.${name} in ${opts.manifest}`);
    return record;
  };
  const ledgerAddress = address(
    opts.ledger ?? contractOf("SettlementLedger").address,
    opts.ledger ? "--ledger" : "--manifest contracts.SettlementLedger.address",
  );
  let fromBlock = 0;
  if (opts["from-block"] !== undefined) {
    fromBlock = Number(integer(opts["from-block"], "--from-block", BigInt(Number.MAX_SAFE_INTEGER)));
  } else if (manifest) {
    const deployedAt = contractOf("SettlementLedger").block_number;
    fromBlock = Number(integer(deployedAt, "--manifest contracts.SettlementLedger.block_number", 2n ** 53n));
  }

  const artifacts = opts.artifacts ?? fileURLToPath(new URL("../contracts/artifacts/", import.meta.url));
  const abiOf = (name) => readJson(join(artifacts, `${name}.json`), "--artifacts").abi;

  const provider = new JsonRpcProvider(opts.rpc, undefined, { staticNetwork: true });
  try {
    const { chainId } = await provider.getNetwork();
    if (manifest && integer(manifest.chain_id, "--manifest chain_id", 2n ** 64n) !== chainId) {
      throw new InputError(`--manifest: chain_id ${manifest.chain_id}, but --rpc is chain ${chainId}`);
    }
    // Every read is pinned to one block, so the events and the totals describe the same state.
    const head = await provider.getBlockNumber();
    const at = { blockTag: head };
    const ledger = new Contract(ledgerAddress, abiOf("SettlementLedger"), provider);
    if ((await provider.getCode(ledgerAddress, head)) === "0x") {
      throw new InputError(`--ledger: no contract at ${ledgerAddress} on chain ${chainId}`);
    }
    // The ledger checks every batch's terms against its own agreements contract: read that one.
    const agreementsAddress = getAddress(await ledger.agreements(at));
    const claimed = opts.agreements ?? (manifest ? contractOf("PartnershipAgreements").address : undefined);
    if (claimed !== undefined && address(claimed, "--agreements") !== agreementsAddress) {
      throw new InputError(
        `--agreements: ${claimed} is not the ledger's agreements contract (${agreementsAddress})`,
      );
    }
    const agreements = new Contract(agreementsAddress, abiOf("PartnershipAgreements"), provider);

    // 1. The terms hash: keccak256(abi.encode(terms)), with the struct type read from the ABI.
    const termsType = agreements.interface.getFunction("hashTerms").inputs[0];
    const computedHash = keccak256(AbiCoder.defaultAbiCoder().encode([termsType], [terms]));
    const onChainHash = (await agreements.agreementOf(agreementId, at)).termsHash;

    // 2. The ledger's events for this agreement (agreementId is the first indexed topic of all three).
    const recorded = await logs(ledger, ledger.filters.ConversionsRecorded(agreementId), fromBlock, head);
    const reversals = await logs(ledger, ledger.filters.ConversionReversed(agreementId), fromBlock, head);
    const finals = await logs(ledger, ledger.filters.BatchFinalized(agreementId), fromBlock, head);
    const reversedIds = new Set(reversals.map((e) => e.args.conversionId));
    const finalizedBatches = new Set(finals.map((e) => e.args.batchId));

    // 3. Each conversion's split, into the bucket its events put it in.
    const sums = terms.parties.map(() => ({ provisional: 0n, final: 0n, reversed: 0n }));
    let conversions = 0;
    for (const event of recorded) {
      for (const conversion of event.args.conversions) {
        const word = conversion.data;
        const id = word & MASK64;
        const { amounts } = splitCommission(terms, word >> VALUE_SHIFT);
        const bucket = reversedIds.has(id)
          ? "reversed"
          : finalizedBatches.has(event.args.batchId)
            ? "final"
            : "provisional";
        amounts.forEach((amount, j) => {
          sums[j][bucket] += amount;
        });
        conversions += 1;
      }
    }

    // 4. The ledger's own totals, party by party.
    const parties = [];
    for (const [j, party] of terms.parties.entries()) {
      const [provisional, final, reversed] = await ledger.totalsOf(agreementId, party.account, at);
      const fromEvents = Object.fromEntries(BUCKETS.map((b) => [b, sums[j][b].toString()]));
      const ledgerTotals = {
        provisional: provisional.toString(),
        final: final.toString(),
        reversed: reversed.toString(),
      };
      parties.push({
        account: party.account,
        share: Number(party.share),
        from_events: fromEvents,
        ledger_totals: ledgerTotals,
        matches: BUCKETS.every((b) => fromEvents[b] === ledgerTotals[b]),
      });
    }
    const termsHashMatches = computedHash === onChainHash;
    const ok = termsHashMatches && parties.every((p) => p.matches);
    const report = {
      agreement_id: Number(agreementId),
      chain_id: Number(chainId),
      block: head,
      ledger: ledgerAddress,
      agreements: agreementsAddress,
      currency: readCurrency(terms.currency),
      terms_hash: { computed: computedHash, on_chain: onChainHash, matches: termsHashMatches },
      events: {
        ConversionsRecorded: recorded.length,
        ConversionReversed: reversals.length,
        BatchFinalized: finals.length,
      },
      conversions,
      parties,
      ok,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return ok ? 0 : 1;
  } finally {
    provider.destroy();
  }
}

function readCurrency(bytes32) {
  return Buffer.from(bytes32.slice(2), "hex").toString("ascii").replace(/\0+$/, "");
}

main().then(
  (status) => process.exit(status),
  (err) => {
    if (err instanceof InputError || String(err?.code).startsWith("ERR_PARSE_ARGS")) fail(err.message);
    fail(`cannot read the chain: ${err?.shortMessage ?? err?.message ?? err}`);
  },
);
