// The operator's page: the running A/B experiment (rates with confidence intervals, the difference and its
// interval, the sample-ratio check), every partner's marketing funnel and the webhook notifications that keep
// failing (both live), the served model and the offline recommender benchmark with its plot.
import { $, alertIn, api, ApiError, describe, el, percent, show, store, svgChart, when, wireSignIn } from "./common.js";
import { mountFunnel } from "./funnel.js";

const METRICS = ["ndcg@10", "map", "precision@10", "recall@10"];
const EXTRA_METRICS = ["hr@1"];
const auth = () => ({ key: store.get("operatorKey") });
let plotUrl = null;
let funnel = null;

function signedOut(message) {
  if (funnel) funnel.stop();
  funnel = null;
  store.clear("operatorKey");
  show($("#content"), false);
  show($("#signin"), true);
  alertIn($("#error"), message ? new Error(message) : null);
}

async function start() {
  alertIn($("#error"), null);
  try {
    const [experiment, model] = await Promise.all([
      api("/api/v1/operator/experiment", { auth: auth() }),
      api("/api/v1/operator/model", { auth: auth() }),
    ]);
    show($("#signin"), false);
    show($("#content"), true);
    if (!funnel) {
      funnel = mountFunnel({
        root: $("#funnel"),
        path: "/api/v1/operator/funnel",
        auth,
        onAuthError: (e) => signedOut(describe(e)),
        also: loadDead,
      });
    }
    renderExperiment(experiment);
    renderModel(model);
    await loadVersions();
    await renderPlot(model);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) signedOut(describe(error));
    else alertIn($("#error"), error);
  }
}

const fixed = (x, digits = 4) =>
  x === null || x === undefined ? "n/a" : Number.isInteger(x) ? String(x) : Number(x).toFixed(digits);
const points = (x) => (x === null || x === undefined ? "n/a" : `${(x * 100).toFixed(2)} points`);

