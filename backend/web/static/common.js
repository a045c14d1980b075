// Shared by the pages: the API client, credentials kept for this tab only, formatting, DOM helpers.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

/** Call the JSON API. `auth` is {bearer: token} or {key: apiKey}. Errors become ApiError with the
 * service's own code and message (or a network message when the service cannot be reached). */
export async function api(path, { method = "GET", body, auth, accept = "application/json", timeoutMs = 60_000 } = {}) {
  const headers = { Accept: accept };
  if (auth && auth.bearer) headers.Authorization = `Bearer ${auth.bearer}`;
  if (auth && auth.key) headers["X-API-Key"] = auth.key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal: controller.signal,
    });
  } catch (err) {
    if (controller.signal.aborted) {
      throw new ApiError(0, "timeout", `No answer within ${timeoutMs / 1000} s. A write may still be recorded: reload to see.`);
    }
    throw new ApiError(0, "network", "The service could not be reached. Check your connection and try again.");
  } finally {
    clearTimeout(timer);
  }
  if (accept !== "application/json" && response.ok) return response;
  let payload = null;
  try {
    payload = await response.json();
  } catch (err) {
    payload = null;
  }
  if (!response.ok) {
    const e = (payload && payload.error) || {};
    throw new ApiError(response.status, e.code || "http_error", e.message || `HTTP ${response.status}`, e.details);
  }
  return payload;
}

/** A credential kept in sessionStorage: it lasts while this tab is open and is never sent anywhere but
 * this service's own API. */
export const store = {
  get: (name) => sessionStorage.getItem(`knowledger.${name}`),
  set: (name, value) => sessionStorage.setItem(`knowledger.${name}`, value),
  clear: (name) => sessionStorage.removeItem(`knowledger.${name}`),
};

/** A value passed in the URL fragment (`#token=...`), which browsers never send to a server: taken once,
 * kept for the tab, and wiped from the address bar and the history. */
export function takeFromFragment(param, name) {
  const params = new URLSearchParams(location.hash.slice(1));
  const value = params.get(param);
  if (value) {
    store.set(name, value);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return store.get(name);
}

/** Build an element: el("p", {class: "x", text: "hi"}, child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

/** Show an error (or clear it with null) in a role="alert" box. */
export function alertIn(box, error) {
  box.replaceChildren();
  if (!error) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.className = "alert error";
  box.append(error instanceof ApiError ? describe(error) : String(error.message || error));
}

export function describe(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  if (error.status === 401) return `Not signed in or the credential is no longer valid (${error.message}).`;
  return error.message;
}

/** Amounts are integers in the currency's smallest unit (fen for CNY): shown with the currency's own
 * number of decimals, computed with integers so nothing is rounded. */
export function money(minor, currency) {
  const digits = fractionDigits(currency);
  const negative = minor < 0;
  const abs = Math.abs(Number(minor));
  const unit = 10 ** digits;
  const whole = Math.floor(abs / unit).toLocaleString("en");
  const fraction = digits ? "." + String(abs % unit).padStart(digits, "0") : "";
  return `${negative ? "-" : ""}${currency || ""} ${whole}${fraction}`.trim();
}

export function fractionDigits(currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch (err) {
    return 2;
  }
}

export function fromUnix(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z").replace("T", " ");
}

export function when(iso) {
  if (!iso) return "";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function percent(x, digits = 1) {
  return x === null || x === undefined ? "n/a" : `${(x * 100).toFixed(digits)} %`;
}

/** An SVG chart described by `label` (role="img": a screen reader reads the label, not the shapes), and
 * `add(tag, attrs, text?, parent?)` to draw in it. Drawn in CSS pixels: pass the box's own width. */
export function svgChart(width, height, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const add = (tag, attrs, text, parent = svg) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    parent.append(node);
    return node;
  };
  return { svg, add };
}

/** Save text or JSON as a file the browser downloads. */
export function download(filename, content, type) {
  const blob = new Blob([content], { type });
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** RFC 4180 CSV: every field quoted when it holds a comma, a quote or a line break; a leading = + - @ is
 * prefixed with ' so a spreadsheet never runs a cell as a formula. */
export function toCsv(header, rows) {
  const cell = (v) => {
    let s = v === null || v === undefined ? "" : String(v);
    if (/^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?$/.test(s)) s = "'" + s;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}

/** A modal confirmation (native <dialog>: focus is trapped, Escape cancels). Resolves true or false. */
export function confirmDialog(dialog) {
  return new Promise((resolve) => {
    const onClose = () => {
      dialog.removeEventListener("close", onClose);
      resolve(dialog.returnValue === "confirm");
    };
    dialog.returnValue = "";
    dialog.addEventListener("close", onClose);
    dialog.showModal();
  });
}

/** Sign-in form handling shared by the pages: a labelled secret field stored for the tab. */
export function wireSignIn(form, name, onSignedIn) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = form.querySelector("input");
    const value = input.value.trim();
    if (!value) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    store.set(name, value);
    input.value = "";
    onSignedIn(value);
  });
}
