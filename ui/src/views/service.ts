// One service, one operation at a time: RED series and the latency distribution over time, deployments marked
// on the time axis, a breakdown by any attribute on demand, and drag-to-explain on the latency chart.
import { api } from "../client";
import type { MetricGroup, VersionSeen } from "../api";
import { h } from "../dom";
import { ms, pct, rate, serviceColor, stepRate } from "../format";
import { firstActive, heatmap, timeChart, type Marker } from "../charts";
import { navigate, query, timeWindow } from "../state";
import type { View } from "../view";
import { empty, isEntry, loading, ownerBadge, serviceDot, table } from "./common";

const SUGGESTED_KEYS = [
  "service.version",
  "host.name",
  "cloud.availability_zone",
  "cloud.region",
  "http.route",
  "http.response.status_code",
  "peer.service",
  "customer.id",
  "customer.tier",
  "app.platform",
  "deployment.environment",
];
const GROUP_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"];

export function explainPath(service: string, operation: string, fromS: number, toS: number): string {
  const width = toS - fromS;
  const params = new URLSearchParams({
    service,
    operation,
    start_ns: String(Math.round(fromS * 1e9)),
    end_ns: String(Math.round(toS * 1e9)),
    baseline_start_ns: String(Math.round((fromS - width) * 1e9)),
    baseline_end_ns: String(Math.round(fromS * 1e9)),
  });
  return `/explain?${params.toString()}`;
}

