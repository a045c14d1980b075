// The learner's consent dashboard: every partner × purpose, grant and revoke (through the registrar, or
// signed by the learner's own wallet and relayed), the on-chain transaction and receipt of each change,
// the history, and the export and erasure of the learner's data.
import {
  $, alertIn, api, ApiError, confirmDialog, describe, download, el, percent, show, store, takeFromFragment,
  when, wireSignIn,
} from "./common.js";

const ui = {
  signin: $("#signin"),
  error: $("#error"),
  account: $("#account"),
  partners: $("#partners"),
  historyCard: $("#history-card"),
  history: $("#history"),
  dataCard: $("#data-card"),
  dataStatus: $("#data-status"),
  erased: $("#erased"),
};

const state = {
  me: null,
  purposes: [],
  partners: [],
  granted: new Map(), // "partner/purpose" -> bool, as the chain said
  last: new Map(), // "partner/purpose" -> newest consent event
  busy: new Set(),
};

const key = (partnerId, purpose) => `${partnerId}/${purpose}`;
const auth = () => ({ bearer: store.get("token") });
const walletPath = () => Boolean(state.me && state.me.wallet && window.ethereum);

function signedOut(message) {
  store.clear("token");
  for (const node of [ui.account, ui.historyCard, ui.dataCard, $("#profile-card")]) show(node, false);
  ui.partners.replaceChildren();
  show(ui.signin, true);
  alertIn(ui.error, message ? new Error(message) : null);
}

async function load() {
  alertIn(ui.error, null);
  try {
    // the chain being away must not hide the rest of the page: its state is then unknown, and shown so
    const chainState = api("/api/v1/me/consents", { auth: auth() }).catch((error) => {
      if (error instanceof ApiError && error.status === 503) return { consents: [], unavailable: error.message };
      throw error;
    });
    const [me, purposes, partners, consents, history] = await Promise.all([
      api("/api/v1/me", { auth: auth() }),
      api("/api/v1/purposes"),
      api("/api/v1/partners"),
      chainState,
      api("/api/v1/me/consents/history", { auth: auth() }),
    ]);
    state.me = me;
    state.purposes = purposes.purposes;
    state.platformNotice = purposes.platform_notice_version;
    state.partners = partners;
    applyConsents(consents);
    applyHistory(history.history);
    show(ui.signin, false);
    renderAccount(consents);
    renderPartners();
    renderHistory(history.history);
    show(ui.historyCard, true);
    show(ui.dataCard, true);
    refreshProfile();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signedOut(describe(error));
    else alertIn(ui.error, error);
  }
}

function applyConsents(consents) {
  state.chainDown = consents.unavailable || null;
  state.granted.clear();
  for (const c of consents.consents) state.granted.set(key(c.partner_id, c.purpose), c.granted);
  state.checkedAt = consents.consents.length ? consents.consents[0].checked_at_block : null;
}

function applyHistory(events) {
  state.last.clear();
  for (const e of events) state.last.set(key(e.partner_id, e.purpose), e); // oldest first: newest wins
}

function renderAccount() {
  $("#pseudonym").textContent = state.me.pseudonym;
  const note = $("#wallet-note");
  if (state.me.wallet) {
    note.textContent = window.ethereum
      ? `Your changes are signed by your wallet ${state.me.wallet}; KnowLedger only relays them.`
      : `Your consents are signed by your wallet ${state.me.wallet}. Open this page in a browser with that ` +
        "wallet to change them.";
    show(note, true);
  } else show(note, false);
  $("#checked-at").textContent = state.chainDown
    ? `The chain cannot be read right now (${state.chainDown}): your consents cannot be shown or changed. Reload to try again.`
    : state.checkedAt === null
      ? ""
      : `Switches show the chain's state at block ${state.checkedAt}.`;
  $("#checked-at").className = state.chainDown ? "alert warn" : "small muted";
  show(ui.account, true);
}

function renderPartners() {
  const cards = state.partners.map((partner) => {
    const headingId = `ph-${partner.id}`;
    return el(
      "section",
      { class: "card", "aria-labelledby": headingId, dataset: { partner: partner.id } },
      el("h2", { id: headingId }, partner.name),
      el("p", { class: "small muted" }, `${partner.kind} · on-chain address `, el("code", { class: "hash" }, partner.address)),
      el(
        "div",
        { class: "notice" },
        el("p", {}, partner.notice_text || "No notice published yet."),
        el("p", { class: "small muted" }, `Partner notice version ${partner.notice_version}`),
      ),
      state.purposes.map((purpose) => purposeRow(partner, purpose, headingId)),
    );
  });
  ui.partners.replaceChildren(...cards);
}

