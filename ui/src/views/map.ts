// The service map: who calls whom, with calls, errors and p99 on every edge, laid out by dagre and drawn as
// SVG. Names are SVG text nodes (never markup).
import dagre from "@dagrejs/dagre";
import type { EdgeLabel, GraphLabel, NodeLabel } from "@dagrejs/dagre";
import { api } from "../client";
import type { Edge } from "../api";
import { h, svg } from "../dom";
import { ms, pct, serviceColor } from "../format";
import { navigate, timeWindow } from "../state";
import type { View } from "../view";
import { empty, loading, table } from "./common";

const NODE_W = 150;
const NODE_H = 44;

export const mapView: View = async (container) => {
  const status = loading();
  container.append(h("h1", null, "Service map"), status);
  const { startNs, endNs } = timeWindow();
  const { edges } = await api.dependencies({ start_ns: startNs, end_ns: endNs });
  status.remove();
  if (!edges.length) {
    container.append(empty("No calls between services in this time range."));
    return;
  }
  const external = new Set(edges.filter((e) => e.uninstrumented).map((e) => e.child));
  const graph = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>({ multigraph: false });
  graph.setGraph({ rankdir: "LR", nodesep: 30, ranksep: 120, marginx: 20, marginy: 20 });
  graph.setDefaultEdgeLabel(() => ({}));
  const names = new Set(edges.flatMap((e) => [e.parent, e.child]));
  for (const name of names) graph.setNode(name, { width: NODE_W, height: NODE_H });
  for (const edge of edges) {
    if (edge.parent !== edge.child) graph.setEdge(edge.parent, edge.child, { width: 120, height: 30, labelpos: "c" });
  }
  dagre.layout(graph);
  const size = graph.graph();
  const width = Math.ceil(size.width ?? 600);
  const height = Math.ceil(size.height ?? 400);
  const maxCalls = Math.max(...edges.map((e) => e.calls));
  const canvas = svg("svg", { id: "service-map", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  canvas.append(
    svg(
      "defs",
      {},
      svg(
        "marker",
        {
          id: "arrow",
          viewBox: "0 0 10 10",
          refX: 10,
          refY: 5,
          markerWidth: 10,
          markerHeight: 10,
          markerUnits: "userSpaceOnUse",
          orient: "auto-start-reverse",
        },
        svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#777" }),
      ),
    ),
  );
  for (const edge of edges) {
    if (edge.parent === edge.child) continue;
    const laid = graph.edge(edge.parent, edge.child);
    const points = laid.points ?? [];
    const d = points
      .map((p: { x: number; y: number }, i: number) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`)
      .join(" ");
    const errorRate = edge.calls ? edge.errors / edge.calls : 0;
    const stroke = errorRate > 0.05 ? "#d62728" : errorRate > 0 ? "#e6a23c" : "#888";
    const group = svg("g", { class: "edge", "data-parent": edge.parent, "data-child": edge.child });
    group.append(
      svg("path", {
        d,
        fill: "none",
        stroke,
        "stroke-width": (1 + 4 * Math.sqrt(edge.calls / maxCalls)).toFixed(1),
        "marker-end": "url(#arrow)",
      }),
    );
    const x = laid.x ?? 0;
    const y = laid.y ?? 0;
    group.append(
      svg("rect", { x: x - 60, y: y - 15, width: 120, height: 30, rx: 4, fill: "white", stroke: "#ddd" }),
      svg(
        "text",
        { x, y: y - 3, "text-anchor": "middle", class: "edge-label" },
        `${edge.calls.toLocaleString()} calls · p99 ${ms(edge.p99_ms)}`,
      ),
      svg(
        "text",
        { x, y: y + 10, "text-anchor": "middle", class: `edge-label ${edge.errors ? "bad" : ""}` },
        `${edge.errors} errors (${pct(errorRate)})`,
      ),
    );
    canvas.append(group);
  }
  for (const name of names) {
    // dagre.layout has placed every node: x and y are set.
    const node = graph.node(name) as NodeLabel & { x: number; y: number };
    const isExternal = external.has(name);
    const group = svg("g", {
      class: `node ${isExternal ? "external" : ""}`,
      "data-service": name,
      transform: `translate(${node.x - NODE_W / 2}, ${node.y - NODE_H / 2})`,
    });
    group.append(
      svg("rect", {
        width: NODE_W,
        height: NODE_H,
        rx: 8,
        fill: isExternal ? "#f4f4f4" : "white",
        stroke: isExternal ? "#999" : serviceColor(name),
        "stroke-width": 2,
        "stroke-dasharray": isExternal ? "5 3" : "0",
      }),
      svg("text", { x: NODE_W / 2, y: 19, "text-anchor": "middle", class: "node-label" }, name),
      svg(
        "text",
        { x: NODE_W / 2, y: 34, "text-anchor": "middle", class: "node-sub" },
        isExternal ? "not instrumented" : "service",
      ),
    );
    if (!isExternal) {
      group.style.cursor = "pointer";
      group.addEventListener("click", () => navigate(`/services/${encodeURIComponent(name)}`));
    }
    canvas.append(group);
  }
  container.append(
    h(
      "p",
      { class: "muted" },
      "Edges: calls, errors and p99 of the calls from one service to the next (client spans, or the callee's server spans). Dashed: called but not instrumented. Click a service to open it.",
    ),
    h("div", { class: "map-holder" }, canvas),
    h("h2", null, "Edges"),
    table(
      ["caller", "callee", "calls", "errors", "p99"],
      [...edges]
        .sort((a: Edge, b: Edge) => b.calls - a.calls)
        .map((e) => [e.parent, e.child, e.calls.toLocaleString(), String(e.errors), ms(e.p99_ms)]),
      "edges",
    ),
  );
};
