// The partner's settlement ledger: agreements, terms and parties, the statement per party, settled value
// over time, the conversions (filterable, exportable to CSV) and a check of all of it against the chain; and
// the partner's marketing funnel, live.
import {
  $, alertIn, api, ApiError, describe, download, el, fromUnix, money, show, store, svgChart, toCsv, wireSignIn,
} from "./common.js";
import { mountFunnel } from "./funnel.js";

const PAGE = 100; // rows shown per "Show more"
const FETCH = 1000; // the statement endpoint's largest page
const ON_CHAIN = new Set(["settled", "reversal_pending", "final"]); // counted in provisional or final

const state = { agreements: [], agreement: null, currency: "CNY", shown: PAGE, listed: [] };
const auth = () => ({ key: store.get("partnerKey") });
let funnel = null;

function signedOut(message) {
  if (funnel) funnel.stop();
  funnel = null;
  store.clear("partnerKey");
  show($("#ledger"), false);
  show($("#signin"), true);
  alertIn($("#error"), message ? new Error(message) : null);
}

function handle(error) {
  if (error instanceof ApiError && error.status === 401) signedOut(describe(error));
  else alertIn($("#error"), error);
}

async function start() {
  alertIn($("#error"), null);
  try {
    const { agreements } = await api("/api/v1/ledger/agreements", { auth: auth() });
    state.agreements = agreements;
    show($("#signin"), false);
    show($("#ledger"), true);
    if (!funnel) {
      funnel = mountFunnel({ root: $("#funnel"), path: "/api/v1/funnel", auth, onAuthError: (e) => signedOut(describe(e)) });
    }
    const select = $("#agreement-select");
    select.replaceChildren(
      ...agreements.map((a) => el("option", { value: a.id }, `#${a.id} · ${a.status} · ${a.terms.currency}`)),
    );
    if (!agreements.length) {
      alertIn($("#error"), new Error("You have no agreement yet: the operator proposes one and you accept it."));
      return;
    }
    await openAgreement(agreements[0].id);
  } catch (error) {
    handle(error);
  }
}

async function openAgreement(id) {
  state.agreement = state.agreements.find((a) => a.id === Number(id));
  state.currency = state.agreement.terms.currency || "CNY";
  $("#verify-result").replaceChildren();
  renderTerms(state.agreement);
  await Promise.all([loadStatement(), loadConversions()]);
}

function partyName(account) {
  const a = state.agreement;
  const party = a.parties.find((p) => p.account.toLowerCase() === account.toLowerCase());
  if (party && party.name) return party.name;
  if (account.toLowerCase() === a.terms.partner.toLowerCase()) return "you (partner)";
  const index = a.terms.parties.findIndex((p) => p.account.toLowerCase() === account.toLowerCase());
  return index >= 0 ? `party ${index + 1}` : "party";
}

function days(seconds) {
  const d = seconds / 86400;
  return `${Number.isInteger(d) ? d : d.toFixed(2)} days`;
}

function renderTerms(a) {
  const t = a.terms;
  const facts = [
    ["Status", a.status],
    ["Terms hash (on chain)", el("code", { class: "hash" }, a.terms_hash)],
    ["Currency", t.currency],
    ["Commission", `${(t.commission_rate / 10_000).toFixed(2)} % of each conversion's value`],
    ["Attribution window", days(t.attribution_window)],
    ["Validation window", `${days(t.validation_window)} (a conversion can be reversed until then)`],
    ["Valid", `${fromUnix(t.valid_from)} to ${fromUnix(t.valid_until)}`],
    ["Reporter", el("code", { class: "hash" }, t.reporter)],
  ];
  $("#terms").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("#parties").replaceChildren(
    ...a.parties.map((p) =>
      el(
        "tr",
        {},
        el("td", {}, partyName(p.account)),
        el("td", {}, el("code", { class: "hash" }, p.account)),
        el("td", { class: "num" }, `${p.share_percent.toFixed(2)} %`),
      ),
    ),
  );
}

async function loadStatement() {
  const s = await api(`/api/v1/ledger/agreements/${state.agreement.id}/statement?limit=0`, { auth: auth() });
  const cell = (minor) => el("td", { class: "num", dataset: { minor: String(minor) } }, money(minor, s.currency));
  $("#statement").replaceChildren(
    ...s.parties.map((p) =>
      el(
        "tr",
        { dataset: { account: p.account } },
        el("th", { scope: "row" }, partyName(p.account), el("span", { class: "wide-only" }, el("br"), el("code", { class: "hash small" }, p.account))),
        cell(p.provisional),
        cell(p.final),
        cell(p.reversed),
      ),
    ),
  );
  $("#statement-total").replaceChildren(
    el("tr", { dataset: { account: "total" } }, el("th", { scope: "row" }, "Total"), cell(s.totals.provisional), cell(s.totals.final), cell(s.totals.reversed)),
  );
  const o = s.outbox;
  $("#statement-note").textContent =
    `Provisional: recorded on chain, still reversible. Final: past the validation window. ` +
    `Not yet on chain: ${o.pending} conversion(s) worth ${money(o.pending_value, s.currency)}; rejected by the chain: ${o.rejected}.`;
}

