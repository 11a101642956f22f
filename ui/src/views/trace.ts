// The waterfall of one trace: every span with its service, operation, duration and status, the critical path
// marked, subtrees that collapse, a minimap of the whole trace, and a details panel (attributes, resource,
// events, links, logs). The trace arrives in the API's columnar form (ids, parents, times, names), so a
// 100,000-span trace is a few MB; only the rows in view exist in the DOM, big subtrees start collapsed, and a
// span's details are fetched when it is clicked unless the trace was small enough to come whole.
import { api } from "../client";
import type { LogRecord, Span, TraceColumns } from "../api";
import { clear, h } from "../dom";
import { dateTime, ms, serviceColor } from "../format";
import type { View } from "../view";
import { attributesTable, loading, serviceDot, traceLink } from "./common";

const ROW_PX = 24;
const OVERSCAN = 10;
/** Traces up to this many spans come with every span's details in the first answer. */
const WHOLE_SPANS_UP_TO = 2_000;
/** In traces above this size, subtrees of more than COLLAPSE_OVER spans start collapsed (the root never). */
const COLLAPSE_TRACES_OVER = 5_000;
const COLLAPSE_OVER = 100;
const MINIMAP_PX = 64;

/** What the waterfall keeps of a span: the columnar answer's row, with its strings resolved. */
interface SpanRow {
  span_id: string;
  parent_span_id: string | null;
  service: string;
  name: string;
  kind: string;
  offset_ns: number;
  duration_ns: number;
  status: Span["status"];
  full: Span | null;
}

interface Node {
  span: SpanRow;
  children: Node[];
  depth: number;
  subtree: number;
  /** Position in the fully expanded tree (preorder): the minimap's vertical axis. */
  pre: number;
}

