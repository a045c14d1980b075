#!/usr/bin/env bash
# Recompute a partner's settlement statement for one agreement from the chain alone, with Foundry's cast,
# jq and bc, and compare it with the SettlementLedger's own per-party totals. Prints JSON; exit status 0
# when everything agrees, 1 when something differs, 2 on bad input.
#
#   scripts/verify_statement_cast.sh RPC_URL LEDGER_ADDRESS AGREEMENT_ID TERMS_JSON [FROM_BLOCK]
#
# TERMS_JSON: a file with the terms as GET /api/v1/ledger/agreements/{id} returns them (the whole answer
# or its "terms" member). FROM_BLOCK: where the event scan starts (the ledger's deployment block; 0 by
# default). CAST: the cast binary (default: cast on PATH).
set -euo pipefail
export BC_LINE_LENGTH=0 # bc prints every number on one line
CAST=${CAST:-cast}

usage() { echo "usage: $0 RPC_URL LEDGER_ADDRESS AGREEMENT_ID TERMS_JSON [FROM_BLOCK]" >&2; exit 2; }
[ $# -ge 4 ] || usage
RPC=$1 LEDGER=$2 ID=$3 TERMS_FILE=$4 FROM=${5:-0}
[[ $ID =~ ^[1-9][0-9]*$ ]] || { echo "AGREEMENT_ID: expected a positive integer, got '$ID'" >&2; exit 2; }
[[ $FROM =~ ^[0-9]+$ ]] || { echo "FROM_BLOCK: expected a block number, got '$FROM'" >&2; exit 2; }
[ -r "$TERMS_FILE" ] || { echo "TERMS_JSON: cannot read '$TERMS_FILE'" >&2; exit 2; }
TERMS=$(jq -e 'if type == "object" then .terms // . else empty end' "$TERMS_FILE") ||
  { echo "TERMS_JSON: '$TERMS_FILE' is not a JSON object" >&2; exit 2; }
MISSING=$(jq -r '[("parties", "partner", "reporter", "commission_rate", "attribution_window",
  "validation_window", "valid_from", "valid_until", "currency") as $k | select(has($k) | not) | $k]
  | join(", ")' <<<"$TERMS")
[ -z "$MISSING" ] || { echo "TERMS_JSON: missing $MISSING" >&2; exit 2; }
jq -e '.parties | type == "array" and length > 0 and all(.[]; has("account") and has("share"))' \
  <<<"$TERMS" >/dev/null || { echo "TERMS_JSON: parties must be a list of {account, share}" >&2; exit 2; }
# From here on, a command that fails (the node, an address without code, a value cast cannot encode) ends
# the run with status 2 and cast's own message.
trap 'echo "$0: stopped at line $LINENO" >&2; exit 2' ERR

LEDGER=$($CAST to-check-sum-address "$LEDGER")
# Every read is pinned to one block, so the events and the totals describe the same state.
HEAD=$($CAST block-number --rpc-url "$RPC")
CHAIN_ID=$($CAST chain-id --rpc-url "$RPC")
# The ledger checks every batch's terms against its own agreements contract: read that one.
AGREEMENTS=$($CAST call --rpc-url "$RPC" --block "$HEAD" "$LEDGER" "agreements()(address)")

