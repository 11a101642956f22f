// The aggregate critical path of one root operation: each operation's share of the end-to-end time and the
// most that making it free could buy (Amdahl's bound), from GET /api/v1/critical-path.
import { api } from "../client";
import { h } from "../dom";
import { ms, pct, serviceColor } from "../format";
import { navigate, query, timeWindow } from "../state";
import type { View } from "../view";
import { empty, isEntry, loading, serviceDot, serviceLink, shareBar, table } from "./common";

export const criticalPathView: View = async (container) => {
  const params = query();
  const { services } = await api.services();
  const roots: { service: string; operation: string }[] = [];
  await Promise.all(
    services.map(async (s) => {
      const { operations } = await api.operations(s.name);
      for (const o of operations) {
        if (isEntry(o.kind)) roots.push({ service: s.name, operation: o.name });
      }
    }),
  );
  roots.sort((x, y) => (x.service + x.operation).localeCompare(y.service + y.operation));
  const key = (r: { service: string; operation: string }) => JSON.stringify([r.service, r.operation]);
  const select = h(
    "select",
    { id: "cp-root" },
    roots.map((r) => h("option", { attrs: { value: key(r) } }, `${r.service}: ${r.operation}`)),
  );
  const chosen =
    roots.find((r) => r.service === params.get("service") && r.operation === params.get("operation")) ??
    roots.find((r) => r.service === "frontend") ??
    roots[0];
  if (chosen) select.value = key(chosen);
  select.addEventListener("change", () => {
    const [service, operation] = JSON.parse(select.value) as [string, string];
    navigate(`/critical-path?${new URLSearchParams({ service, operation }).toString()}`);
  });
  container.append(
    h("h1", null, "Critical path"),
    h(
      "form",
      { class: "inline", on: { submit: (e) => e.preventDefault() } },
      h("label", null, "Root operation ", select),
    ),
    h(
      "p",
      { class: "muted" },
      "Where the end-to-end time of these requests actually waits: each operation's own time on the critical path, as a share of the total. Amdahl's bound is the most the whole request could speed up if that operation took no time at all.",
    ),
  );
  if (!chosen) {
    container.append(empty("No root operations seen yet."));
    return;
  }
  const status = loading();
  container.append(status);
  const { startNs, endNs } = timeWindow();
  const result = await api.criticalPath({
    service: chosen.service,
    operation: chosen.operation,
    start_ns: startNs,
    end_ns: endNs,
  });
  status.remove();
  if (!result.traces) {
    container.append(empty("No stored traces of this operation in the time range."));
    return;
  }
  container.append(
    h("p", { id: "cp-count" }, `${result.traces} traces of ${chosen.service} ${chosen.operation}`),
    table(
      ["service", "operation", "share of critical path", "p50 on path", "p99 on path", "max speedup (Amdahl)"],
      result.contributions.map((c) => [
        h("span", null, serviceDot(c.service), c.service),
        serviceLink(c.service, c.operation),
        h("span", null, shareBar(c.share, serviceColor(c.service)), ` ${pct(c.share)}`),
        ms(c.p50_ms),
        ms(c.p99_ms),
        c.max_speedup === null ? "∞" : `${c.max_speedup.toFixed(2)}×`,
      ]),
      "critical-path",
    ),
  );
};