export const serviceView: View = async (container, [service], onLeave) => {
  const params = query();
  const { startNs, endNs, stepS } = timeWindow();
  const window = { start_ns: startNs, end_ns: endNs };
  const status = loading();
  container.append(h("h1", null, serviceDot(service), service), status);
  const [operations, overview, versions] = await Promise.all([
    api.operations(service),
    api.overview({ ...window, step_s: endNs / 1e9 - startNs / 1e9 }),
    api.deployments(window),
  ]);
  // An operation is a name and a kind: a service's endpoint and its own call to another service often share a
  // name, and each row counts only its own spans.
  const kindsSeen = [...new Set(operations.operations.map((o) => o.kind))];
  const byKind = await Promise.all(
    kindsSeen.map((kind) => api.metrics({ ...window, service, group_by: "operation", kind })),
  );
  status.remove();
  const owner = overview.services.find((s) => s.service === service)?.owner;
  container.querySelector("h1")!.append(" ", ownerBadge(owner));
  const statKey = (name: string, kind: string) => `${kind}\u0000${name}`;
  const stats = new Map(
    byKind.flatMap((answer, i) => answer.groups.map((g) => [statKey(g.key, kindsSeen[i]), g] as const)),
  );
  const statOf = (o: { name: string; kind: string }) => stats.get(statKey(o.name, o.kind));
  const entries = operations.operations.filter((o) => isEntry(o.kind));
  const busiest = [...(entries.length ? entries : operations.operations)].sort(
    (a, b) => (statOf(b)?.count ?? 0) - (statOf(a)?.count ?? 0),
  )[0];
  const operation = params.get("operation") || busiest?.name;
  if (!operation) {
    container.append(empty("No operations seen for this service in this time range."));
    return;
  }
  // The kind asked for, else the operation's entry kind (server, consumer) when it has one.
  const named = operations.operations.filter((o) => o.name === operation);
  const kind =
    named.find((o) => o.kind === params.get("kind"))?.kind ??
    named.find((o) => isEntry(o.kind))?.kind ??
    named[0]?.kind ??
    "";
  const ofKind: { kind?: string } = kind ? { kind } : {};
  // Rates over the time data covers (the server's covered_s), not the range.
  const seconds = byKind[0]?.covered_s ?? (endNs - startNs) / 1e9;
  const link = (name: string, extra: Record<string, string> = {}) => {
    const q = new URLSearchParams({ operation: name, ...extra });
    return `/services/${encodeURIComponent(service)}?${q.toString()}`;
  };
  const opTable = table(
    ["operation", "kind", "calls", "error rate", "p50", "p99", ""],
    operations.operations.map((o) => {
      const g = statOf(o);
      const selected = o.name === operation && o.kind === kind;
      return [
        h("a", { href: link(o.name, { kind: o.kind }), class: selected ? "selected" : "" }, o.name),
        o.kind,
        g ? rate(g.rate_per_s ?? g.count / seconds) : "–",
        g ? pct(g.count ? g.errors / g.count : null, 2) : "–",
        ms(g?.p50_ms),
        ms(g?.p99_ms),
        h("a", { href: `/search?${new URLSearchParams({ service, operation: o.name }).toString()}` }, "traces"),
      ];
    }),
    "operations",
  );
  // Every service's deployments: a slower frontend is often a dependency's new version.
  const deployments = versions.versions.filter((v) => v.deployed);
  const markers: Marker[] = deployments.map((v) => ({ x: v.first_seen_ns / 1e9, label: `${v.service} ${v.version}` }));
  const actions = h(
    "p",
    { class: "actions" },
    h("a", { href: `/search?${new URLSearchParams({ service, operation }).toString()}` }, "Find traces"),
    isEntry(kind)
      ? [
          " · ",
          h("a", { href: `/critical-path?${new URLSearchParams({ service, operation }).toString()}` }, "Critical path"),
        ]
      : null,
    " · ",
    h("span", { class: "hint" }, "Drag across the latency chart to explain a spike"),
  );
  const latency = h("div", { class: "chart", id: "latency-chart" });
  const traffic = h("div", { class: "chart" });
  const distribution = h("div", { class: "chart", id: "heatmap" });
  container.append(
    h("h2", { id: "operation-title" }, h("span", { class: "muted" }, `${kind} · `), operation),
    actions,
    versionList(versions.versions.filter((v) => v.service === service || v.deployed)),
    h("div", { class: "pair" }, latency, traffic),
    distribution,
    h("h2", null, "Operations"),
    opTable,
  );
  const onSelect = (from: number, to: number) => navigate(explainPath(service, operation, from, to));
  const [series, cells] = await Promise.all([
    api.metrics({ ...window, service, operation, step_s: stepS, ...ofKind }),
    api.heatmap({ ...window, service, operation, step_s: stepS, ...ofKind }),
  ]);
  const all = series.groups[0]?.series ?? [];
  const skip = firstActive([all.map((p) => p.count)]);
  const points = all.slice(skip);
  const xs = points.map((p) => p.start_ns / 1e9);
  const step = series.step_s ?? stepS;
  onLeave(
    timeChart(latency, {
      name: "latency",
      title: "latency (drag to explain)",
      xs,
      yLabel: "latency",
      markers,
      onSelect,
      series: [
        { label: "p50", values: points.map((p) => p.p50_ms), color: "#4e79a7" },
        { label: "p90", values: points.map((p) => p.p90_ms ?? null), color: "#f28e2b" },
        { label: "p99", values: points.map((p) => p.p99_ms), color: "#e15759" },
      ],
    }),
  );
  onLeave(
    timeChart(traffic, {
      name: "traffic",
      title: "rate and errors",
      xs,
      yLabel: "req/s",
      y2Label: "error %",
      markers,
      format: (v) => v.toFixed(v >= 10 ? 0 : 1),
      series: [
        {
          label: "req/s",
          values: points.map((p) => stepRate(p, step)),
          color: "#59a14f",
          fill: "rgba(89,161,79,0.12)",
        },
        {
          label: "error %",
          values: points.map((p) => (p.count ? (100 * p.errors) / p.count : null)),
          color: "#d62728",
          scale: "y2",
        },
      ],
    }),
  );
  if (cells.total > 0) {
    onLeave(
      heatmap(distribution, {
        name: "heatmap",
        title: `latency distribution (${cells.total.toLocaleString()} spans; darker = more)`,
        startsS: cells.starts_ns.slice(skip).map((t) => t / 1e9),
        stepS: cells.step_s,
        edgesMs: cells.edges_ms,
        counts: cells.counts.slice(skip),
        markers,
        onSelect,
      }),
    );
  }
  container.insertBefore(
    groupBySection(service, operation, ofKind, params.get("group_by"), window, stepS, markers, onLeave),
    opTable.previousSibling,
  );
};

