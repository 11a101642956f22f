// What every view shares: the time range being looked at, and navigation.

export const RANGES: Record<string, number> = { "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400 };
const RANGE_KEY = "spyglass.range";

export function rangeName(): string {
  const saved = localStorage.getItem(RANGE_KEY);
  return saved && saved in RANGES ? saved : "15m";
}

export function setRange(name: string): void {
  localStorage.setItem(RANGE_KEY, name);
}

/** The window of the current range ending now, in ns, and a chart step that gives ~60-120 points. */
export function timeWindow(): { startNs: number; endNs: number; stepS: number } {
  const seconds = RANGES[rangeName()];
  const endNs = Date.now() * 1e6;
  return { startNs: endNs - seconds * 1e9, endNs, stepS: Math.max(10, Math.ceil(seconds / 90 / 10) * 10) };
}

type Navigate = (path: string) => void;
let navigator: Navigate = (path) => {
  window.location.href = path;
};

export function setNavigator(fn: Navigate): void {
  navigator = fn;
}

export function navigate(path: string): void {
  navigator(path);
}

export function query(): URLSearchParams {
  return new URLSearchParams(window.location.search);
}
