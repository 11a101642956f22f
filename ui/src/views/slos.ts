// SLOs: each SLO's SLI over time, the error budget it has left and the burn rates of both pairs, and the
// alerts its burns opened. An alert opens explain on the window that burned, against the baseline the alert
// was compared with, so explain shows the findings the alert carries.
import { api } from "../client";
import type { Alert, AlertFinding, BurnRates, SloStatus } from "../api";
import { h } from "../dom";
import { clock, dateTime, ms, num, pct } from "../format";
import { firstActive, timeChart, type Shade } from "../charts";
import { navigate, timeWindow } from "../state";
import type { View } from "../view";
import { empty, loading, ownerBadge, serviceLink, shareBar, table } from "./common";

/** The Google SRE workbook's pairs, as the server fires them (spyglass/analysis/slo_burn.py). */
const PAIRS: { name: "fast" | "slow"; long: keyof BurnRates; short: keyof BurnRates; threshold: number }[] = [
  { name: "fast", long: "1h", short: "5m", threshold: 14.4 },
  { name: "slow", long: "6h", short: "30m", threshold: 6 },
];

const EXAMPLE = `- name: Checkout is fast
  service: frontend
  operation: POST /checkout
  objective: 0.99        # 99% of requests ...
  latency_ms: 300        # ... at most 300 ms (leave it out for an errors SLO)`;

/** An objective as people write it: 0.99 is 99%, 0.999 is 99.9%. */
function objectiveText(objective: number): string {
  return `${num(objective * 100, 3)}%`;
}

function sloPromise(slo: SloStatus): string {
  const share = objectiveText(slo.objective);
  return slo.latency_ms !== null ? `${share} of requests within ${ms(slo.latency_ms)}` : `${share} of requests succeed`;
}

function burn(value: number | null): string {
  return value === null ? "–" : `${num(value, value >= 10 ? 1 : 2)}×`;
}

/** Explain with the alert's service, operation, signal and both windows filled in (views/explain.ts reads them). */
export function explainHref(alert: Alert): string {
  const w = alert.explained;
  const q = new URLSearchParams({
    service: alert.slo.service,
    operation: alert.slo.operation,
    signal: w.signal,
    start_ns: String(Math.round(w.start_ns)),
    end_ns: String(Math.round(w.end_ns)),
    baseline_start_ns: String(Math.round(w.baseline_start_ns)),
    baseline_end_ns: String(Math.round(w.baseline_end_ns)),
    baseline: w.baseline_rule === "day_before" ? "day" : "before",
  });
  return `/explain?${q.toString()}`;
}