export const traceView: View = async (container, [traceId], onLeave) => {
  const started = performance.now();
  const status = loading();
  container.append(status);
  const answer = await api.traceColumns(traceId, WHOLE_SPANS_UP_TO);
  performance.mark("spyglass:trace-answer");
  status.remove();
  const spans = spanRows(answer);
  const { roots, order } = buildTree(spans);
  const t0 = answer.start_ns;
  let end = 1;
  let errors = 0;
  const services = new Set<string>();
  for (const s of spans) {
    end = Math.max(end, s.offset_ns + s.duration_ns);
    if (s.status === "error") errors++;
    services.add(s.service);
  }
  const total = end;
  const root = roots[0].span;
  const collapsed = new Set<string>();
  if (spans.length > COLLAPSE_TRACES_OVER) {
    for (const node of order) if (node.depth >= 1 && node.subtree - 1 > COLLAPSE_OVER) collapsed.add(node.span.span_id);
  }
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
  const collapsedNote = h("span", { class: "muted", id: "collapsed-note" });
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("button", { on: { click: () => (collapsed.clear(), refresh()) } }, "Expand all"),
    h(
      "button",
      {
        on: {
          click: () => {
            for (const node of order) if (node.children.length && node.depth >= 1) collapsed.add(node.span.span_id);
            refresh();
          },
        },
      },
      "Collapse below root",
    ),
    h("span", { class: "legend" }, h("span", { class: "crit-swatch" }), " on the critical path"),
    criticalNote,
    collapsedNote,
  );
  const ruler = h("div", { class: "ruler" });
  for (let i = 0; i <= 4; i++) {
    ruler.append(h("span", { style: { left: `${i * 25}%` } }, ms((total * i) / 4 / 1e6)));
  }
  const minimapCanvas = h("canvas", { class: "minimap-canvas" });
  const minimapWindow = h("div", { class: "minimap-window" });
  const minimap = h(
    "div",
    { class: "wf-minimap", id: "minimap", title: "The whole trace: drag or click to scroll the waterfall" },
    minimapCanvas,
    minimapWindow,
  );
  const header = h(
    "div",
    { class: "wf-header" },
    h("div", { class: "wf-label" }, "service · operation"),
    h("div", { class: "wf-timeline" }, ruler),
  );
  const spacer = h("div", { class: "wf-spacer" });
  const viewport = h("div", { class: "wf-viewport", id: "waterfall" }, spacer);
  const details = h(
    "aside",
    { class: "span-details", id: "span-details" },
    h("p", { class: "muted" }, "Click a span to see its attributes, resource, events and links."),
  );
  container.append(
    summary,
    toolbar,
    h("div", { class: "trace-layout" }, h("div", { class: "waterfall" }, minimap, header, viewport), details),
  );

  function refresh(): void {
    visible = [];
    const stack: Node[] = [];
    for (let i = roots.length - 1; i >= 0; i--) stack.push(roots[i]);
    while (stack.length) {
      const node = stack.pop()!;
      visible.push(node);
      if (collapsed.has(node.span.span_id)) continue;
      for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
    }
    spacer.style.height = `${visible.length * ROW_PX}px`;
    viewport.style.height = `${Math.min(visible.length * ROW_PX + 2, Math.max(300, window.innerHeight - 330))}px`;
    const hidden = spans.length - visible.length;
    collapsedNote.textContent = hidden ? `· ${hidden} spans in collapsed subtrees` : "";
    paint();
  }

  function paint(): void {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_PX) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW_PX) + OVERSCAN);
    const rows: HTMLElement[] = [];
    for (let i = first; i < last; i++) rows.push(row(visible[i], i));
    spacer.replaceChildren(...rows);
    markMinimapWindow();
  }

  function row(node: Node, index: number): HTMLElement {
    const span = node.span;
    const left = (span.offset_ns / total) * 100;
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
    if (collapsed.has(span.span_id)) classes.push("collapsed");
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
        h("div", {
          class: "wf-bar",
          style: { left: `${left}%`, width: `${width}%`, background: serviceColor(span.service) },
        }),
        h("span", { class: "wf-duration", style: durationPlace(left, width) }, ms(span.duration_ns / 1e6)),
      ),
    );
  }

  // -- the minimap: every span of the expanded tree, top to bottom in tree order, across the trace's time --

  function drawMinimap(): void {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(minimap.clientWidth * ratio));
    const height = Math.round(MINIMAP_PX * ratio);
    minimapCanvas.width = width;
    minimapCanvas.height = height;
    const context = minimapCanvas.getContext("2d");
    if (!context) return;
    const rowPx = height / order.length;
    const barPx = Math.max(1, rowPx - (rowPx > 3 ? 1 : 0));
    let color = "";
    for (const node of order) {
      const span = node.span;
      const fill = span.status === "error" ? "#c62828" : serviceColor(span.service);
      if (fill !== color) context.fillStyle = color = fill;
      const x = (span.offset_ns / total) * width;
      context.fillRect(x, Math.floor(node.pre * rowPx), Math.max(1, (span.duration_ns / total) * width), barPx);
    }
  }

  /** The rows in view, as the part of the whole (expanded) tree they stand for. */
  function markMinimapWindow(): void {
    if (!visible.length) return;
    const first = Math.min(visible.length - 1, Math.floor(viewport.scrollTop / ROW_PX));
    const last = Math.min(
      visible.length - 1,
      Math.max(first, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW_PX) - 1),
    );
    const lastNode = visible[last];
    const top = visible[first].pre;
    const bottom = lastNode.pre + (collapsed.has(lastNode.span.span_id) ? lastNode.subtree : 1);
    minimapWindow.style.top = `${(top / order.length) * MINIMAP_PX}px`;
    minimapWindow.style.height = `${Math.max(3, ((bottom - top) / order.length) * MINIMAP_PX)}px`;
  }

  /** Scroll so that the row standing for this point of the whole tree is in the middle of the view. */
  function scrollToMinimap(clientY: number): void {
    const box = minimap.getBoundingClientRect();
    const pre = Math.max(0, Math.min(order.length - 1, Math.floor(((clientY - box.top) / box.height) * order.length)));
    let lo = 0;
    let hi = visible.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (visible[mid].pre <= pre) lo = mid;
      else hi = mid - 1;
    }
    viewport.scrollTop = Math.max(0, lo * ROW_PX - viewport.clientHeight / 2);
    paint();
  }

  let dragging = false;
  minimap.addEventListener("pointerdown", (event) => {
    dragging = true;
    minimap.setPointerCapture(event.pointerId);
    scrollToMinimap(event.clientY);
  });
  minimap.addEventListener("pointermove", (event) => {
    if (dragging) scrollToMinimap(event.clientY);
  });
  const stopDragging = () => (dragging = false);
  minimap.addEventListener("pointerup", stopDragging);
  minimap.addEventListener("pointercancel", stopDragging);

  // -- details --

  let logs: LogRecord[] | null = null;
  function select(span: SpanRow): void {
    selected = span.span_id;
    paint();
    showDetails(span);
    if (span.full) return;
    void api.traceSpan(traceId, span.span_id).then(
      (found) => {
        span.full = found.spans.find((s) => s.service === span.service) ?? found.spans[0] ?? null;
        if (selected === span.span_id && span.full) showDetails(span);
      },
      () => {
        if (selected === span.span_id) details.append(h("p", { class: "bad" }, "details unavailable"));
      },
    );
  }

  function showDetails(span: SpanRow): void {
    const full = span.full;
    clear(
      details,
      h("h2", { class: "span-title" }, span.name),
      h(
        "table",
        { class: "attrs" },
        h(
          "tbody",
          null,
          (
            [
              ["service", span.service],
              ["kind", span.kind],
              ["status", full?.status_message ? `${span.status}: ${full.status_message}` : span.status],
              ["start", `+${ms(span.offset_ns / 1e6)}`],
              ["duration", ms(span.duration_ns / 1e6)],
              [
                "critical time",
                critical.has(span.span_id) ? ms((critical.get(span.span_id) ?? 0) / 1e6) : "off the critical path",
              ],
              ["span id", span.span_id],
              ["parent", (full ? full.parent_span_id : span.parent_span_id) ?? "none (root)"],
            ] as [string, string][]
          ).map(([key, value]) => h("tr", null, h("th", null, key), h("td", null, value))),
        ),
      ),
      full ? fullDetails(full) : h("p", { class: "muted" }, "loading attributes…"),
    );
  }

  function fullDetails(span: Span): HTMLElement {
    return h(
      "div",
      null,
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
              h(
                "li",
                null,
                h("strong", null, e.name),
                ` +${ms((e.time_ns - t0) / 1e6)} `,
                Object.keys(e.attributes).length ? attributesTable(e.attributes) : null,
              ),
            ),
          )
        : h("p", { class: "muted" }, "none"),
      h("h3", null, `Links (${span.links.length})`),
      span.links.length
        ? h(
            "ul",
            null,
            span.links.map((l) =>
              h(
                "li",
                null,
                traceLink(l.trace_id),
                ` span ${l.span_id} `,
                Object.keys(l.attributes).length ? attributesTable(l.attributes) : null,
              ),
            ),
          )
        : h("p", { class: "muted" }, "none"),
      h("h3", null, "Logs"),
      logList(span.span_id),
    );
  }

  function logList(spanId: string): HTMLElement {
    const mine = (logs ?? []).filter((l) => l.span_id === spanId);
    if (logs === null) return h("p", { class: "muted" }, "loading…");
    if (!mine.length) return h("p", { class: "muted" }, "none");
    return h(
      "ul",
      { class: "logs" },
      mine.map((l) =>
        h("li", null, h("span", { class: "sev" }, l.severity), ` +${ms((l.time_ns - t0) / 1e6)} `, l.body ?? ""),
      ),
    );
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
  performance.mark("spyglass:waterfall-rows");
  document.body.dataset.traceRenderMs = String(Math.round(performance.now() - started));
  container.dataset.rendered = "true";
  // The minimap is drawn after the first rows are on screen: a person reads the top of the tree first.
  requestAnimationFrame(() => {
    drawMinimap();
    markMinimapWindow();
    minimap.dataset.drawn = "true";
  });
  const onResize = () => drawMinimap();
  window.addEventListener("resize", onResize);

  void api.traceCriticalPath(traceId).then(
    (path) => {
      critical = new Map(path.spans.map((s) => [s.span_id, s.critical_ns]));
      criticalNote.textContent = `critical path: ${critical.size} of ${spans.length} spans`;
      paint();
    },
    () => (criticalNote.textContent = "critical path unavailable"),
  );
  void api.traceLogs(traceId).then(
    (answer) => (logs = answer.logs),
    () => (logs = []),
  );
  onLeave(() => {
    viewport.removeEventListener("scroll", onScroll);
    window.removeEventListener("resize", onResize);
  });
};

