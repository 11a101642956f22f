// Numbers and times as people read them.

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 1) return `${value.toFixed(1)} ms`;
  return `${(value * 1000).toFixed(0)} µs`;
}

export const nsToMs = (ns: number): number => ns / 1e6;

export function pct(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${(value * 100).toFixed(digits)}%`;
}

export function rate(perSecond: number): string {
  return perSecond >= 10 ? `${perSecond.toFixed(0)}/s` : `${perSecond.toFixed(2)}/s`;
}

/** A step's rate: the server's (its count over the part of the step data covers), else count over the step. */
export function stepRate(point: { count: number; rate_per_s?: number }, stepS: number): number {
  return point.rate_per_s ?? point.count / stepS;
}

/** A span of time in seconds as people say it: "42 s", "3 min", "2.5 h". */
export function seconds(value: number): string {
  if (value < 120) return `${Math.round(value)} s`;
  if (value < 7200) return `${Math.round(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

export function clock(ns: number): string {
  return new Date(ns / 1e6).toLocaleTimeString([], { hour12: false });
}

export function dateTime(ns: number): string {
  const d = new Date(ns / 1e6);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

export function num(value: number, digits = 3): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(digits).replace(/\.?0+$/, "");
}

/** A stable colour per service name, so a service looks the same in every view. */
const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#b07aa1",
  "#76b7b2",
  "#edc948",
  "#ff9da7",
  "#9c755f",
  "#e15759",
  "#8cd17d",
  "#499894",
  "#d37295",
];
export function serviceColor(name: string): string {
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}