function purposeRow(partner, purpose, headingId) {
  const k = key(partner.id, purpose.id);
  const base = `${partner.id}-${purpose.id}`;
  const canWrite = !state.chainDown && (!state.me.wallet || Boolean(window.ethereum));
  const button = el("button", {
    type: "button",
    class: "switch",
    role: "switch",
    id: `sw-${base}`,
    "aria-checked": String(Boolean(state.granted.get(k))),
    "aria-labelledby": `${headingId} t-${base}`,
    "aria-describedby": `n-${base}`,
    disabled: !canWrite,
    dataset: { partner: partner.id, purpose: purpose.id },
    onclick: () => toggle(partner, purpose),
  });
  const status = el("div", { class: "status", id: `st-${base}`, role: "status", "aria-live": "polite" });
  const last = state.last.get(k);
  if (last) showMined(status, last, partner, purpose, false);
  if (last && last.action === "grant" && !state.chainDown && !state.granted.get(k)) {
    // the chain no longer holds this grant: it expired, or a new notice version was published since
    status.append(el("div", { class: "small", dataset: { lapsed: "true" } }, "This grant is no longer in force (it expired, or the notice changed since you agreed): switch it on to agree again."));
  }
  const row = el(
    "div",
    { class: "purpose" },
    button,
    el(
      "div",
      { class: "text" },
      el(
        "div",
        { class: "row" },
        el("h3", { id: `t-${base}` }, purpose.title),
        el("span", { class: "badge", id: `s-${base}`, "aria-hidden": "true" }),
      ),
      el("p", { id: `n-${base}`, class: "small" }, purpose.notice),
      el(
        "p",
        { class: "small muted" },
        `Notice version ${state.platformNotice ?? "unknown"} (platform) / ${partner.notice_version} (partner) · uses: ${purpose.pii_categories.join(", ")}`,
      ),
    ),
    status,
  );
  paint(row.querySelector(".badge"), state.chainDown ? null : Boolean(state.granted.get(k)));
  return row;
}

/** The visible word beside the switch (the switch itself tells assistive technology via aria-checked). */
function paint(badge, granted) {
  badge.textContent = granted === null ? "unknown" : granted ? "granted" : "not granted";
  badge.className = `badge ${granted === null ? "warn" : granted ? "ok" : ""}`;
}

function setSwitch(button, granted) {
  button.setAttribute("aria-checked", String(granted));
  const badge = document.getElementById(button.id.replace(/^sw-/, "s-"));
  if (badge) paint(badge, granted);
}

function setStatus(node, kind, ...content) {
  node.className = `status ${kind}`;
  node.dataset.state = kind;
  node.replaceChildren(...content);
}

function showMined(node, event, partner, purpose, fresh = true) {
  const verb = event.action === "grant" ? "Granted" : "Revoked";
  const content = [
    el("strong", {}, fresh ? `${verb}: mined in block ${event.block_number}.` : `Last change: ${verb.toLowerCase()} in block ${event.block_number}`),
    " Transaction ",
    el("code", { class: "hash", dataset: { tx: event.tx_hash } }, event.tx_hash),
  ];
  if (event.receipt_id) {
    content.push(
      " ",
      el("button", {
        type: "button",
        class: "small",
        "aria-label": `Show the consent receipt for ${partner.name}: ${purpose.title}`,
        onclick: () => showReceipt(event.receipt_id),
      }, "Receipt"),
    );
  }
  setStatus(node, fresh ? "mined" : "idle", ...content);
  if (!fresh) node.className = "status small";
}