function filters() {
  const params = new URLSearchParams();
  const stateValue = $("#state-filter").value;
  if (stateValue) params.set("state", stateValue);
  for (const [name, input] of [["since", $("#since-filter")], ["until", $("#until-filter")]]) {
    if (input.value) params.set(name, String(Math.floor(Date.parse(input.value + "Z") / 1000)));
  }
  return params;
}

/** Every conversion matching the filters (the endpoint pages by 1,000). */
async function fetchAll(params) {
  const items = [];
  for (let offset = 0; ; offset += FETCH) {
    params.set("limit", String(FETCH));
    params.set("offset", String(offset));
    const s = await api(`/api/v1/ledger/agreements/${state.agreement.id}/statement?${params}`, { auth: auth() });
    items.push(...s.conversions.items);
    if (items.length >= s.conversions.total || !s.conversions.items.length) return items;
  }
}

async function loadConversions() {
  // the chart covers every conversion; the list follows the filters (one fetch when there are none)
  const params = filters();
  const all = await fetchAll(new URLSearchParams());
  const listed = [...params.keys()].length ? await fetchAll(params) : all;
  state.listed = listed;
  state.shown = PAGE;
  renderConversions();
  renderChart(all.filter((c) => ON_CHAIN.has(c.state)));
}

function renderConversions() {
  const rows = state.listed.slice(0, state.shown).map((c) =>
    el(
      "tr",
      { dataset: { id: String(c.id), state: c.state } },
      el("td", {}, c.id),
      el("td", {}, c.order_id),
      el("td", {}, c.product_id || ""),
      el("td", {}, fromUnix(c.occurred_at)),
      el("td", { class: "num" }, money(c.value, state.currency)),
      el("td", { class: "num" }, money(c.commission, state.currency)),
      el("td", {}, el("span", { class: `badge ${c.state === "rejected" || c.state === "reversed" ? "bad" : c.state === "final" || c.state === "settled" ? "ok" : "warn"}` }, c.state.replace("_", " ")), c.error ? el("div", { class: "small muted" }, c.error) : null),
      el("td", { class: "num" }, c.block_number ?? ""),
      el(
        "td",
        {},
        c.tx_hash ? el("code", { class: "hash", dataset: { tx: c.tx_hash } }, c.tx_hash) : el("span", { class: "muted" }, "not yet on chain"),
        c.reversal_tx_hash ? el("div", { class: "small" }, "reversed by ", el("code", { class: "hash", dataset: { reversalTx: c.reversal_tx_hash } }, c.reversal_tx_hash)) : null,
      ),
    ),
  );
  $("#conversions").replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No conversion matches."))]),
  );
  const n = state.listed.length;
  $("#conversions-count").textContent = `${n} conversion(s) match; showing ${Math.min(n, state.shown)}.`;
  show($("#more"), n > state.shown);
}

function exportCsv() {
  const header = [
    "id", "order_id", "recommendation_id", "product_id", "occurred_at_utc", "occurred_at_unix", "currency",
    "value_minor", "commission_minor", ...state.agreement.terms.parties.map((_, i) => `party_${i + 1}_minor`),
    "state", "batch_id", "block_number", "tx_hash", "reversal_tx_hash",
  ];
  const rows = state.listed.map((c) => [
    c.id, c.order_id, c.recommendation_id, c.product_id, fromUnix(c.occurred_at), c.occurred_at, state.currency,
    c.value, c.commission, ...c.amounts, c.state, c.batch_id, c.block_number, c.tx_hash, c.reversal_tx_hash,
  ]);
  download(`agreement-${state.agreement.id}-conversions.csv`, toCsv(header, rows), "text/csv");
  $("#conversions-count").textContent = `Exported ${rows.length} conversion(s) to CSV.`;
}

