// spyglass web UI (first cut): services and recent traces, and a trace waterfall.
// Every value that came from a span is rendered with textContent, never as HTML.
"use strict";

const app = document.getElementById("app");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.setAttribute("style", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

async function api(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

const ms = (ns) => (ns / 1e6).toFixed(2) + " ms";
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"];
const colorFor = (() => { const seen = new Map(); return (s) => { if (!seen.has(s)) seen.set(s, COLORS[seen.size % COLORS.length]); return seen.get(s); }; })();

async function renderHome() {
  const [{ services }, { traces }] = await Promise.all([api("/api/v1/services"), api("/api/v1/traces?limit=50")]);
  app.replaceChildren(
    el("h2", {}, "Services"),
    el("table", { id: "services" }, el("tr", {}, el("th", {}, "service")),
      ...services.map((s) => el("tr", {}, el("td", {}, el("a", { href: `/services/${encodeURIComponent(s.name)}` }, s.name))))),
    el("h2", {}, "Recent traces"),
    tracesTable(traces),
  );
}

function tracesTable(traces) {
  return el("table", { id: "traces" },
    el("tr", {}, el("th", {}, "root"), el("th", {}, "duration"), el("th", {}, "spans"), el("th", {}, "trace")),
    ...traces.map((t) => el("tr", {},
      el("td", { class: t.error ? "error" : "" }, `${t.root_service ?? "?"}: ${t.root_operation ?? "?"}`),
      el("td", {}, ms(t.duration_ns)), el("td", {}, t.span_count),
      el("td", {}, el("a", { href: `/traces/${t.trace_id}` }, t.trace_id)))));
}

async function renderService(service) {
  const { traces } = await api(`/api/v1/traces?limit=100&service=${encodeURIComponent(service)}`);
  app.replaceChildren(el("h2", {}, service), tracesTable(traces));
}

async function renderTrace(traceId) {
  const trace = await api(`/api/v1/traces/${encodeURIComponent(traceId)}`);
  const spans = trace.spans;
  const byParent = new Map();
  const ids = new Set(spans.map((s) => s.span_id));
  for (const span of spans) {
    const parent = span.parent_span_id && ids.has(span.parent_span_id) ? span.parent_span_id : null;
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(span);
  }
  const start = Math.min(...spans.map((s) => s.start_ns));
  const end = Math.max(...spans.map((s) => s.start_ns + s.duration_ns));
  const total = Math.max(1, end - start);
  const ordered = [];
  const walk = (parent, depth) => {
    for (const span of (byParent.get(parent) || []).sort((a, b) => a.start_ns - b.start_ns)) {
      ordered.push([span, depth]);
      walk(span.span_id, depth + 1);
    }
  };
  walk(null, 0);
  const detail = el("div", { class: "detail", id: "span-detail" }, "Select a span to see its attributes.");
  const rows = ordered.map(([span, depth]) => {
    const bar = el("div", { class: "bar" + (span.status === "error" ? " error" : ""),
      style: `left:${((span.start_ns - start) / total) * 100}%;width:${(span.duration_ns / total) * 100}%;background:${colorFor(span.service)}` });
    const row = el("div", { class: "row span-row", "data-span-id": span.span_id },
      el("div", { class: "label", style: `padding-left:${depth * 14}px` },
        el("b", { class: "service" }, span.service), " ", el("span", { class: "operation" }, span.name), " ", ms(span.duration_ns)),
      el("div", { class: "track" }, bar));
    row.addEventListener("click", () => { detail.textContent = JSON.stringify(span, null, 2); });
    return row;
  });
  app.replaceChildren(el("h2", {}, `Trace ${trace.trace_id}`), el("p", {}, `${spans.length} spans, ${ms(total)}`),
    el("div", { class: "waterfall", id: "waterfall" }, ...rows), detail);
}

async function route() {
  const path = location.pathname;
  try {
    if (path.startsWith("/traces/")) await renderTrace(decodeURIComponent(path.slice(8)));
    else if (path.startsWith("/services/")) await renderService(decodeURIComponent(path.slice(10)));
    else await renderHome();
    const status = await api("/api/v1/status");
    document.getElementById("status").textContent = `${status.spans_received} spans received, ${status.spans_stored} stored`;
  } catch (error) {
    app.replaceChildren(el("p", { class: "error" }, String(error)));
  }
}

route();