export const slosView: View = async (container, _args, onLeave) => {
  container.append(
    h("h1", null, "SLOs"),
    h(
      "p",
      { class: "muted" },
      "Each SLO's share of good requests, from 100% of spans; the error budget it has left over its period; the burn rate of each window (1× spends the budget exactly over the period). The fast pair fires when 1 h and 5 m both burn at 14.4× or more, the slow pair when 6 h and 30 m both burn at 6× or more. Click an alert to explain its burn.",
    ),
  );
  const status = loading();
  container.append(status);
  const [{ slos }, { alerts }] = await Promise.all([api.slos(), api.alerts()]);
  status.remove();

  container.append(h("h2", null, "Alerts"));
  container.append(
    alerts.length
      ? h("ol", { class: "alerts", id: "alerts" }, alerts.map(alertCard))
      : empty("No alert has fired since the server started."),
  );

  container.append(h("h2", null, `Objectives (${slos.length})`));
  if (!slos.length) {
    container.append(
      h(
        "div",
        { class: "empty-slos", id: "no-slos" },
        h(
          "p",
          null,
          "No SLOs are defined. Give spyglass a file of them at start (",
          h("code", null, "spyglass serve --slos slos.yaml"),
          ") or post one to ",
          h("code", null, "POST /api/v1/slos"),
          " (kept in the data directory). A file lists SLOs like this:",
        ),
        h("pre", { class: "example" }, EXAMPLE),
        h(
          "p",
          { class: "muted" },
          "Leave latency_ms out for an errors SLO: a request is good when its span did not fail.",
        ),
      ),
    );
    return;
  }
  const { startNs, endNs, stepS } = timeWindow();
  const cards = h("div", { class: "cards", id: "slos" });
  container.append(cards);
  await Promise.all(
    slos.map(async (slo) => {
      const chart = h("div", { class: "chart", id: `slo-chart-${slo.id}` });
      const card = sloCard(slo, alerts, chart);
      cards.append(card);
      try {
        const series = await api.sloSeries(slo.id, { start_ns: startNs, end_ns: endNs, step_s: stepS });
        const points = series.points.slice(firstActive([series.points.map((p) => p.requests)]));
        if (!points.some((p) => p.requests > 0)) {
          chart.replaceWith(empty("No requests of this operation in the time range."));
          return;
        }
        const objective = slo.objective * 100;
        // Low enough to show the objective line with room under it, and every step's SLI.
        const floor = Math.max(0, objective - 3 * (100 - objective));
        const shades: Shade[] = alerts
          .filter((a) => a.slo.id === slo.id)
          .map((a) => ({
            from: a.explained.start_ns / 1e9,
            to: (a.resolved_ns ?? endNs) / 1e9,
            color: "rgba(225,87,89,0.15)",
            label: a.state === "firing" ? "burning" : "burnt",
          }));
        onLeave(
          timeChart(chart, {
            name: `slo:${slo.id}`,
            title: `SLI per ${series.step_s} s step (good requests) and burn rate`,
            xs: points.map((p) => p.start_ns / 1e9),
            yLabel: "good %",
            y2Label: "burn rate",
            height: 200,
            format: (v) => `${num(v, 2)}%`,
            yRange: (min, max) => [
              Math.max(0, Math.min(Number.isFinite(min) ? min : floor, floor)),
              Math.max(100, Number.isFinite(max) ? max : 100),
            ],
            shades,
            series: [
              {
                label: "SLI",
                values: points.map((p) => (p.sli === null ? null : 100 * p.sli)),
                color: "#4e79a7",
              },
              { label: "objective", values: points.map(() => objective), color: "#59a14f", dash: [6, 4] },
              {
                label: "burn rate",
                values: points.map((p) => p.burn_rate),
                color: "#e15759",
                scale: "y2",
              },
            ],
          }),
        );
      } catch (error) {
        chart.replaceWith(
          h("p", { class: "error-box" }, `Could not read this SLO's series: ${(error as Error).message}`),
        );
      }
    }),
  );
};

function sloCard(slo: SloStatus, alerts: Alert[], chart: HTMLElement): HTMLElement {
  const open = alerts.find((a) => a.slo.id === slo.id && a.state === "firing");
  const left = slo.budget_remaining;
  const budget = h(
    "p",
    { class: "slo-budget" },
    "Error budget left: ",
    h("strong", { class: left < 0.25 ? "bad" : "good" }, pct(left, 1)),
    " ",
    shareBar(Math.max(0, left), left < 0.25 ? "#e15759" : "#59a14f"),
    ` · SLI ${slo.sli === null ? "–" : pct(slo.sli, 3)} over the last ${slo.period_days} days`,
    ` (${Math.round(slo.bad_requests).toLocaleString()} bad of ${Math.round(slo.requests).toLocaleString()} requests)`,
  );
  const rates = slo.burn_rates;
  const burnTable = table(
    ["pair", "long window", "short window", "fires at", "now"],
    PAIRS.map((pair) => {
      const firing = slo.firing.includes(pair.name);
      return [
        pair.name,
        h("span", { class: "num" }, `${pair.long}: ${burn(rates[pair.long])}`),
        h("span", { class: "num" }, `${pair.short}: ${burn(rates[pair.short])}`),
        `both ≥ ${pair.threshold}×`,
        firing ? h("span", { class: "badge firing" }, "firing") : h("span", { class: "badge ok" }, "ok"),
      ];
    }),
    "slo-burn",
  );
  return h(
    "section",
    { class: `card slo${open ? " burning" : ""}`, dataset: { slo: slo.id } },
    h(
      "h2",
      null,
      h("span", { class: "slo-name" }, slo.name),
      h("span", { class: "badge" }, slo.kind),
      open ? h("span", { class: "badge firing" }, "alert firing") : null,
      ownerBadge(slo.owner),
    ),
    h(
      "p",
      { class: "slo-promise" },
      serviceLink(slo.service),
      " ",
      serviceLink(slo.service, slo.operation),
      `: ${sloPromise(slo)}, over ${slo.period_days} days`,
      h("span", { class: "muted" }, ` · defined in ${slo.defined_in}`),
    ),
    budget,
    burnTable,
    chart,
  );
}