async function toggle(partner, purpose) {
  const k = key(partner.id, purpose.id);
  if (state.busy.has(k)) return;
  const base = `${partner.id}-${purpose.id}`;
  const button = $(`#sw-${base}`);
  const status = $(`#st-${base}`);
  const action = state.granted.get(k) ? "revoke" : "grant";
  state.busy.add(k);
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  setStatus(
    status,
    "pending",
    walletPath()
      ? "Pending: confirm the signature in your wallet…"
      : `Pending: recording your ${action === "grant" ? "grant" : "revocation"} on chain…`,
  );
  try {
    const event = walletPath()
      ? await walletWrite(partner, purpose, action, status)
      : await api(`/api/v1/me/consents/${encodeURIComponent(partner.id)}/${purpose.id}`, {
          method: action === "grant" ? "PUT" : "DELETE",
          auth: auth(),
        });
    state.granted.set(k, action === "grant");
    state.last.set(k, event);
    setSwitch(button, action === "grant");
    showMined(status, event, partner, purpose, true);
    if (!state.chainDown && event.block_number > (state.checkedAt ?? 0)) {
      state.checkedAt = event.block_number;
      $("#checked-at").textContent = `Switches show the chain's state at block ${state.checkedAt}.`;
    }
    refreshHistory();
    refreshProfile();
  } catch (error) {
    setStatus(
      status,
      "failed",
      el("strong", {}, "Failed: "),
      walletError(error),
      error instanceof ApiError && error.code === "timeout"
        ? " The switch shows what the chain holds now."
        : " Nothing was changed; the switch shows what the chain holds.",
    );
    await rereadSwitch(partner.id, purpose.id, button);
    if (error instanceof ApiError && error.status === 401) signedOut(describe(error));
  } finally {
    state.busy.delete(k);
    button.removeAttribute("aria-busy");
    button.disabled = Boolean(state.chainDown) || (state.me.wallet ? !window.ethereum : false);
  }
}

/** After a failure the switch shows the chain's state, read again; if even that fails, it shows "not
 * granted", never a grant that cannot be confirmed. */
async function rereadSwitch(partnerId, purpose, button) {
  let granted = false;
  try {
    const consents = await api("/api/v1/me/consents", { auth: auth() });
    const row = consents.consents.find((c) => c.partner_id === partnerId && c.purpose === purpose);
    granted = Boolean(row && row.granted);
  } catch (error) {
    granted = false;
  }
  state.granted.set(key(partnerId, purpose), granted);
  setSwitch(button, granted);
}

function walletError(error) {
  if (error && (error.code === 4001 || error.code === "ACTION_REJECTED")) return "you declined the signature in your wallet.";
  return describe(error);
}

/** The wallet path: the service prepares the EIP-712 message, the learner's wallet signs it
 * (eth_signTypedData_v4), and the service relays it; the registry checks the signature on chain. */
async function walletWrite(partner, purpose, action, status) {
  const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
  const account = accounts && accounts[0];
  if (!account || account.toLowerCase() !== state.me.wallet.toLowerCase()) {
    throw new Error(`your wallet is connected as ${account || "no account"}, but your consents are signed by ${state.me.wallet}: switch accounts in the wallet.`);
  }
  const prepared = await api(`/api/v1/me/consents/${encodeURIComponent(partner.id)}/${purpose.id}/typed-data`, {
    method: "POST",
    body: { action },
    auth: auth(),
  });
  const signature = await window.ethereum.request({
    method: "eth_signTypedData_v4",
    params: [account, JSON.stringify(prepared.typed_data)],
  });
  setStatus(status, "pending", "Pending: signed; relaying to the chain…");
  const body = { action, message: prepared.typed_data.message, signature };
  if (prepared.receipt) body.receipt = prepared.receipt;
  return api("/api/v1/consents/relay", { method: "POST", body });
}

/** The learner's own profile: segment, topics, propensities, and per partner they let recommend, the
 * products it would be shown with the learner's courses behind each reason. */
async function refreshProfile() {
  const card = $("#profile-card");
  let view;
  try {
    view = await api("/api/v1/me/profile", { auth: auth() });
  } catch {
    show(card, false);
    return;
  }
  if (!view.has_profile) {
    show(card, false);
    return;
  }
  $("#profile-segment").textContent = view.segment ?? "not yet assigned";
  $("#profile-topics").replaceChildren(
    ...view.topics.map((t) => el("li", {}, `${t.topic} (${percent(t.weight, 0)})`)),
  );
  $("#profile-propensities").replaceChildren(
    ...Object.entries(view.propensities).map(([kind, p]) => el("li", {}, `${kind}: ${percent(p, 1)}`)),
  );
  $("#profile-recommendations").replaceChildren(
    ...view.recommendations.map((r) =>
      el(
        "section",
        { "aria-label": `What ${r.partner_name} would suggest` },
        el("h3", {}, `What ${r.partner_name} would suggest, and why`),
        el(
          "ul",
          {},
          ...r.products.map((p) =>
            el(
              "li",
              {},
              el("strong", {}, p.name),
              ` — topics: ${p.topics.join("; ") || "none"}`,
              p.courses.length ? ` — because of your courses: ${p.courses.map((c) => c.title).join("; ")}` : "",
            ),
          ),
        ),
      ),
    ),
  );
  const note = $("#profile-note");
  note.textContent = view.note ?? "";
  show(note, Boolean(view.note));
  show(card, true);
}