# 1. The terms as the ABI tuple AgreementTerms; keccak256(abi.encode(terms)) must be the stored hash.
TERMS_T='((address,uint32)[],address,address,uint32,uint32,uint32,uint40,uint40,bytes32,uint256)'
CURRENCY=$(jq -r '.currency' <<<"$TERMS")
TUPLE=$(jq -r --arg cur "$($CAST format-bytes32-string "$CURRENCY")" '"([" +
  ([.parties[] | "(\(.account),\(.share))"] | join(",")) + "],\(.partner),\(.reporter),"
  + "\(.commission_rate),\(.attribution_window),\(.validation_window),\(.valid_from),\(.valid_until),"
  + "\($cur),\(.supersedes // 0))"' <<<"$TERMS")
ENCODED=$($CAST abi-encode "f($TERMS_T)" "$TUPLE")
HASH=$($CAST keccak "$ENCODED")
ON_CHAIN=$($CAST call --rpc-url "$RPC" --block "$HEAD" --json "$AGREEMENTS" \
  "agreementOf(uint256)((bytes32,uint8,uint32,uint8,uint40,uint40,uint40,uint40))" "$ID" | jq -r '.[0][0]')

read -r -a ACCOUNTS <<<"$(jq -r '[.parties[].account] | join(" ")' <<<"$TERMS")"
read -r -a SHARES <<<"$(jq -r '[.parties[].share] | join(" ")' <<<"$TERMS")"
RATE=$(jq -r '.commission_rate' <<<"$TERMS")
N=${#ACCOUNTS[@]}

# 2. The ledger's events for this agreement (agreementId is the first indexed topic of all three).
logs() {
  $CAST logs --rpc-url "$RPC" --address "$LEDGER" --from-block "$FROM" --to-block "$HEAD" --json "$1" "$ID"
}
RECORDED=$(logs 'ConversionsRecorded(uint256 indexed,uint256 indexed,bytes32,(uint256,bytes32,bytes32)[])')
REVERSALS=$(logs 'ConversionReversed(uint256 indexed,uint256 indexed,uint64 indexed,uint256)')
FINALS=$(logs 'BatchFinalized(uint256 indexed,uint256 indexed)')
REVERSED_IDS=" " FINAL_BATCHES=" " # the conversion ids reversed, the batches finalized
for t in $(jq -r '.[].topics[3]' <<<"$REVERSALS"); do REVERSED_IDS+="$($CAST to-dec "$t") "; done
for t in $(jq -r '.[].topics[2]' <<<"$FINALS"); do FINAL_BATCHES+="$($CAST to-dec "$t") "; done

# 3. Each conversion's split, exactly as the contract computes it, into the bucket its events put it in:
#    reversed if a ConversionReversed names it, else final if its batch was finalized, else provisional.
#    SUMS[3*j + k] is party j's total in bucket k (0 provisional, 1 final, 2 reversed).
SUMS=()
for ((i = 0; i < 3 * N; i++)); do SUMS[i]=0; done
CONVERSIONS=0
while read -r batch_topic data; do
  [ -n "$batch_topic" ] || continue
  batch=$($CAST to-dec "$batch_topic")
  # The event's data is (conversionsRoot, conversions); each conversion's first word is its ConversionData,
  # decoded as bytes32 to keep it in hex: id [0,64), time [64,104), recommendedAt [104,144), value [144,256).
  decoded=$($CAST decode-abi --json "f()(bytes32,(bytes32,bytes32,bytes32)[])" "$data")
  for word in $(jq -r '.[1][][0]' <<<"$decoded"); do
    id=$($CAST to-dec "0x${word:50:16}")
    value=$($CAST shr --base-out 10 "$word" 144)
    if [[ $REVERSED_IDS == *" $id "* ]]; then k=2
    elif [[ $FINAL_BATCHES == *" $batch "* ]]; then k=1
    else k=0; fi
    # commission = floor(value * rate / 1e6); party j >= 1 gets floor(commission * share_j / 1e6);
    # parties[0] gets the rest.
    commission=$(bc <<<"$value * $RATE / 1000000")
    rest=$commission
    for ((j = 1; j < N; j++)); do
      amount=$(bc <<<"$commission * ${SHARES[j]} / 1000000")
      rest=$(bc <<<"$rest - $amount")
      SUMS[3 * j + k]=$(bc <<<"${SUMS[3 * j + k]} + $amount")
    done
    SUMS[k]=$(bc <<<"${SUMS[k]} + $rest")
    CONVERSIONS=$((CONVERSIONS + 1))
  done
done <<<"$(jq -r '.[] | .topics[2] + " " + .data' <<<"$RECORDED")"

# 4. The ledger's own totals, party by party, and the report.
PARTIES=""
for ((j = 0; j < N; j++)); do
  # three lines, "provisional", "final", "reversed"; cast may add a rounded form ("166001 [1.66e5]")
  totals=$($CAST call --rpc-url "$RPC" --block "$HEAD" "$LEDGER" \
    "totalsOf(uint256,address)(uint256,uint256,uint256)" "$ID" "${ACCOUNTS[j]}")
  read -r -a T <<<"$(cut -d' ' -f1 <<<"$totals" | tr '\n' ' ')"
  PARTIES+=$(jq -n --arg account "${ACCOUNTS[j]}" --argjson share "${SHARES[j]}" \
    --arg p "${SUMS[3 * j]}" --arg f "${SUMS[3 * j + 1]}" --arg r "${SUMS[3 * j + 2]}" \
    --arg lp "${T[0]}" --arg lf "${T[1]}" --arg lr "${T[2]}" \
    '{account: $account, share: $share,
      from_events: {provisional: $p, final: $f, reversed: $r},
      ledger_totals: {provisional: $lp, final: $lf, reversed: $lr},
      matches: ($p == $lp and $f == $lf and $r == $lr)}')
done
REPORT=$(jq -s --argjson id "$ID" --argjson chain_id "$CHAIN_ID" --argjson block "$HEAD" \
  --arg ledger "$LEDGER" --arg agreements "$AGREEMENTS" --arg currency "$CURRENCY" \
  --arg hash "$HASH" --arg on_chain "$ON_CHAIN" \
  --argjson recorded "$(jq length <<<"$RECORDED")" --argjson reversals "$(jq length <<<"$REVERSALS")" \
  --argjson finals "$(jq length <<<"$FINALS")" --argjson conversions "$CONVERSIONS" \
  '{agreement_id: $id, chain_id: $chain_id, block: $block, ledger: $ledger, agreements: $agreements,
    currency: $currency,
    terms_hash: {computed: $hash, on_chain: $on_chain, matches: ($hash == $on_chain)},
    events: {ConversionsRecorded: $recorded, ConversionReversed: $reversals, BatchFinalized: $finals},
    conversions: $conversions, parties: .,
    ok: (($hash == $on_chain) and all(.[]; .matches))}' <<<"$PARTIES")
echo "$REPORT"
jq -e '.ok' <<<"$REPORT" >/dev/null || exit 1
