// Trace search: by root service and operation, attributes, duration and errors; the results as a scatter of
// duration over time (click a dot to open the trace) and as a list.
import { api } from "../client";
import { h } from "../dom";
import { clock, ms } from "../format";
import { scatter } from "../charts";
import { navigate, query, timeWindow } from "../state";
import type { View } from "../view";
import { empty, isEntry, loading, serviceDot, table, traceLink } from "./common";

const LIST_ROWS = 100;

export const searchView: View = async (container, _args, onLeave) => {
  const params = query();
  const { services } = await api.services();
  const service = h(
    "select",
    { id: "search-service", attrs: { name: "service" } },
    h("option", { attrs: { value: "" } }, "any service"),
    services.map((s) => h("option", { attrs: { value: s.name } }, s.name)),
  );
  service.value = params.get("service") ?? "";
  const operation = h("select", { id: "search-operation", attrs: { name: "operation" } });
  async function fillOperations(selected: string): Promise<void> {
    operation.replaceChildren(h("option", { attrs: { value: "" } }, "any operation"));
    if (!service.value) return;
    const { operations } = await api.operations(service.value);
    for (const o of operations.filter((op) => isEntry(op.kind))) {
      operation.append(h("option", { attrs: { value: o.name } }, o.name));
    }
    operation.value = selected;
  }
  await fillOperations(params.get("operation") ?? "");
  service.addEventListener("change", () => void fillOperations(""));
  const field = (name: string, placeholder: string, size = 10) =>
    h("input", {
      id: `search-${name}`,
      attrs: { name, placeholder, size: String(size), value: params.get(name) ?? "" },
    });
  const attrs = field("attr", "key:value, key:value", 28);
  attrs.value = params.getAll("attr").join(", ");
  const minMs = field("min_duration_ms", "min ms", 7);
  const maxMs = field("max_duration_ms", "max ms", 7);
  const errors = h("input", { id: "search-error", attrs: { type: "checkbox", name: "error" } });
  errors.checked = params.get("error") === "true";
  const limit = field("limit", "200", 5);
  const form = h(
    "form",
    {
      class: "search",
      on: {
        submit: (event) => {
          event.preventDefault();
          const q = new URLSearchParams();
          if (service.value) q.set("service", service.value);
          if (operation.value) q.set("operation", operation.value);
          const pairs = attrs.value
            .split(",")
            .map((p) => p.trim())
            .filter(Boolean);
          for (const pair of pairs) q.append("attr", pair);
          if (minMs.value) q.set("min_duration_ms", minMs.value);
          if (maxMs.value) q.set("max_duration_ms", maxMs.value);
          if (errors.checked) q.set("error", "true");
          if (limit.value) q.set("limit", limit.value);
          navigate(`/search?${q.toString()}`);
        },
      },
    },
    h("label", null, "Root service ", service),
    h("label", null, "operation ", operation),
    h("label", null, "attributes ", attrs),
    h("label", null, "duration ", minMs, " – ", maxMs),
    h("label", null, errors, " errors only"),
    h("label", null, "limit ", limit),
    h("button", { attrs: { type: "submit" } }, "Search"),
  );
  container.append(h("h1", null, "Traces"), form);
  const status = loading();
  container.append(status);
  const { startNs, endNs } = timeWindow();
  const { traces } = await api.search({
    service: params.get("service"),
    operation: params.get("operation"),
    attr: params.getAll("attr"),
    min_duration_ms: params.get("min_duration_ms"),
    max_duration_ms: params.get("max_duration_ms"),
    error: params.get("error"),
    start_ns: startNs,
    end_ns: endNs,
    limit: params.get("limit") || 200,
  });
  status.remove();
  if (!traces.length) {
    container.append(empty("No traces match."));
    return;
  }
  const chart = h("div", { class: "chart", id: "scatter" });
  container.append(h("p", { class: "muted", id: "result-count" }, `${traces.length} traces (newest first)`), chart);
  onLeave(
    scatter(
      chart,
      "scatter",
      traces.map((t) => ({
        x: t.start_ns / 1e9,
        y: Math.max(t.duration_ns / 1e6, 0.001),
        error: t.error,
        id: t.trace_id,
      })),
      (id) => navigate(`/traces/${id}`),
    ),
  );
  const slowest = [...traces].sort((a, b) => b.duration_ns - a.duration_ns)[0];
  container.append(
    h(
      "p",
      null,
      "Slowest: ",
      traceLink(slowest.trace_id, `${slowest.root_operation ?? "?"} · ${ms(slowest.duration_ns / 1e6)}`),
    ),
    table(
      ["started", "root", "duration", "spans", "error", "weight", "trace"],
      traces
        .slice(0, LIST_ROWS)
        .map((t) => [
          clock(t.start_ns),
          h("span", null, serviceDot(t.root_service ?? "?"), `${t.root_service ?? "?"}: ${t.root_operation ?? "?"}`),
          ms(t.duration_ns / 1e6),
          String(t.span_count),
          t.error ? h("span", { class: "bad" }, "error") : "",
          t.sample_weight === 1 ? "1" : t.sample_weight.toFixed(1),
          traceLink(t.trace_id),
        ]),
      "traces",
    ),
    ...(traces.length > LIST_ROWS
      ? [h("p", { class: "muted" }, `The first ${LIST_ROWS} are listed; every trace is a dot on the chart.`)]
      : []),
  );
};