async function refreshHistory() {
  try {
    const history = await api("/api/v1/me/consents/history", { auth: auth() });
    renderHistory(history.history);
  } catch (error) {
    // the switch already shows the mined change; the table catches up on the next load
  }
}

function renderHistory(events) {
  const names = new Map(state.partners.map((p) => [p.id, p.name]));
  const titles = new Map(state.purposes.map((p) => [p.id, p.title]));
  const rows = [...events].reverse().map((e) =>
    el(
      "tr",
      { dataset: { tx: e.tx_hash } },
      el("td", {}, when(e.created_at)),
      el("td", {}, names.get(e.partner_id) || e.partner_id),
      el("td", {}, titles.get(e.purpose) || e.purpose),
      el("td", {}, e.action === "grant" ? "granted" : "revoked"),
      el("td", {}, e.path === "registrar" ? "KnowLedger for you" : "your wallet"),
      el("td", { class: "num" }, e.block_number),
      el("td", {}, el("code", { class: "hash" }, e.tx_hash)),
      el(
        "td",
        {},
        e.receipt_id
          ? el("button", { type: "button", onclick: () => showReceipt(e.receipt_id), "aria-label": `View receipt ${e.receipt_id}` }, "View")
          : "",
      ),
    ),
  );
  ui.history.replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No changes yet."))]),
  );
}

async function showReceipt(receiptId) {
  try {
    const r = await api(`/api/v1/me/receipts/${encodeURIComponent(receiptId)}`, { auth: auth() });
    $("#receipt-hash").textContent = r.receipt_hash;
    $("#receipt-block").textContent = r.block_number;
    $("#receipt-json").textContent = JSON.stringify(r.receipt, null, 2);
    show($("#receipt-card"), true);
    $("#receipt-title").setAttribute("tabindex", "-1");
    $("#receipt-title").focus();
  } catch (error) {
    alertIn(ui.error, error);
  }
}

async function downloadData() {
  if (!(await confirmDialog($("#confirm-download")))) return;
  ui.dataStatus.textContent = "Preparing your data…";
  try {
    const data = await api("/api/v1/me/export", { auth: auth() });
    download(`knowledger-data-${state.me.pseudonym.slice(2, 10)}.json`, JSON.stringify(data, null, 2), "application/json");
    ui.dataStatus.textContent = "Downloaded.";
  } catch (error) {
    ui.dataStatus.textContent = "";
    alertIn(ui.error, error);
  }
}

async function erase() {
  if (!(await confirmDialog($("#confirm-erase")))) return;
  const button = $("#erase");
  button.disabled = true;
  ui.dataStatus.textContent = "Pending: revoking your consents on chain, then erasing…";
  try {
    const result = await api("/api/v1/me", { method: "DELETE", body: { confirm: "erase" }, auth: auth() });
    store.clear("token");
    for (const node of [ui.account, ui.historyCard, ui.dataCard, $("#receipt-card")]) show(node, false);
    ui.partners.replaceChildren();
    const revoked = result.revoked_on_chain || [];
    $("#erased-detail").replaceChildren(
      el("p", {}, revoked.length ? `${revoked.length} consent(s) were revoked on chain:` : "No consent was left to revoke."),
      revoked.length
        ? el("ul", {}, revoked.map((r) => el("li", {}, `${r.partner_id}: ${r.purpose} · transaction `, el("code", { class: "hash" }, r.tx_hash))))
        : null,
      result.wallet_consents ? el("p", {}, result.wallet_consents) : null,
      el("p", { class: "small muted" }, `Kept: ${result.kept}.`),
    );
    show(ui.erased, true);
    $("#erased-title").setAttribute("tabindex", "-1");
    $("#erased-title").focus();
  } catch (error) {
    ui.dataStatus.textContent = "";
    button.disabled = false;
    alertIn(ui.error, error);
  }
}

wireSignIn($("#signin-form"), "token", () => load());
$("#sign-out").addEventListener("click", () => signedOut(null));
$("#download").addEventListener("click", downloadData);
$("#erase").addEventListener("click", erase);
$("#receipt-close").addEventListener("click", () => show($("#receipt-card"), false));

if (takeFromFragment("token", "token")) load();
else show(ui.signin, true);