function renderExperiment(x) {
  const kind = !x.running ? "warn" : x.srm && x.srm.mismatch ? "error" : x.comparison && x.comparison.significant ? "ok" : "warn";
  $("#verdict").replaceChildren(
    el(
      "div",
      { class: `alert ${kind}`, dataset: { verdict: x.verdict } },
      el("strong", {}, x.running ? `Experiment ${x.experiment}: ` : "No experiment running: "),
      x.running ? x.verdict : "set KNOWLEDGER_EXPERIMENT_ARMS (e.g. hybrid=0.5,popularity=0.5) to start one.",
    ),
    x.running
      ? el("p", { class: "small muted" }, `Control: ${x.control}. Unit: the learner (assignment is a pure function of the pseudonym, so sticky). ` +
          `A learner converts when any recommendation shown to them leads to a conversion. Significance level ${x.alpha}; ` +
          `at least ${x.min_units_per_arm} learners per arm before a verdict.` + (x.crossed_units ? ` ${x.crossed_units} learner(s) appear in both arms (the weights changed during the experiment): read with care.` : ""))
      : null,
  );
  $("#arms").replaceChildren(
    ...(x.arms.length
      ? x.arms.map((a) =>
          el(
            "tr",
            { dataset: { arm: a.arm } },
            el("th", { scope: "row" }, a.arm, a.arm === x.control ? el("span", { class: "small muted" }, " (control)") : null),
            el("td", { class: "num" }, percent(a.weight, 0)),
            el("td", { class: "num", dataset: { units: String(a.units) } }, a.units),
            el("td", { class: "num" }, a.recommendations),
            el("td", { class: "num", dataset: { converters: String(a.converters) } }, a.converters),
            el("td", { class: "num" }, percent(a.rate, 2)),
            el("td", { class: "num" }, a.rate_ci_low === null ? "n/a" : `${percent(a.rate_ci_low, 2)} to ${percent(a.rate_ci_high, 2)}`),
          ),
        )
      : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No data yet."))]),
  );
  renderDifference(x.comparison);
  renderSrm(x.srm);
}

/** The difference (treatment − control) with its confidence interval, against zero. */
function renderDifference(c) {
  const box = $("#difference");
  if (!c || c.ci_low === null || c.ci_high === null) {
    box.replaceChildren(el("p", { class: "muted" }, "Not enough data in both arms for a comparison."));
    $("#difference-caption").textContent = "";
    return;
  }
  const W = Math.max(300, Math.round(box.clientWidth || 600)), H = 70, pad = 40;
  const extent = Math.max(Math.abs(c.ci_low), Math.abs(c.ci_high), Math.abs(c.difference), 0.01) * 1.2;
  const x = (v) => pad + ((W - 2 * pad) * (v + extent)) / (2 * extent);
  const summary = `${c.treatment} minus ${c.control}: ${points(c.difference)}, 95 % CI ${points(c.ci_low)} to ${points(c.ci_high)} (${c.ci_method}); p = ${fixed(c.p_value)}.`;
  const { svg, add } = svgChart(W, H, summary);
  add("line", { x1: pad, y1: 35, x2: W - pad, y2: 35, class: "axis" });
  add("line", { x1: x(0), y1: 12, x2: x(0), y2: 58, class: "axis", "stroke-dasharray": "4 3" });
  add("text", { x: x(0), y: 68, "text-anchor": "middle" }, "0");
  add("text", { x: pad, y: 68, "text-anchor": "start" }, points(-extent));
  add("text", { x: W - pad, y: 68, "text-anchor": "end" }, points(extent));
  add("line", { x1: x(c.ci_low), y1: 35, x2: x(c.ci_high), y2: 35, class: "line" });
  add("line", { x1: x(c.ci_low), y1: 27, x2: x(c.ci_low), y2: 43, class: "line" });
  add("line", { x1: x(c.ci_high), y1: 27, x2: x(c.ci_high), y2: 43, class: "line" });
  add("circle", { cx: x(c.difference), cy: 35, r: 5, class: "dot" });
  box.replaceChildren(svg);
  $("#difference-caption").textContent = summary + (c.significant ? " The interval excludes 0." : " The interval includes 0: no detectable difference yet.");
}

function renderSrm(s) {
  const box = $("#srm");
  if (!s) {
    box.replaceChildren(el("p", { class: "muted" }, "No units assigned yet."));
    return;
  }
  const arms = Object.keys(s.observed);
  box.replaceChildren(
    el(
      "p",
      {},
      el("span", { class: `badge ${s.mismatch ? "bad" : "ok"}`, dataset: { mismatch: String(s.mismatch) } }, s.mismatch ? "sample-ratio mismatch" : "split as planned"),
      ` χ² = ${fixed(s.chi2, 3)}, p = ${fixed(s.p_value)} (a mismatch is flagged below p = ${s.threshold}).`,
    ),
    el(
      "div",
      { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Observed and expected learners per arm" },
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Arm"), el("th", { scope: "col", class: "num" }, "Observed"), el("th", { scope: "col", class: "num" }, "Expected"))),
        el("tbody", {}, arms.map((a) => el("tr", {}, el("th", { scope: "row" }, a), el("td", { class: "num" }, s.observed[a]), el("td", { class: "num" }, fixed(s.expected[a], 1))))),
      ),
    ),
  );
}

function metricsTable(label, rows, served) {
  // rows: {model: {metric: value, "<metric>_std": spread over seeds}}; served: the served model's name
  const models = Object.keys(rows);
  const columns = [...METRICS, ...EXTRA_METRICS.filter((m) => models.some((k) => typeof rows[k][m] === "number"))];
  const best = {};
  for (const m of columns) best[m] = Math.max(...models.map((k) => (typeof rows[k][m] === "number" ? rows[k][m] : -Infinity)));
  const cell = (k, m) => {
    const v = rows[k][m];
    const std = rows[k][`${m}_std`];
    const text = typeof std === "number" ? `${fixed(v)} ± ${fixed(std)}` : fixed(v);
    return typeof v === "number" && v === best[m] ? el("strong", {}, text) : text;
  };
  return el(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": label },
    el(
      "table",
      {},
      el("caption", { class: "visually-hidden" }, label),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Model"), columns.map((m) => el("th", { scope: "col", class: "num" }, m)))),
      el(
        "tbody",
        {},
        models.map((k) =>
          el(
            "tr",
            k === served ? { dataset: { model: k, served: "true" } } : { dataset: { model: k } },
            el("th", { scope: "row" }, k === served ? `${k} (served)` : k),
            columns.map((m) => el("td", { class: "num" }, cell(k, m))),
          ),
        ),
      ),
    ),
  );
}

function renderModel(m) {
  const facts = m.model
    ? [
        ["Version", el("code", {}, m.model.version)],
        ["Model", m.model.model_name],
        ["Trained", m.model.trained_at],
        ["Products", m.model.n_products],
        ["Profile features", m.model.feature_dim],
        ["Explanations", m.model.explanations ? "topics and keywords" : "none"],
        ["Training data", el("code", { class: "hash" }, m.model.data_fingerprint || "")],
      ]
    : [["Model", "none loaded: run knowledger train"]];
  $("#model").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const metrics = m.model && m.model.metrics;
  const box = $("#model-metrics");
  if (metrics && typeof metrics === "object" && Object.values(metrics).every((v) => v && typeof v === "object")) {
    box.replaceChildren(el("h3", {}, "Held-out evaluation at training time"), metricsTable("Held-out evaluation of the served model", metrics));
  } else if (metrics && typeof metrics === "object" && Object.keys(metrics).length) {
    box.replaceChildren(el("h3", {}, "Held-out evaluation at training time"), el("dl", { class: "facts" }, Object.entries(metrics).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "number" ? fixed(v) : JSON.stringify(v))])));
  } else box.replaceChildren();

  const b = m.benchmark;
  const bench = $("#bench");
  if (!b) {
    $("#bench-note").textContent = m.benchmark_hint || "No benchmark yet: run make bench-recommender.";
    bench.replaceChildren();
    return;
  }
  const serving = b.serving
    ? ` Serving: ${fixed(b.serving.ms_per_user, 3)} ms to score one learner over ${b.serving.n_products} products, ${fixed(b.serving.ms_per_request_full, 3)} ms per full request.`
    : "";
  $("#bench-note").textContent = `Run at ${b.generated_at} in ${b.seconds} s.${serving} Best value per metric in bold; mean ± spread over seeds where the protocol repeats.`;
  bench.replaceChildren(
    ...Object.entries(b.datasets).map(([name, d]) =>
      el(
        "section",
        { "aria-label": `Data set ${name}` },
        el("h3", {}, name),
        d.error ? el("p", { class: "alert error" }, d.error) : metricsTable(`Benchmark on ${name}`, d.models || {}, d.served),
      ),
    ),
  );
}

