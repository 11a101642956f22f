// Pieces several views share: headings, tables, links, badges.
import type { Child } from "../dom";
import { h } from "../dom";
import { serviceColor } from "../format";

/** Whether a span kind is a service's own entry point (it answers requests, or takes them off a queue). */
export function isEntry(kind: string): boolean {
  return kind === "server" || kind === "consumer";
}

export function serviceLink(service: string, operation?: string): HTMLAnchorElement {
  const query = operation ? `?operation=${encodeURIComponent(operation)}` : "";
  return h("a", { href: `/services/${encodeURIComponent(service)}${query}` }, operation ?? service);
}

export function traceLink(traceId: string, label?: string): HTMLAnchorElement {
  return h("a", { href: `/traces/${encodeURIComponent(traceId)}`, class: "mono" }, label ?? traceId.slice(0, 16));
}

export function serviceDot(service: string): HTMLSpanElement {
  return h("span", { class: "dot", style: { background: serviceColor(service) } });
}

export function ownerBadge(owner: string | null | undefined): HTMLSpanElement {
  return owner
    ? h("span", { class: "badge owner", title: "owning team" }, owner)
    : h("span", { class: "badge muted" }, "owner unknown");
}

export function table(headers: string[], rows: Child[][], className = ""): HTMLTableElement {
  return h(
    "table",
    { class: `grid ${className}` },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        headers.map((name) => h("th", null, name)),
      ),
    ),
    h(
      "tbody",
      null,
      rows.map((cells) =>
        h(
          "tr",
          null,
          cells.map((cell) => h("td", null, cell)),
        ),
      ),
    ),
  );
}

export function loading(text = "Loading…"): HTMLParagraphElement {
  return h("p", { class: "muted loading" }, text);
}

export function empty(text: string): HTMLParagraphElement {
  return h("p", { class: "muted empty" }, text);
}

export function shareBar(share: number, color = "#4e79a7"): HTMLSpanElement {
  return h(
    "span",
    { class: "bar" },
    h("span", { style: { width: `${Math.max(0, Math.min(1, share)) * 100}%`, background: color } }),
  );
}

/** Any JSON value as nested definition lists, all text. */
export function valueView(value: unknown): Child {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "null");
  if (Array.isArray(value)) {
    return h(
      "span",
      null,
      value.map((v, i) => [i ? ", " : "", valueView(v)]),
    );
  }
  if (typeof value === "object") {
    return h(
      "dl",
      { class: "kv" },
      Object.entries(value as Record<string, unknown>).map(([key, v]) => [
        h("dt", null, key),
        h("dd", null, valueView(v)),
      ]),
    );
  }
  if (typeof value === "number") return String(Number.isInteger(value) ? value : Number(value.toFixed(4)));
  // What a JSON value can still be once null, arrays, objects and numbers returned above: a string or a boolean
  // (TypeScript narrows `unknown` only to `{}` here, which the rule takes for a possible object).
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a string or a boolean, never an object
  return String(value);
}

export function attributesTable(attributes: Record<string, unknown>): HTMLElement {
  const keys = Object.keys(attributes).sort();
  if (!keys.length) return h("p", { class: "muted" }, "none");
  return h(
    "table",
    { class: "attrs" },
    h(
      "tbody",
      null,
      keys.map((key) => h("tr", null, h("th", null, key), h("td", null, formatValue(attributes[key])))),
    ),
  );
}

export function formatValue(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}