function alertCard(alert: Alert): HTMLElement {
  const href = explainHref(alert);
  const w = alert.explained;
  const rates = alert.burn_rates;
  return h(
    "li",
    {
      class: `alert ${alert.state}`,
      dataset: { alert: alert.id, state: alert.state, slo: alert.slo.id },
      title: "open explain on the burning window",
      on: {
        click: (event) => {
          // Links inside the card (example traces) go where they say; anywhere else opens explain.
          if ((event.target as Element).closest("a")) return;
          navigate(href);
        },
      },
    },
    h(
      "div",
      { class: "alert-head" },
      h("span", { class: `badge ${alert.state}` }, alert.state),
      h("a", { href, class: "alert-explain" }, alert.slo.name),
      h("span", { class: "muted" }, `${alert.slo.service} · ${alert.slo.operation}`),
      alert.pairs_firing.map((pair) => h("span", { class: "badge" }, `${pair} pair`)),
      alert.owners.map((owner) => ownerBadge(owner)),
      h(
        "span",
        { class: "alert-time muted" },
        `since ${dateTime(alert.started_ns)}`,
        alert.resolved_ns !== null ? ` · resolved ${clock(alert.resolved_ns)}` : "",
      ),
    ),
    h("p", { class: "summary" }, alert.summary),
    h(
      "p",
      { class: "muted alert-numbers" },
      `Burning ${clock(w.start_ns)}–${clock(w.end_ns)} against ${w.baseline_rule === "day_before" ? "the same hours a day earlier" : "the window just before"} (${clock(w.baseline_start_ns)}–${clock(w.baseline_end_ns)}), ${w.signal}; `,
      `burn 5m ${burn(rates["5m"])}, 30m ${burn(rates["30m"])}, 1h ${burn(rates["1h"])}, 6h ${burn(rates["6h"])}; `,
      `it used ${pct(alert.budget_burnt, 1)} of the budget, ${pct(alert.budget_remaining, 1)} left.`,
    ),
    alert.explain_error ? h("p", { class: "error-box" }, `explain failed: ${alert.explain_error}`) : null,
    alert.findings.length
      ? h("ol", { class: "alert-findings" }, alert.findings.map(findingLine))
      : h("p", { class: "muted" }, "explain found no cause"),
    h("p", null, h("a", { href, class: "alert-open" }, "Explain this burn →")),
  );
}

function findingLine(finding: AlertFinding): HTMLElement {
  return h(
    "li",
    { dataset: { kind: finding.kind } },
    h("span", { class: `badge kind-${finding.kind}` }, finding.kind.replace(/_/g, " ")),
    " ",
    finding.summary,
    " ",
    finding.links.slice(0, 3).map((link, i) => [i ? " " : "", h("a", { href: link, class: "mono" }, `trace ${i + 1}`)]),
  );
}