async function renderPlot(m) {
  const figure = $("#plot-figure");
  if (!m.plot || !m.plot.available) {
    show(figure, false);
    return;
  }
  try {
    const response = await api(m.plot.url, { auth: auth(), accept: "image/png" });
    if (plotUrl) URL.revokeObjectURL(plotUrl);
    plotUrl = URL.createObjectURL(await response.blob());
    const img = $("#plot");
    img.src = plotUrl;
    img.alt = "Bar charts comparing the recommender models' ranking metrics on each benchmark data set; the same figures are in the tables above.";
    show(figure, true);
  } catch (error) {
    show(figure, false);
  }
}

/** The webhook notifications that went dead, newest first, each with a replay button. */
async function loadDead() {
  const { items, total } = await api("/api/v1/operator/webhooks/deliveries?state=dead&limit=100", { auth: auth() });
  $("#dead").replaceChildren(
    ...(items.length
      ? items.map((d) =>
          el(
            "tr",
            { dataset: { id: String(d.id), event: d.event_id } },
            el("td", {}, d.id),
            el("td", {}, d.partner_id),
            el("td", {}, d.event, el("div", { class: "small muted" }, el("code", {}, d.event_id))),
            el("td", { class: "num" }, d.attempts),
            el("td", {}, d.last_error || ""),
            el("td", {}, when(d.created_at)),
            el("td", {}, el("button", { type: "button", "aria-label": `Replay notification ${d.id} (${d.event} to ${d.partner_id})`, onclick: () => replay(d.id) }, "Replay")),
          ),
        )
      : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "None: every notification was delivered or is still being tried."))]),
  );
  $("#replay-all").disabled = total === 0;
  $("#dead").dataset.total = String(total);
}

