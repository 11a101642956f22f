// Home: every service with its request rate, error rate and p50/p99 latency over time, and its owning team.
import { api } from "../client";
import { h } from "../dom";
import { ms, pct, rate, seconds as spanOfTime, stepRate } from "../format";
import { firstActive, timeChart, type Marker } from "../charts";
import { timeWindow } from "../state";
import type { View } from "../view";
import { empty, loading, ownerBadge, serviceDot } from "./common";

export const servicesView: View = async (container, _args, onLeave) => {
  const status = loading();
  container.append(h("h1", null, "Services"), status);
  const { startNs, endNs, stepS } = timeWindow();
  const [overview, versions] = await Promise.all([
    api.overview({ start_ns: startNs, end_ns: endNs, step_s: stepS }),
    api.deployments({ start_ns: startNs, end_ns: endNs }),
  ]);
  status.remove();
  if (!overview.services.length) {
    container.append(empty("No spans yet. Point an OpenTelemetry SDK at the OTLP port, or run `spyglass demo`."));
    return;
  }
  // Rates are over the time data covers (the server's covered_s), not the range: a server that started a
  // minute ago shows its traffic's real rate.
  const seconds = overview.covered_s ?? (endNs - startNs) / 1e9;
  const summary = h(
    "table",
    { class: "grid", id: "services" },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        ["service", "owner", "requests", "error rate", "p50", "p99", ""].map((t) => h("th", null, t)),
      ),
    ),
    h(
      "tbody",
      null,
      overview.services.map((s) =>
        h(
          "tr",
          { dataset: { service: s.service } },
          h(
            "td",
            null,
            serviceDot(s.service),
            h("a", { href: `/services/${encodeURIComponent(s.service)}`, class: "service-name" }, s.service),
          ),
          h("td", null, ownerBadge(s.owner)),
          h("td", { class: "num" }, rate(s.rate_per_s ?? s.count / seconds)),
          h("td", { class: `num ${s.errors ? "bad" : ""}` }, pct(s.count ? s.errors / s.count : null, 2)),
          h("td", { class: "num" }, ms(s.p50_ms)),
          h("td", { class: "num" }, ms(s.p99_ms)),
          h(
            "td",
            null,
            h("a", { href: `/services/${encodeURIComponent(s.service)}` }, "operations"),
            " · ",
            h("a", { href: `/search?service=${encodeURIComponent(s.service)}` }, "traces"),
          ),
        ),
      ),
    ),
  );
  container.append(
    h(
      "p",
      { class: "muted" },
      `Rate, errors and latency of each service's entry spans (server and consumer), from 100% of spans; rates over the ${spanOfTime(seconds)} data covers.`,
    ),
    summary,
  );
  const cards = h("div", { class: "cards" });
  container.append(cards);
  const skip = firstActive(overview.services.map((s) => s.series.map((p) => p.count)));
  for (const service of overview.services) {
    const s = { ...service, series: service.series.slice(skip) };
    const markers: Marker[] = versions.versions
      .filter((v) => v.deployed && v.service === s.service)
      .map((v) => ({ x: v.first_seen_ns / 1e9, label: v.version }));
    const xs = s.series.map((p) => p.start_ns / 1e9);
    const latency = h("div", { class: "chart" });
    const traffic = h("div", { class: "chart" });
    cards.append(
      h(
        "section",
        { class: "card", dataset: { service: s.service } },
        h(
          "h2",
          null,
          serviceDot(s.service),
          h("a", { href: `/services/${encodeURIComponent(s.service)}` }, s.service),
          " ",
          ownerBadge(s.owner),
        ),
        h("div", { class: "pair" }, latency, traffic),
      ),
    );
    onLeave(
      timeChart(latency, {
        name: `latency:${s.service}`,
        title: "latency",
        xs,
        yLabel: "latency",
        height: 160,
        markers,
        series: [
          { label: "p50", values: s.series.map((p) => p.p50_ms), color: "#4e79a7" },
          { label: "p99", values: s.series.map((p) => p.p99_ms), color: "#e15759" },
        ],
      }),
    );
    onLeave(
      timeChart(traffic, {
        name: `traffic:${s.service}`,
        title: "requests and errors",
        xs,
        yLabel: "req/s",
        y2Label: "error %",
        height: 160,
        markers,
        format: (v) => v.toFixed(v >= 10 ? 0 : 1),
        series: [
          {
            label: "req/s",
            values: s.series.map((p) => stepRate(p, overview.step_s)),
            color: "#59a14f",
            fill: "rgba(89,161,79,0.12)",
          },
          {
            label: "error %",
            values: s.series.map((p) => (p.count ? (100 * p.errors) / p.count : null)),
            color: "#d62728",
            scale: "y2",
          },
        ],
      }),
    );
  }
};