/** Right of the bar when there is room, else inside its right end (long bars) or left of it (short ones). */
function durationPlace(left: number, width: number): Partial<CSSStyleDeclaration> {
  if (left + width < 88) return { left: `${left + width + 0.5}%` };
  if (width > 12) return { right: `${100 - left - width + 0.5}%`, color: "#1f2328", fontWeight: "600" };
  return { right: `${100 - left + 0.5}%` };
}

/** The columnar answer as rows, each span id once (the first wins). */
function spanRows(answer: TraceColumns): SpanRow[] {
  const c = answer.columns;
  const d = answer.dictionaries;
  const rows: SpanRow[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < answer.span_count; i++) {
    const spanId = c.span_id[i];
    if (seen.has(spanId)) continue;
    seen.add(spanId);
    const parent = c.parent_index[i];
    rows.push({
      span_id: spanId,
      // A parent the trace does not hold keeps its id through the full span, if it came; else it is unknown.
      parent_span_id:
        parent >= 0
          ? c.span_id[parent]
          : parent === -1
            ? null
            : (answer.spans?.[i].parent_span_id ?? "(not in this trace)"),
      service: d.service[c.service[i]],
      name: d.name[c.name[i]],
      kind: d.kind[c.kind[i]],
      offset_ns: c.start_offset_ns[i],
      duration_ns: c.duration_ns[i],
      status: d.status[c.status[i]],
      full: answer.spans?.[i] ?? null,
    });
  }
  return rows;
}

