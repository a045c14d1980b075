// The marketing funnel, live: recommendations served, conversions reported, settled, final and reversed, per
// partner and per experiment arm, over time, with rates and their 95 % intervals. The page asks the JSON API
// again every REFRESH_MS while the tab is visible (plain fetch with the page's credential: no connection held
// open, nothing else to authenticate), and says so in a status line only when the figures changed.
import { api, ApiError, el, fromUnix, percent, svgChart } from "./common.js";

export const REFRESH_MS = 5000;
const PERIODS = { minute: 60, hour: 24, day: 30 }; // how many periods each window shows
const WIDTH = { minute: 60, hour: 3600, day: 86400 };
const STAGES = [
  ["recommendations", "Recommendations"],
  ["conversions", "Conversions"],
  ["settled", "Settled"],
  ["final", "Final"],
  ["reversed", "Reversed"],
];
const RATES = [
  ["conversion", "Conversion rate", "recommendations that led to a conversion"],
  ["settlement", "Settled share", "conversions the chain recorded"],
  ["finality", "Final share", "of those recorded"],
  ["reversal", "Reversed share", "of those recorded"],
];

const armName = (arm) => (arm === null ? "outside an experiment" : arm.split(":").slice(1).join(":") || arm);
const armKey = (arm) => (arm === null ? "none" : arm);

function rateText(r) {
  if (r.rate === null) return "n/a";
  return `${percent(r.rate, 1)} (${percent(r.ci_low, 1)} to ${percent(r.ci_high, 1)})`;
}

function rows(p) {
  return [{ label: "All", key: "all", f: p }, ...p.arms.map((a) => ({ label: `Arm ${armName(a.arm)}`, key: armKey(a.arm), f: a }))];
}

