// The single-page application: a header, a router over the History API, and one view at a time. The server
// answers every UI path with this page, so `/` and `/traces/{id}` work as direct links.
import "./style.css";
import { api } from "./client";
import { h, clear } from "./dom";
import { RANGES, rangeName, setNavigator, setRange } from "./state";
import type { View } from "./view";
import { servicesView } from "./views/services";
import { serviceView } from "./views/service";
import { searchView } from "./views/search";
import { traceView } from "./views/trace";
import { mapView } from "./views/map";
import { explainView } from "./views/explain";
import { compareView } from "./views/compare";
import { criticalPathView } from "./views/critical_path";
import { slosView } from "./views/slos";

interface Route {
  pattern: RegExp;
  view: View;
  nav?: string;
}

const ROUTES: Route[] = [
  { pattern: /^\/$/, view: servicesView, nav: "/" },
  { pattern: /^\/services\/([^/]+)$/, view: serviceView, nav: "/" },
  { pattern: /^\/search$/, view: searchView, nav: "/search" },
  { pattern: /^\/traces\/([^/]+)$/, view: traceView, nav: "/search" },
  { pattern: /^\/map$/, view: mapView, nav: "/map" },
  { pattern: /^\/explain$/, view: explainView, nav: "/explain" },
  { pattern: /^\/compare$/, view: compareView, nav: "/compare" },
  { pattern: /^\/critical-path$/, view: criticalPathView, nav: "/critical-path" },
  { pattern: /^\/slos$/, view: slosView, nav: "/slos" },
];

const NAV: [string, string][] = [
  ["/", "Services"],
  ["/search", "Traces"],
  ["/map", "Service map"],
  ["/explain", "Explain"],
  ["/critical-path", "Critical path"],
  ["/compare", "Compare"],
  ["/slos", "SLOs"],
];

const root = document.getElementById("app")!;
const navLinks = new Map<string, HTMLAnchorElement>();
const rangeSelect = h(
  "select",
  {
    id: "range",
    title: "time range",
    on: {
      change: () => {
        setRange(rangeSelect.value);
        void render();
      },
    },
  },
  ...Object.keys(RANGES).map((name) => h("option", { attrs: { value: name } }, `last ${name}`)),
);
rangeSelect.value = rangeName();
const statusLine = h("span", { class: "status" });
const main = h("main", { id: "view" });
root.append(
  h(
    "header",
    null,
    h("a", { href: "/", class: "brand" }, "spyglass"),
    h(
      "nav",
      null,
      NAV.map(([path, label]) => {
        const link = h("a", { href: path }, label);
        navLinks.set(path, link);
        return link;
      }),
    ),
    h("span", { class: "spacer" }),
    statusLine,
    rangeSelect,
  ),
  main,
);

let cleanup: (() => void)[] = [];
let generation = 0;

async function render(): Promise<void> {
  for (const fn of cleanup) fn();
  cleanup = [];
  const mine = ++generation;
  const path = window.location.pathname;
  const route = ROUTES.find((r) => r.pattern.test(path));
  for (const [navPath, link] of navLinks) link.classList.toggle("active", route?.nav === navPath);
  const container = h("div", { class: "view" });
  clear(main, container);
  if (!route) {
    container.append(h("h1", null, "Not found"), h("p", null, "No view at ", h("code", null, path)));
    return;
  }
  const args = route.pattern
    .exec(path)!
    .slice(1)
    .map((part) => decodeURIComponent(part));
  try {
    await route.view(container, args, (fn) => (mine === generation ? cleanup.push(fn) : fn()));
  } catch (error) {
    if (mine !== generation) return;
    container.append(h("p", { class: "error-box" }, `Could not load this view: ${(error as Error).message}`));
  }
}

function go(path: string): void {
  if (path === window.location.pathname + window.location.search) return;
  history.pushState(null, "", path);
  window.scrollTo(0, 0);
  void render();
}
setNavigator(go);

document.addEventListener("click", (event) => {
  if (
    event.defaultPrevented ||
    event.button !== 0 ||
    event.metaKey ||
    event.ctrlKey ||
    event.shiftKey ||
    event.altKey
  ) {
    return;
  }
  const link = (event.target as Element).closest?.("a");
  const href = link?.getAttribute("href");
  if (!link || !href || !href.startsWith("/") || href.startsWith("//") || link.target) return;
  if (href.startsWith("/api/") || href.startsWith("/static/")) return;
  event.preventDefault();
  go(href);
});
window.addEventListener("popstate", () => void render());

async function refreshStatus(): Promise<void> {
  try {
    const status = await api.status();
    statusLine.textContent = `${status.spans_received.toLocaleString()} spans received · v${status.version}`;
  } catch {
    statusLine.textContent = "";
  }
}

/** The SLOs link says how many alerts fire, so a burn is seen from any view. */
async function refreshAlerts(): Promise<void> {
  const link = navLinks.get("/slos");
  if (!link) return;
  try {
    const { alerts } = await api.alerts();
    const firing = alerts.filter((alert) => alert.state === "firing").length;
    clear(link, "SLOs", firing ? h("span", { class: "badge firing", id: "alerts-firing" }, String(firing)) : null);
  } catch {
    clear(link, "SLOs");
  }
}

void render();
void refreshStatus();
void refreshAlerts();
setInterval(() => {
  void refreshStatus();
  void refreshAlerts();
}, 10_000);