async function replay(id) {
  const out = $("#dead-status");
  try {
    const path = id === null ? "/api/v1/operator/webhooks/replay" : `/api/v1/operator/webhooks/deliveries/${id}/replay`;
    const r = await api(path, { method: "POST", auth: auth() });
    out.textContent = id === null ? `${r.replayed} notification(s) queued again.` : `Notification ${id} queued again.`;
    await loadDead();
  } catch (error) {
    out.textContent = `Replay failed: ${describe(error)}`;
    if (error instanceof ApiError && error.status === 401) signedOut(describe(error));
  }
}

/** The model registry: every version, the served one first among equals, with promote where it applies. */
async function loadVersions() {
  const { served, versions } = await api("/api/v1/models", { auth: auth() });
  const promotable = new Set(["candidate", "retired"]); // a refused one is forced from the CLI only
  $("#versions").replaceChildren(
    ...versions.map((v) => {
      const scores = (v.gate && v.gate.scores) || {};
      const against =
        scores.candidate && scores.served
          ? `${fixed(scores.candidate["ndcg@10"])} vs ${fixed(scores.served["ndcg@10"])} (${v.gate.served_version})`
          : v.status === "training"
            ? `training: ${Math.round(100 * v.progress)} %`
            : v.error || "not scored on the same split";
      return el(
        "tr",
        { dataset: { version: v.version, status: v.status } },
        el("td", {}, el("code", {}, v.version), v.version === served ? el("div", { class: "small" }, "served now") : ""),
        el("td", {}, v.status),
        el("td", {}, v.source),
        el("td", { class: "num" }, fixed(v.metrics ? v.metrics["ndcg@10"] : null)),
        el("td", {}, against),
        el("td", {}, when(v.created_at)),
        el(
          "td",
          {},
          promotable.has(v.status)
            ? el("button", { type: "button", "aria-label": `Promote model version ${v.version}`, onclick: () => modelAction(`/api/v1/models/versions/${v.version}/promote`, {}) }, "Promote")
            : "",
        ),
      );
    }),
  );
  $("#rollback").disabled = !versions.some((v) => v.status === "retired");
  return versions;
}

async function modelAction(path, body) {
  const out = $("#versions-status");
  try {
    const r = await api(path, { method: "POST", auth: auth(), body });
    out.textContent = r.version && r.status === "training"
      ? `Training ${r.version} on the platform's data…`
      : `Serving ${r.version} (was ${r.previous}).`;
    const versions = await loadVersions();
    if (r.status === "training") pollTraining(r.version);
    return versions;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      out.textContent = describe(error);
      signedOut(describe(error));
    } else {
      await loadVersions().catch(() => null); // a refusal is recorded: show it, then say why
      out.textContent = describe(error);
    }
    return null;
  }
}

function pollTraining(version) {
  const tick = async () => {
    const v = await api(`/api/v1/models/versions/${version}`, { auth: auth() }).catch(() => null);
    if (!v) return;
    if (v.status === "training") {
      setTimeout(tick, 2000);
      return;
    }
    $("#versions-status").textContent =
      v.status === "candidate" ? `${version} is a candidate: promote it to serve it.` : `${version}: ${v.status} ${v.error || ""}`;
    await loadVersions();
  };
  setTimeout(tick, 2000);
}

$("#train").addEventListener("click", () => modelAction("/api/v1/models", {}));
$("#rollback").addEventListener("click", () => modelAction("/api/v1/models/rollback", undefined));
$("#replay-all").addEventListener("click", () => replay(null));
wireSignIn($("#signin-form"), "operatorKey", () => start());
$("#sign-out").addEventListener("click", () => signedOut(null));
$("#refresh").addEventListener("click", () => start());

if (store.get("operatorKey")) start();
else show($("#signin"), true);