/** Parents before children, siblings by start; spans whose parent is missing hang under the first root. */
function buildTree(spans: SpanRow[]): { roots: Node[]; order: Node[] } {
  const nodes = new Map<string, Node>();
  for (const span of spans) nodes.set(span.span_id, { span, children: [], depth: 0, subtree: 1, pre: 0 });
  const roots: Node[] = [];
  const orphans: Node[] = [];
  for (const node of nodes.values()) {
    const parentId = node.span.parent_span_id;
    const parent = parentId ? nodes.get(parentId) : undefined;
    if (parent && parent !== node) parent.children.push(node);
    else if (parentId) orphans.push(node);
    else roots.push(node);
  }
  const byStart = (a: Node, b: Node) => a.span.offset_ns - b.span.offset_ns;
  roots.sort(byStart);
  orphans.sort(byStart);
  if (!roots.length) roots.push(...orphans.splice(0, 1));
  for (const orphan of orphans) roots[0].children.push(orphan);
  // Preorder, iteratively (a chain of 100,000 spans is deeper than the JavaScript stack).
  const order: Node[] = [];
  const reached = new Set<Node>();
  const walk = (top: Node[]) => {
    const stack: Node[] = [];
    for (let i = top.length - 1; i >= 0; i--) stack.push(top[i]);
    while (stack.length) {
      const node = stack.pop()!;
      if (reached.has(node)) continue;
      reached.add(node);
      node.pre = order.length;
      order.push(node);
      node.children.sort(byStart);
      for (let i = node.children.length - 1; i >= 0; i--) {
        node.children[i].depth = node.depth + 1;
        stack.push(node.children[i]);
      }
    }
  };
  walk(roots);
  // Spans whose parents form a cycle (A under B under A) reach no root: each cycle is shown from its earliest.
  const unreached = [...nodes.values()].filter((node) => !reached.has(node)).sort(byStart);
  for (const node of unreached) {
    if (reached.has(node)) continue;
    const parent = nodes.get(node.span.parent_span_id ?? "");
    if (parent) parent.children = parent.children.filter((child) => child !== node); // the cycle, cut
    node.depth = 0;
    roots.push(node);
    walk([node]);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    let subtree = 1;
    for (const child of node.children) subtree += child.subtree;
    node.subtree = subtree;
  }
  return { roots, order };
}
