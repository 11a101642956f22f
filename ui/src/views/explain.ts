// Explain: a regression window of one root operation (dragged on its latency chart) against a baseline; the
// ranked findings with their evidence, example traces on both sides, and the logs and events that go with them.
import { api } from "../client";
import type { ExplainRequest, Finding, MetricGroup } from "../api";
import { h } from "../dom";
import { clock, ms, pct } from "../format";
import { firstActive, timeChart } from "../charts";
import { navigate, query, timeWindow } from "../state";
import type { View } from "../view";
import { empty, isEntry, loading, ownerBadge, shareBar, table, traceLink, valueView } from "./common";

const BASELINES: Record<string, string> = {
  before: "the equally long window just before",
  all: "everything before the selection in the time range",
  hour: "the same window one hour earlier",
  day: "the same window one day earlier",
};

function explainUrl(req: Partial<ExplainRequest>, baseline: string): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(req)) {
    if (value !== undefined && value !== "") q.set(key, String(typeof value === "number" ? Math.round(value) : value));
  }
  q.set("baseline", baseline);
  return `/explain?${q.toString()}`;
}

function baselineFor(mode: string, startNs: number, endNs: number, rangeStartNs: number): [number, number] {
  const width = endNs - startNs;
  if (mode === "all") return [Math.min(rangeStartNs, startNs - width), startNs];
  if (mode === "hour") return [startNs - 3600e9, endNs - 3600e9];
  if (mode === "day") return [startNs - 86400e9, endNs - 86400e9];
  return [startNs - width, startNs];
}