function versionList(versions: VersionSeen[]): HTMLElement {
  if (!versions.length) return h("p", { class: "muted versions" }, "No service.version seen in this range.");
  return h(
    "p",
    { class: "versions" },
    "Versions: ",
    versions.map((v, i) => [
      i ? " · " : "",
      h("span", { class: v.deployed ? "badge deploy" : "badge" }, `${v.service} ${v.version}`),
      v.deployed ? ` deployed ${new Date(v.first_seen_ns / 1e6).toLocaleTimeString([], { hour12: false })}` : "",
    ]),
  );
}

function groupBySection(
  service: string,
  operation: string,
  ofKind: { kind?: string },
  current: string | null,
  window: { start_ns: number; end_ns: number },
  stepS: number,
  markers: Marker[],
  onLeave: (fn: () => void) => void,
): HTMLElement {
  const input = h("input", {
    id: "group-by",
    attrs: { list: "group-keys", placeholder: "attribute key, e.g. service.version", value: current ?? "" },
  });
  const list = h(
    "datalist",
    { id: "group-keys" },
    SUGGESTED_KEYS.map((k) => h("option", { attrs: { value: k } })),
  );
  const body = h("div", { id: "breakdown" });
  const form = h(
    "form",
    {
      class: "inline",
      on: {
        submit: (event) => {
          event.preventDefault();
          const key = input.value.trim();
          const q = new URLSearchParams({ operation, ...ofKind, ...(key ? { group_by: key } : {}) });
          history.replaceState(null, "", `/services/${encodeURIComponent(service)}?${q.toString()}`);
          void draw(key);
        },
      },
    },
    h("label", null, "Break down by ", input, list),
    h("button", { attrs: { type: "submit" } }, "Break down"),
  );
  let dispose: (() => void) | null = null;
  onLeave(() => dispose?.());
  async function draw(key: string): Promise<void> {
    dispose?.();
    dispose = null;
    body.replaceChildren();
    if (!key) return;
    body.append(loading());
    const metrics = await api.metrics({ ...window, service, operation, group_by: key, step_s: stepS, ...ofKind });
    body.replaceChildren();
    if (!metrics.groups.length) {
      body.append(empty(`No span of this operation carries ${key} in this range.`));
      return;
    }
    const top = metrics.groups.slice(0, GROUP_COLORS.length);
    const skip = firstActive(top.map((g) => (g.series ?? []).map((p) => p.count)));
    const xs = (top[0].series ?? []).slice(skip).map((p) => p.start_ns / 1e9);
    const chart = h("div", { class: "chart", id: "breakdown-chart" });
    if (metrics.estimated) {
      body.append(
        h("p", { class: "muted" }, "Estimated from buffered and weighted stored spans (no rollup for this key)."),
      );
    }
    body.append(
      chart,
      table(
        [key, "calls", "errors", "p50", "p90", "p99", "max"],
        metrics.groups.map((g: MetricGroup) => [
          h("span", { class: "group-key" }, g.key),
          String(g.count),
          String(g.errors),
          ms(g.p50_ms),
          ms(g.p90_ms),
          ms(g.p99_ms),
          ms(g.max_ms),
        ]),
        "breakdown",
      ),
    );
    dispose = timeChart(chart, {
      name: "breakdown",
      title: `p99 by ${key}`,
      xs,
      yLabel: "p99",
      markers,
      series: top.map((g, i) => ({
        label: g.key,
        values: (g.series ?? []).slice(skip).map((p) => p.p99_ms),
        color: key === "service" ? serviceColor(g.key) : GROUP_COLORS[i],
      })),
    });
  }
  if (current) void draw(current);
  return h("section", { class: "group-by" }, h("h2", null, "Breakdown"), form, body);
}
