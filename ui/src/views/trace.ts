// The waterfall of one trace: every span with its service, operation, duration and status, the critical path
// marked, subtrees that collapse, and a details panel (attributes, resource, events, links, logs). Only the rows
// in view exist in the DOM, so a trace of thousands of spans opens at once.
import { api, type LogRecord, type Span } from "../api";
import { clear, h } from "../dom";
import { dateTime, ms, serviceColor } from "../format";
import type { View } from "../view";
import { attributesTable, loading, serviceDot, traceLink } from "./common";

const ROW_PX = 24;
const OVERSCAN = 10;

interface Node {
  span: Span;
  children: Node[];
  depth: number;
  subtree: number;
}

export const traceView: View = async (container, [traceId], onLeave) => {
  const started = performance.now();
  const status = loading();
  container.append(status);
  const { spans: raw } = await api.trace(traceId);
  status.remove();
  const spans = dedupe(raw);
  const roots = buildTree(spans);
  const t0 = Math.min(...spans.map((s) => s.start_ns));
  const t1 = Math.max(...spans.map((s) => s.start_ns + s.duration_ns));
  const total = Math.max(1, t1 - t0);
  const services = new Set(spans.map((s) => s.service));
  const errors = spans.filter((s) => s.status === "error").length;
  const root = roots[0].span;
  const collapsed = new Set<string>();
  let critical = new Map<string, number>();
  let selected: string | null = null;
  let visible: Node[] = [];

  const summary = h(
    "div",
    { class: "trace-summary" },
    h("h1", null, serviceDot(root.service), h("span", { id: "trace-root" }, `${root.service}: ${root.name}`)),
    h(
      "p",
      { class: "muted" },
      h("span", { class: "mono" }, traceId),
      ` · ${dateTime(t0)} · ${ms(total / 1e6)} · ${spans.length} spans · ${services.size} services`,
      errors ? h("span", { class: "bad" }, ` · ${errors} errors`) : null,
    ),
  );
  const criticalNote = h("span", { class: "muted", id: "critical-note" }, "critical path: loading…");
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("button", { on: { click: () => (collapsed.clear(), refresh()) } }, "Expand all"),
    h(
      "button",
      {
        on: {
          click: () => {
            for (const node of allNodes(roots)) if (node.children.length && node.depth >= 1) collapsed.add(node.span.span_id);
            refresh();
          },
        },
      },
      "Collapse below root",
    ),
    h("span", { class: "legend" }, h("span", { class: "crit-swatch" }), " on the critical path"),
    criticalNote,
  );
  const ruler = h("div", { class: "ruler" });
  for (let i = 0; i <= 4; i++) {
    ruler.append(h("span", { style: { left: `${i * 25}%` } }, ms((total * i) / 4 / 1e6)));
  }
  const header = h("div", { class: "wf-header" }, h("div", { class: "wf-label" }, "service · operation"), h("div", { class: "wf-timeline" }, ruler));
  const spacer = h("div", { class: "wf-spacer" });
  const viewport = h("div", { class: "wf-viewport", id: "waterfall" }, spacer);
  const details = h("aside", { class: "span-details", id: "span-details" }, h("p", { class: "muted" }, "Click a span to see its attributes, resource, events and links."));
  container.append(summary, toolbar, h("div", { class: "trace-layout" }, h("div", { class: "waterfall" }, header, viewport), details));

  function refresh(): void {
    visible = [];
    const walk = (node: Node) => {
      visible.push(node);
      if (!collapsed.has(node.span.span_id)) for (const child of node.children) walk(child);
    };
    for (const r of roots) walk(r);
    spacer.style.height = `${visible.length * ROW_PX}px`;
    viewport.style.height = `${Math.min(visible.length * ROW_PX + 2, Math.max(300, window.innerHeight - 260))}px`;
    paint();
  }

  function paint(): void {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_PX) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW_PX) + OVERSCAN);
    const rows: HTMLElement[] = [];
    for (let i = first; i < last; i++) rows.push(row(visible[i], i));
    spacer.replaceChildren(...rows);
  }

  function row(node: Node, index: number): HTMLElement {
    const span = node.span;
    const left = ((span.start_ns - t0) / total) * 100;
    const width = Math.max((span.duration_ns / total) * 100, 0.15);
    const onPath = critical.has(span.span_id);
    const toggle = node.children.length
      ? h(
          "button",
          {
            class: "toggle",
            title: `${node.subtree - 1} spans below`,
            on: {
              click: (event) => {
                event.stopPropagation();
                if (collapsed.has(span.span_id)) collapsed.delete(span.span_id);
                else collapsed.add(span.span_id);
                refresh();
              },
            },
          },
          collapsed.has(span.span_id) ? `▸ ${node.subtree - 1}` : "▾",
        )
      : h("span", { class: "toggle-space" });
    const classes = ["wf-row"];
    if (onPath) classes.push("critical");
    if (span.status === "error") classes.push("error");
    if (selected === span.span_id) classes.push("selected");
    return h(
      "div",
      {
        class: classes.join(" "),
        style: { top: `${index * ROW_PX}px` },
        dataset: { spanId: span.span_id, critical: String(onPath) },
        on: { click: () => select(span) },
      },
      h(
        "div",
        { class: "wf-label", style: { paddingLeft: `${node.depth * 14 + 4}px` } },
        toggle,
        serviceDot(span.service),
        h("span", { class: "svc" }, span.service),
        h("span", { class: "op" }, span.name),
      ),
      h(
        "div",
        { class: "wf-timeline" },
        h("div", { class: "wf-bar", style: { left: `${left}%`, width: `${width}%`, background: serviceColor(span.service) } }),
        h("span", { class: "wf-duration", style: durationPlace(left, width) }, ms(span.duration_ns / 1e6)),
      ),
    );
  }

  let logs: LogRecord[] | null = null;
  function select(span: Span): void {
    selected = span.span_id;
    paint();
    clear(
      details,
      h("h2", { class: "span-title" }, span.name),
      h(
        "table",
        { class: "attrs" },
        h(
          "tbody",
          null,
          ([
            ["service", span.service],
            ["kind", span.kind],
            ["status", span.status_message ? `${span.status}: ${span.status_message}` : span.status],
            ["start", `+${ms((span.start_ns - t0) / 1e6)}`],
            ["duration", ms(span.duration_ns / 1e6)],
            ["critical time", critical.has(span.span_id) ? ms((critical.get(span.span_id) ?? 0) / 1e6) : "off the critical path"],
            ["span id", span.span_id],
            ["parent", span.parent_span_id ?? "none (root)"],
          ] as [string, string][]).map(([key, value]) => h("tr", null, h("th", null, key), h("td", null, value))),
        ),
      ),
      h("h3", null, "Attributes"),
      attributesTable(span.attributes),
      h("h3", null, "Resource"),
      attributesTable(span.resource),
      h("h3", null, `Events (${span.events.length})`),
      span.events.length
        ? h(
            "ul",
            { class: "events" },
            span.events.map((e) =>
              h("li", null, h("strong", null, e.name), ` +${ms((e.time_ns - t0) / 1e6)} `, Object.keys(e.attributes).length ? attributesTable(e.attributes) : null),
            ),
          )
        : h("p", { class: "muted" }, "none"),
      h("h3", null, `Links (${span.links.length})`),
      span.links.length
        ? h("ul", null, span.links.map((l) => h("li", null, traceLink(l.trace_id), ` span ${l.span_id} `, Object.keys(l.attributes).length ? attributesTable(l.attributes) : null)))
        : h("p", { class: "muted" }, "none"),
      h("h3", null, "Logs"),
      logList(span.span_id),
    );
  }

  function logList(spanId: string): HTMLElement {
    const mine = (logs ?? []).filter((l) => l.span_id === spanId);
    if (logs === null) return h("p", { class: "muted" }, "loading…");
    if (!mine.length) return h("p", { class: "muted" }, "none");
    return h("ul", { class: "logs" }, mine.map((l) => h("li", null, h("span", { class: "sev" }, l.severity), ` +${ms((l.time_ns - t0) / 1e6)} `, l.body ?? "")));
  }

  let scheduled = false;
  const onScroll = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      paint();
    });
  };
  viewport.addEventListener("scroll", onScroll);
  refresh();
  document.body.dataset.traceRenderMs = String(Math.round(performance.now() - started));
  container.dataset.rendered = "true";

  void api.traceCriticalPath(traceId).then(
    (answer) => {
      critical = new Map(answer.spans.map((s) => [s.span_id, s.critical_ns]));
      criticalNote.textContent = `critical path: ${critical.size} of ${spans.length} spans`;
      paint();
    },
    () => (criticalNote.textContent = "critical path unavailable"),
  );
  void api.traceLogs(traceId).then(
    (answer) => (logs = answer.logs),
    () => (logs = []),
  );
  onLeave(() => viewport.removeEventListener("scroll", onScroll));
};

