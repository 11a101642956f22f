// Two traces, or two sets of traces, side by side: per operation calls, own time and errors per trace, and
// the attribute values that differ; differences first (GET /api/v1/compare).
import { api } from "../client";
import { h } from "../dom";
import { ms, pct } from "../format";
import { navigate, query } from "../state";
import type { View } from "../view";
import { empty, loading, table, traceLink } from "./common";

const ids = (text: string) =>
  text
    .split(/[\s,]+/)
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);

export const compareView: View = async (container) => {
  const params = query();
  const a = h("textarea", { id: "compare-a", attrs: { rows: "2", placeholder: "trace ids, comma-separated" } });
  const b = h("textarea", { id: "compare-b", attrs: { rows: "2", placeholder: "trace ids, comma-separated" } });
  a.value = params.get("a") ?? "";
  b.value = params.get("b") ?? "";
  container.append(
    h("h1", null, "Compare"),
    h(
      "form",
      {
        class: "compare-form",
        on: {
          submit: (event) => {
            event.preventDefault();
            navigate(`/compare?a=${ids(a.value).join(",")}&b=${ids(b.value).join(",")}`);
          },
        },
      },
      h("label", null, "A ", a),
      h("label", null, "B ", b),
      h("button", { attrs: { type: "submit" } }, "Compare"),
    ),
  );
  const left = ids(a.value);
  const right = ids(b.value);
  if (!left.length || !right.length) {
    container.append(empty("Give one or more trace ids on each side (explain's example traces link here)."));
    return;
  }
  const status = loading();
  container.append(status);
  const result = await api.compare(left, right);
  status.remove();
  const signed = (v: number, unit = "") => `${v > 0 ? "+" : ""}${Number(v.toFixed(3))}${unit}`;
  container.append(
    h(
      "p",
      null,
      `A: ${result.a.traces} trace(s) `,
      left.slice(0, 5).map((id) => [traceLink(id, id.slice(0, 8)), " "]),
      ` · B: ${result.b.traces} trace(s) `,
      right.slice(0, 5).map((id) => [traceLink(id, id.slice(0, 8)), " "]),
    ),
    h("h2", null, "Operations (per trace)"),
    table(
      [
        "service",
        "operation",
        "calls A",
        "calls B",
        "own time A",
        "own time B",
        "Δ own time",
        "errors A",
        "errors B",
        "",
      ],
      result.operations.map((o) => [
        o.service,
        o.operation,
        String(o.a.calls_per_trace),
        String(o.b.calls_per_trace),
        ms(o.a.own_ms_per_trace),
        ms(o.b.own_ms_per_trace),
        h(
          "span",
          { class: o.difference.own_ms_per_trace > 0 ? "bad" : "good" },
          signed(o.difference.own_ms_per_trace, " ms"),
        ),
        String(o.a.errors_per_trace),
        String(o.b.errors_per_trace),
        o.only_in ? h("span", { class: "badge" }, `only in ${o.only_in.toUpperCase()}`) : "",
      ]),
      "compare-ops",
    ),
    h("h2", null, "Attribute values that differ (share of traces carrying them)"),
    result.attributes.length
      ? table(
          ["key", "value", "A", "B", "Δ"],
          result.attributes.map((r) => [r.key, r.value, pct(r.a, 0), pct(r.b, 0), signed(r.difference * 100, " pts")]),
          "compare-attrs",
        )
      : empty("The two sides carry the same attribute values."),
  );
};