export const explainView: View = async (container, _args, onLeave) => {
  const params = query();
  const { startNs: rangeStart, endNs: rangeEnd, stepS } = timeWindow();
  const { services } = await api.services();
  const service = h(
    "select",
    { id: "explain-service" },
    services.map((s) => h("option", { attrs: { value: s.name } }, s.name)),
  );
  service.value = params.get("service") ?? (services.find((s) => s.name === "frontend") ?? services[0])?.name ?? "";
  const operation = h("select", { id: "explain-operation" });
  async function fillOperations(selected: string | null): Promise<void> {
    operation.replaceChildren();
    if (!service.value) return;
    const { operations } = await api.operations(service.value);
    const entries = operations.filter((o) => isEntry(o.kind));
    for (const o of entries.length ? entries : operations) {
      operation.append(h("option", { attrs: { value: o.name } }, o.name));
    }
    if (selected) operation.value = selected;
  }
  await fillOperations(params.get("operation"));
  const signal = h(
    "select",
    { id: "explain-signal" },
    h("option", { attrs: { value: "latency" } }, "latency"),
    h("option", { attrs: { value: "errors" } }, "errors"),
  );
  signal.value = params.get("signal") === "errors" ? "errors" : "latency";
  const baseline = h(
    "select",
    { id: "explain-baseline" },
    Object.entries(BASELINES).map(([value, label]) => h("option", { attrs: { value } }, label)),
  );
  baseline.value = params.get("baseline") ?? "before";
  const start = Number(params.get("start_ns")) || 0;
  const end = Number(params.get("end_ns")) || 0;
  const hasWindow = start > 0 && end > start;
  let bStart = Number(params.get("baseline_start_ns")) || 0;
  let bEnd = Number(params.get("baseline_end_ns")) || 0;
  if (hasWindow && !(bEnd > bStart)) [bStart, bEnd] = baselineFor(baseline.value, start, end, rangeStart);

  const current = (): Partial<ExplainRequest> => ({
    service: service.value,
    operation: operation.value,
    signal: signal.value as ExplainRequest["signal"],
  });
  service.addEventListener("change", () => {
    void fillOperations(null).then(() => navigate(explainUrl(current(), baseline.value)));
  });
  operation.addEventListener("change", () => navigate(explainUrl(current(), baseline.value)));
  const rerun = () => {
    if (!hasWindow) return;
    const [bs, be] = baselineFor(baseline.value, start, end, rangeStart);
    navigate(
      explainUrl(
        { ...current(), start_ns: start, end_ns: end, baseline_start_ns: bs, baseline_end_ns: be },
        baseline.value,
      ),
    );
  };
  signal.addEventListener("change", rerun);
  baseline.addEventListener("change", rerun);
  container.append(
    h("h1", null, "Explain"),
    h(
      "form",
      { class: "inline", on: { submit: (e) => e.preventDefault() } },
      h("label", null, "Root service ", service),
      h("label", null, "operation ", operation),
      h("label", null, "signal ", signal),
      h("label", null, "baseline ", baseline),
    ),
    h(
      "p",
      { class: "hint" },
      "Drag across the chart to choose the window to explain; it is compared with the baseline.",
    ),
  );
  const chart = h("div", { class: "chart", id: "explain-chart" });
  container.append(chart);
  const viewStart = hasWindow ? Math.min(rangeStart, bStart - (end - start)) : rangeStart;
  const viewEnd = hasWindow ? Math.max(rangeEnd, end) : rangeEnd;
  const metrics = await api.metrics({
    service: service.value,
    operation: operation.value,
    start_ns: viewStart,
    end_ns: viewEnd,
    step_s: stepS,
  });
  const all = metrics.groups[0]?.series ?? [];
  const points = all.slice(firstActive([all.map((p) => p.count)]));
  const errorsSignal = signal.value === "errors";
  onLeave(
    timeChart(chart, {
      name: "explain",
      title: `${service.value} ${operation.value}: ${errorsSignal ? "error rate" : "latency"} (drag to select)`,
      xs: points.map((p) => p.start_ns / 1e9),
      yLabel: errorsSignal ? "error %" : "latency",
      format: errorsSignal ? (v) => `${v.toFixed(1)}%` : undefined,
      series: errorsSignal
        ? [
            {
              label: "error %",
              values: points.map((p) => (p.count ? (100 * p.errors) / p.count : null)),
              color: "#d62728",
            },
          ]
        : [
            { label: "p50", values: points.map((p) => p.p50_ms), color: "#4e79a7" },
            { label: "p99", values: points.map((p) => p.p99_ms), color: "#e15759" },
          ],
      shades: hasWindow
        ? [
            { from: bStart / 1e9, to: bEnd / 1e9, color: "rgba(78,121,167,0.15)", label: "baseline" },
            { from: start / 1e9, to: end / 1e9, color: "rgba(225,87,89,0.18)", label: "regression" },
          ]
        : [],
      onSelect: (from, to) => {
        const s = Math.round(from * 1e9);
        const e = Math.round(to * 1e9);
        const [bs, be] = baselineFor(baseline.value, s, e, rangeStart);
        navigate(
          explainUrl(
            { ...current(), start_ns: s, end_ns: e, baseline_start_ns: bs, baseline_end_ns: be },
            baseline.value,
          ),
        );
      },
    }),
  );
  if (!hasWindow) {
    container.append(
      empty("Select a window on the chart (or drag across a latency chart of a service) to explain it."),
    );
    return;
  }
  container.append(
    h(
      "p",
      { class: "windows", id: "explain-windows" },
      `Regression ${clock(start)}–${clock(end)} against baseline ${clock(bStart)}–${clock(bEnd)}`,
    ),
  );
  const status = loading("Explaining…");
  container.append(status);
  const answer = await api.explain({
    service: service.value,
    operation: operation.value,
    start_ns: start,
    end_ns: end,
    baseline_start_ns: bStart,
    baseline_end_ns: bEnd,
    signal: signal.value as ExplainRequest["signal"],
  });
  status.remove();
  if (answer.symptom) {
    container.append(symptomTable(answer.symptom.baseline ?? null, answer.symptom.regression ?? null));
  }
  if (!answer.findings.length) {
    container.append(empty("Nothing changed enough between the two windows to explain."));
    return;
  }
  container.append(
    h("h2", null, `Findings (${answer.findings.length}), most likely cause first`),
    h("ol", { class: "findings", id: "findings" }, answer.findings.map(findingCard)),
  );
};