/** Bars: commission settled per period; line: cumulative. Periods scale with the span (minute to month). */
function renderChart(conversions) {
  const box = $("#chart");
  if (!conversions.length) {
    box.replaceChildren(el("p", { class: "muted" }, "Nothing settled on chain yet."));
    $("#chart-caption").textContent = "";
    return;
  }
  const times = conversions.map((c) => c.occurred_at);
  const lo = Math.min(...times);
  const hi = Math.max(...times);
  const span = Math.max(hi - lo, 1);
  const steps = [60, 3600, 86400, 7 * 86400, 30 * 86400];
  const names = ["minute", "hour", "day", "week", "30 days"];
  let i = steps.findIndex((s) => span / s <= 60);
  if (i < 0) i = steps.length - 1;
  const step = steps[i];
  const start = Math.floor(lo / step) * step;
  const n = Math.floor((hi - start) / step) + 1;
  const sums = new Array(n).fill(0);
  for (const c of conversions) sums[Math.floor((c.occurred_at - start) / step)] += c.commission;
  const cumulative = [];
  sums.reduce((acc, v, k) => (cumulative[k] = acc + v), 0);
  const total = cumulative[n - 1];

  // drawn at the box's own width, so labels keep their size on a phone and on a desktop
  const W = Math.max(300, Math.round(box.clientWidth || 640)), H = 240, L = 92, R = 12, T = 12, B = 34;
  const x = (k) => L + ((W - L - R) * (k + 0.5)) / n;
  const y = (v) => T + (H - T - B) * (1 - v / (total || 1));
  const bw = Math.min(48, Math.max(1, ((W - L - R) / n) * 0.7));
  const summary = `Commission settled on chain: ${money(total, state.currency)} in ${conversions.length} conversion(s), from ${fromUnix(lo)} to ${fromUnix(hi)}, per ${names[i]}.`;
  const { svg, add } = svgChart(W, H, summary);
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" });
  for (const frac of [0, 0.5, 1]) {
    add("text", { x: L - 6, y: y(total * frac) + 4, "text-anchor": "end" }, money(Math.round(total * frac), state.currency));
  }
  sums.forEach((v, k) => {
    if (!v) return;
    const rect = add("rect", { x: x(k) - bw / 2, y: y(v), width: bw, height: H - B - y(v), class: "bar" });
    add("title", {}, `${fromUnix(start + k * step)}: ${money(v, state.currency)}`, rect);
  });
  add("polyline", { points: cumulative.map((v, k) => `${x(k)},${y(v)}`).join(" "), class: "line" });
  cumulative.forEach((v, k) => add("circle", { cx: x(k), cy: y(v), r: 3, class: "dot" }));
  if (n === 1 || W < 480) add("text", { x: (L + W - R) / 2, y: H - 10, "text-anchor": "middle" }, `${fromUnix(start)} to ${fromUnix(start + n * step)}`);
  else {
    add("text", { x: L, y: H - 10 }, fromUnix(start));
    add("text", { x: W - R, y: H - 10, "text-anchor": "end" }, fromUnix(start + (n - 1) * step));
  }
  box.replaceChildren(svg);
  $("#chart-caption").textContent = `${summary} Bars: per ${names[i]}; line: cumulative.`;
}

async function verify() {
  const button = $("#verify");
  const out = $("#verify-result");
  button.disabled = true;
  out.replaceChildren(el("p", { class: "alert warn" }, "Pending: reading the ledger's events and totals from the chain…"));
  try {
    const r = await api(`/api/v1/ledger/agreements/${state.agreement.id}/reconcile`, { auth: auth() });
    const problems = [];
    if (!r.terms_hash_matches) problems.push("The terms stored here do not hash to the terms hash on chain.");
    for (const p of r.parties) {
      for (const [label, diff] of [["statement − chain events", p.statement_minus_events], ["ledger totals − chain events", p.ledger_minus_events]]) {
        for (const [bucket, value] of Object.entries(diff)) {
          if (value) problems.push(`${partyName(p.account)} ${bucket}: ${label} = ${money(value, state.currency)}`);
        }
      }
    }
    const c = r.conversions;
    if (c.missing_on_chain.length) problems.push(`Not found on chain: conversions ${c.missing_on_chain.join(", ")}`);
    if (c.missing_in_statement.length) problems.push(`On chain but not in the statement: ${c.missing_in_statement.join(", ")}`);
    if (c.mismatched.length) problems.push(`Amounts differ for conversions ${c.mismatched.map((m) => m.id ?? JSON.stringify(m)).join(", ")}`);
    const events = Object.entries(r.events).map(([k, v]) => `${v} ${k}`).join(", ");
    out.replaceChildren(
      el(
        "div",
        { class: `alert ${r.ok ? "ok" : "error"}`, dataset: { ok: String(r.ok) } },
        el("strong", {}, r.ok ? `Verified: the statement matches the chain at block ${r.checked_at_block}.` : `Mismatch found at block ${r.checked_at_block}.`),
        el("p", { class: "small" }, `Events read from the node: ${events}. ${c.on_chain} conversion(s) on chain, ${c.in_statement} in the statement.`),
        problems.length ? el("ul", {}, problems.map((p) => el("li", {}, p))) : null,
      ),
    );
  } catch (error) {
    out.replaceChildren(el("p", { class: "alert error" }, `Failed: ${describe(error)}`));
    if (error instanceof ApiError && error.status === 401) signedOut(describe(error));
  } finally {
    button.disabled = false;
  }
}

wireSignIn($("#signin-form"), "partnerKey", () => start());
$("#sign-out").addEventListener("click", () => signedOut(null));
$("#agreement-select").addEventListener("change", (e) => openAgreement(e.target.value).catch(handle));
$("#filters").addEventListener("submit", (e) => {
  e.preventDefault();
  alertIn($("#error"), null);
  fetchAll(filters())
    .then((items) => {
      state.listed = items;
      state.shown = PAGE;
      renderConversions();
    })
    .catch(handle);
});
$("#export").addEventListener("click", exportCsv);
$("#more").addEventListener("click", () => {
  state.shown += PAGE;
  renderConversions();
});
$("#verify").addEventListener("click", verify);

if (store.get("partnerKey")) start();
else show($("#signin"), true);