function stagesTable(p, label) {
  return el(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": `${label}: counts` },
    el(
      "table",
      { class: "funnel-stages" },
      el("caption", { class: "visually-hidden" }, `${label}: counts in the window`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Arm"), STAGES.map(([, name]) => el("th", { scope: "col", class: "num" }, name)))),
      el(
        "tbody",
        {},
        rows(p).map((r) =>
          el(
            "tr",
            { dataset: { arm: r.key } },
            el("th", { scope: "row" }, r.label),
            STAGES.map(([stage]) => el("td", { class: "num", dataset: { stage, value: String(r.f.totals[stage]) } }, r.f.totals[stage].toLocaleString("en"))),
          ),
        ),
      ),
    ),
  );
}

function ratesTable(p, label) {
  return el(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": `${label}: rates` },
    el(
      "table",
      { class: "funnel-rates" },
      el("caption", { class: "visually-hidden" }, `${label}: rates with 95 % confidence intervals`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Arm"), RATES.map(([, name, what]) => el("th", { scope: "col", class: "num", title: what }, name)))),
      el(
        "tbody",
        {},
        rows(p).map((r) =>
          el(
            "tr",
            { dataset: { arm: r.key } },
            el("th", { scope: "row" }, r.label),
            RATES.map(([name]) => {
              const x = r.f.rates[name];
              return el(
                "td",
                {
                  class: "num",
                  dataset: {
                    rate: name,
                    numerator: String(x.numerator),
                    denominator: String(x.denominator),
                    low: x.ci_low === null ? "" : String(x.ci_low),
                    high: x.ci_high === null ? "" : String(x.ci_high),
                  },
                },
                rateText(x),
                el("div", { class: "small muted" }, `${x.numerator} of ${x.denominator}`),
              );
            }),
          ),
        ),
      ),
    ),
  );
}

/** The legend's sample of line ``i`` (its colour and its dash). */
function swatch(i) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 8");
  svg.setAttribute("class", "swatch");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(ns, "line");
  for (const [k, v] of Object.entries({ x1: 0, y1: 4, x2: 24, y2: 4, class: `funnel-line s${i}` })) line.setAttribute(k, String(v));
  svg.append(line);
  return svg;
}

/** One line per stage over the window's periods (distinguished by dash as well as colour). */
function chart(p, report, box) {
  const series = p.series;
  const n = series.length;
  const max = Math.max(1, ...series.flatMap((b) => STAGES.map(([s]) => b[s])));
  const W = Math.max(300, Math.round(box.clientWidth || 640)), H = 200, L = 44, R = 10, T = 10, B = 30;
  const x = (k) => L + ((W - L - R) * (n === 1 ? 0.5 : k / (n - 1)));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const totals = STAGES.map(([s, name]) => `${p.totals[s]} ${name.toLowerCase()}`).join(", ");
  const summary = `${p.name}, ${fromUnix(report.since)} to ${fromUnix(report.until)} per ${report.bucket}: ${totals}.`;
  const { svg, add } = svgChart(W, H, summary);
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" });
  add("text", { x: L - 6, y: y(max) + 4, "text-anchor": "end" }, String(max));
  add("text", { x: L - 6, y: y(0) + 4, "text-anchor": "end" }, "0");
  add("text", { x: L, y: H - 8 }, fromUnix(series[0].start));
  add("text", { x: W - R, y: H - 8, "text-anchor": "end" }, fromUnix(series[n - 1].start));
  STAGES.forEach(([stage], i) => {
    add("polyline", { points: series.map((b, k) => `${x(k)},${y(b[stage])}`).join(" "), class: `funnel-line s${i}` });
  });
  const legend = el("ul", { class: "legend small" }, STAGES.map(([, name], i) => el("li", {}, swatch(i), name)));
  return [svg, legend];
}

/** Mount the live funnel in `root` (a section holding #funnel-window, #funnel-pause, #funnel-status and
 * #funnel-body). `path`: the funnel endpoint; `auth()`: the credential; `onAuthError(error)`: signed out;
 * `also()`: anything else to refresh on the same beat. Returns {refresh, stop}. */
export function mountFunnel({ root, path, auth, onAuthError, also }) {
  const select = root.querySelector("#funnel-window");
  const pause = root.querySelector("#funnel-pause");
  const status = root.querySelector("#funnel-status");
  const body = root.querySelector("#funnel-body");
  let timer = null;
  let stopped = false;
  let last = null;

  async function refresh() {
    const bucket = select.value;
    const w = WIDTH[bucket];
    const since = (Math.floor(Date.now() / 1000 / w) - (PERIODS[bucket] - 1)) * w;
    try {
      const [report] = await Promise.all([
        api(`${path}?bucket=${bucket}&since=${since}`, { auth: auth() }),
        also ? also() : null,
      ]);
      root.dataset.since = String(report.since);
      root.dataset.bucket = report.bucket;
      root.dataset.asOf = report.as_of;
      const figures = JSON.stringify([report.since, report.bucket, report.partners]);
      if (figures !== last) {
        render(report);
        status.textContent = `Updated ${report.as_of.replace("T", " ").replace(/\.\d+Z$/, "Z")}.`;
        last = figures;
      }
      root.querySelector("#funnel-error").hidden = true;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        stop();
        onAuthError(error);
        return;
      }
      const box = root.querySelector("#funnel-error");
      box.hidden = false;
      box.textContent = `The figures could not be updated (${error.message}); trying again.`;
    }
  }

  function render(report) {
    const single = report.partners.length === 1;
    body.replaceChildren();
    for (const p of report.partners) {
      const label = single ? "Funnel" : `Funnel of ${p.name}`;
      const figure = el("figure", {});
      body.append(
        el(
          "section",
          { class: "funnel-partner", dataset: { partner: p.partner_id }, "aria-label": label },
          single ? null : el("h3", {}, p.name),
          stagesTable(p, label),
          ratesTable(p, label),
          figure,
        ),
      );
      // drawn once in the page, at the figure's own width
      figure.append(...chart(p, report, figure), el("figcaption", { class: "small muted" }, "Per period; the tables above give the totals and rates."));
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (stopped || pause.getAttribute("aria-pressed") === "true") return;
    timer = setTimeout(async () => {
      if (!document.hidden) await refresh();
      schedule();
    }, REFRESH_MS);
  }

  function stop() {
    stopped = true;
    clearTimeout(timer);
  }

  select.addEventListener("change", () => refresh().then(schedule));
  pause.addEventListener("click", () => {
    const paused = pause.getAttribute("aria-pressed") !== "true";
    pause.setAttribute("aria-pressed", String(paused));
    status.textContent = paused ? "Live updates paused." : "Live updates resumed.";
    if (!paused) refresh();
    schedule();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !stopped && pause.getAttribute("aria-pressed") !== "true") refresh();
  });
  stopped = false;
  refresh().then(schedule);
  return { refresh, stop };
}