function symptomTable(baseline: MetricGroup | null, regression: MetricGroup | null): HTMLElement {
  const row = (name: string, g: MetricGroup | null) => [
    name,
    g ? String(g.count) : "–",
    g ? pct(g.count ? g.errors / g.count : null, 2) : "–",
    ms(g?.p50_ms),
    ms(g?.p90_ms),
    ms(g?.p99_ms),
  ];
  return h(
    "div",
    { class: "symptom" },
    h("h2", null, "Symptom (100% of spans)"),
    table(
      ["window", "requests", "error rate", "p50", "p90", "p99"],
      [row("baseline", baseline), row("regression", regression)],
    ),
  );
}

const KIND_LABELS: Record<Finding["kind"], string> = {
  attribute: "attribute",
  operation: "slower operation",
  n_plus_one: "N+1 calls",
  sequential: "sequential calls",
  error_source: "error source",
};

function findingCard(finding: Finding, rank: number): HTMLElement {
  const subject =
    finding.kind === "attribute"
      ? h("span", { class: "subject" }, h("code", null, `${finding.key}=${finding.value}`), ` on ${finding.service}`)
      : h("span", { class: "subject" }, h("code", null, finding.operation ?? ""), ` in ${finding.service}`);
  const evidence = finding.evidence ?? {};
  const regression = (evidence.regression ?? {}) as Record<string, unknown>;
  const base = (evidence.baseline ?? {}) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(regression), ...Object.keys(base)])];
  const others = Object.fromEntries(Object.entries(evidence).filter(([k]) => k !== "regression" && k !== "baseline"));
  const examples = finding.examples ?? { regression: [], baseline: [] };
  const compareHref =
    examples.regression.length && examples.baseline.length
      ? `/compare?a=${examples.regression.join(",")}&b=${examples.baseline.join(",")}`
      : null;
  return h(
    "li",
    { class: "finding", dataset: { kind: finding.kind, rank: String(rank + 1) } },
    h(
      "div",
      { class: "finding-head" },
      h("span", { class: `badge kind-${finding.kind}` }, KIND_LABELS[finding.kind] ?? finding.kind),
      subject,
      ownerBadge(finding.owner),
      h(
        "span",
        { class: "score", title: "share of the symptom explained" },
        shareBar(finding.score, "#e15759"),
        ` ${pct(finding.score, 0)}`,
      ),
    ),
    h("p", { class: "summary" }, finding.summary),
    h(
      "details",
      null,
      h("summary", null, "Evidence"),
      keys.length
        ? table(
            ["", "baseline", "regression"],
            keys.map((k) => [k, valueView(base[k]), valueView(regression[k])]),
            "evidence",
          )
        : null,
      Object.keys(others).length ? valueView(others) : null,
    ),
    h(
      "p",
      { class: "examples" },
      "Examples — regression: ",
      examples.regression.map((id, i) => [i ? ", " : "", traceLink(id, id.slice(0, 8))]),
      " · baseline: ",
      examples.baseline.map((id, i) => [i ? ", " : "", traceLink(id, id.slice(0, 8))]),
      compareHref ? [" · ", h("a", { href: compareHref }, "compare them")] : null,
    ),
    finding.logs?.length
      ? h(
          "details",
          null,
          h("summary", null, `Logs (${finding.logs.length})`),
          h(
            "ul",
            { class: "logs" },
            finding.logs.map((l) =>
              h(
                "li",
                null,
                h("span", { class: "sev" }, l.severity),
                ` ${clock(l.time_ns)} ${l.service}: `,
                l.body ?? "",
                " ",
                traceLink(l.trace_id, l.trace_id.slice(0, 8)),
              ),
            ),
          ),
        )
      : null,
    finding.events?.length
      ? h(
          "details",
          null,
          h("summary", null, `Span events (${finding.events.length})`),
          h(
            "ul",
            { class: "logs" },
            finding.events.map((e) =>
              h(
                "li",
                null,
                ` ${clock(e.time_ns)} ${e.service} · ${e.operation}: `,
                h("strong", null, e.name),
                " ",
                Object.entries(e.attributes)
                  .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
                  .join(" "),
                " ",
                traceLink(e.trace_id, e.trace_id.slice(0, 8)),
              ),
            ),
          ),
        )
      : null,
  );
}