/** Right of the bar when there is room, else inside its right end (long bars) or left of it (short ones). */
function durationPlace(left: number, width: number): Partial<CSSStyleDeclaration> {
  if (left + width < 88) return { left: `${left + width + 0.5}%` };
  if (width > 12) return { right: `${100 - left - width + 0.5}%`, color: "#1f2328", fontWeight: "600" };
  return { right: `${100 - left + 0.5}%` };
}

function dedupe(spans: Span[]): Span[] {
  const seen = new Map<string, Span>();
  for (const span of spans) if (!seen.has(span.span_id)) seen.set(span.span_id, span);
  return [...seen.values()];
}

/** Parents before children, siblings by start; spans whose parent is missing hang under the first root. */
function buildTree(spans: Span[]): Node[] {
  const nodes = new Map<string, Node>();
  for (const span of spans) nodes.set(span.span_id, { span, children: [], depth: 0, subtree: 1 });
  const roots: Node[] = [];
  const orphans: Node[] = [];
  for (const node of nodes.values()) {
    const parentId = node.span.parent_span_id;
    const parent = parentId ? nodes.get(parentId) : undefined;
    if (parent && parent !== node) parent.children.push(node);
    else if (parentId) orphans.push(node);
    else roots.push(node);
  }
  roots.sort((a, b) => a.span.start_ns - b.span.start_ns);
  orphans.sort((a, b) => a.span.start_ns - b.span.start_ns);
  if (!roots.length) roots.push(...orphans.splice(0, 1));
  roots[0].children.push(...orphans);
  const stack: Node[] = [...roots];
  const order: Node[] = [];
  const reached = new Set<Node>();
  while (stack.length) {
    const node = stack.pop()!;
    if (reached.has(node)) continue;
    reached.add(node);
    order.push(node);
    node.children.sort((a, b) => a.span.start_ns - b.span.start_ns);
    for (const child of node.children) {
      child.depth = node.depth + 1;
      stack.push(child);
    }
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    node.subtree = 1 + node.children.reduce((sum, c) => sum + c.subtree, 0);
  }
  return roots;
}

function allNodes(roots: Node[]): Node[] {
  const out: Node[] = [];
  const stack = [...roots];
  while (stack.length) {
    const node = stack.pop()!;
    out.push(node);
    stack.push(...node.children);
  }
  return out;
}

