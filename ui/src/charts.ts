// Charts on uPlot: time series with drag-to-select and deployment markers, a latency heatmap, and a scatter of
// traces. Labels reach uPlot as plain strings (its legend and title use textContent); markers and heatmap
// cells are painted on the canvas, which never interprets text as markup.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { ms } from "./format";

/** The index to start a chart at: one step before the first step with any data, so a window mostly empty
 * (a service that started a minute ago, in a one-hour range) does not squeeze its data into a sliver. */
export function firstActive(counts: number[][]): number {
  let first = Infinity;
  for (const series of counts) {
    const i = series.findIndex((c) => c > 0);
    if (i >= 0) first = Math.min(first, i);
  }
  return Number.isFinite(first) ? Math.max(0, first - 1) : 0;
}

export interface SeriesSpec {
  label: string;
  values: (number | null)[];
  color: string;
  /** "y" (left axis, default) or "y2" (right axis) */
  scale?: string;
  dash?: number[];
  fill?: string;
}

export interface Marker {
  /** seconds since the epoch */
  x: number;
  label: string;
}

export interface Shade {
  from: number;
  to: number;
  color: string;
  label?: string;
}

export interface TimeChartOptions {
  name: string;
  title: string;
  xs: number[];
  series: SeriesSpec[];
  yLabel: string;
  y2Label?: string;
  height?: number;
  markers?: Marker[];
  shades?: Shade[];
  /** called with a dragged range, seconds since the epoch */
  onSelect?: (from: number, to: number) => void;
  format?: (value: number) => string;
  logY?: boolean;
  /** the left axis' range from the data's min and max (default: from 0 to a little over the max) */
  yRange?: (min: number, max: number) => [number, number];
}

/** Every live chart by name, so tests (and curious people in the console) can find pixel positions. */
export const charts = new Map<string, uPlot>();
(window as unknown as { __spyglass: unknown }).__spyglass = { charts };

function register(name: string, chart: uPlot, holder: HTMLElement): () => void {
  charts.set(name, chart);
  const observer = new ResizeObserver(() => {
    const width = Math.max(200, holder.clientWidth);
    if (Math.abs(width - chart.width) > 2) chart.setSize({ width, height: chart.height });
  });
  observer.observe(holder);
  return () => {
    observer.disconnect();
    chart.destroy();
    if (charts.get(name) === chart) charts.delete(name);
  };
}

function overlayPlugin(markers: Marker[], shades: Shade[]): uPlot.Plugin {
  return {
    hooks: {
      drawClear: [
        (u: uPlot) => {
          const ctx = u.ctx;
          const { left, top, width, height } = u.bbox;
          const clamp = (x: number) => Math.min(left + width, Math.max(left, x));
          for (const shade of shades) {
            // Clipped to the plot: a shade may run past the data (an alert still burning now).
            const x0 = clamp(u.valToPos(shade.from, "x", true));
            const x1 = clamp(u.valToPos(shade.to, "x", true));
            if (x0 === x1) continue;
            ctx.save();
            ctx.fillStyle = shade.color;
            ctx.fillRect(Math.min(x0, x1), top, Math.abs(x1 - x0), height);
            if (shade.label) {
              ctx.fillStyle = "#333";
              ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
              ctx.fillText(shade.label, Math.min(x0, x1) + 4 * devicePixelRatio, top + 12 * devicePixelRatio);
            }
            ctx.restore();
          }
        },
      ],
      draw: [
        (u: uPlot) => {
          const ctx = u.ctx;
          const { top, height } = u.bbox;
          for (const marker of markers) {
            const x = Math.round(u.valToPos(marker.x, "x", true));
            ctx.save();
            ctx.strokeStyle = "#8e44ad";
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.fillStyle = "#8e44ad";
            ctx.font = `bold ${11 * devicePixelRatio}px system-ui, sans-serif`;
            ctx.fillText(`▲ ${marker.label}`, x + 4 * devicePixelRatio, top + height - 6 * devicePixelRatio);
            ctx.restore();
          }
        },
      ],
    },
  };
}

export function timeChart(holder: HTMLElement, opts: TimeChartOptions): () => void {
  const format = opts.format ?? ms;
  const yRange = opts.yRange;
  const hasY2 = opts.series.some((s) => s.scale === "y2");
  const options: uPlot.Options = {
    title: opts.title,
    width: Math.max(200, holder.clientWidth || 600),
    height: opts.height ?? 200,
    plugins: [overlayPlugin(opts.markers ?? [], opts.shades ?? [])],
    cursor: { drag: { x: Boolean(opts.onSelect), y: false, setScale: false } },
    select: { show: Boolean(opts.onSelect), left: 0, top: 0, width: 0, height: 0 },
    scales: {
      x: { time: true },
      y: opts.logY
        ? { distr: 3 }
        : { range: (_u, min, max) => (yRange ? yRange(min, max) : [0, max > 0 ? max * 1.1 : 1]) },
    },
    axes: [
      {},
      { label: opts.yLabel, values: (_u, splits) => splits.map((v) => (v === null ? "" : format(v))), size: 70 },
      ...(hasY2
        ? [{ scale: "y2", side: 1, label: opts.y2Label ?? "", grid: { show: false }, size: 60 } as uPlot.Axis]
        : []),
    ],
    series: [
      {},
      ...opts.series.map((s): uPlot.Series => ({
        label: s.label,
        stroke: s.color,
        fill: s.fill,
        width: 2,
        dash: s.dash,
        scale: s.scale ?? "y",
        spanGaps: false,
        points: { show: opts.xs.length < 40 },
        value: (_u, v) => (v === null ? "–" : s.scale === "y2" ? String(Number(v.toFixed(2))) : format(v)),
      })),
    ],
    hooks: {
      setSelect: [
        (u: uPlot) => {
          if (!opts.onSelect || u.select.width < 3) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          opts.onSelect(from, to);
        },
      ],
    },
  };
  if (hasY2) options.scales!.y2 = { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] };
  const data: uPlot.AlignedData = [opts.xs, ...opts.series.map((s) => s.values)];
  const chart = new uPlot(options, data, holder);
  return register(opts.name, chart, holder);
}

export interface HeatmapOptions {
  name: string;
  title: string;
  startsS: number[];
  stepS: number;
  edgesMs: number[];
  counts: number[][];
  height?: number;
  markers?: Marker[];
  onSelect?: (from: number, to: number) => void;
}

/** Latency bands (log scale) over time; a cell's darkness is its share of the busiest cell. */
export function heatmap(holder: HTMLElement, opts: HeatmapOptions): () => void {
  const max = Math.max(1, ...opts.counts.flat());
  const stepS = opts.stepS;
  const xs = [...opts.startsS, (opts.startsS.at(-1) ?? 0) + stepS];
  const low = opts.edgesMs[0] ?? 0.1;
  const high = opts.edgesMs.at(-1) ?? 1000;
  const cells: uPlot.Plugin = {
    hooks: {
      drawClear: [
        (u: uPlot) => {
          const ctx = u.ctx;
          ctx.save();
          for (let i = 0; i < opts.counts.length; i++) {
            const x0 = u.valToPos(opts.startsS[i], "x", true);
            const x1 = u.valToPos(opts.startsS[i] + stepS, "x", true);
            const row = opts.counts[i];
            for (let j = 0; j < row.length; j++) {
              if (row[j] <= 0) continue;
              const y0 = u.valToPos(opts.edgesMs[j], "y", true);
              const y1 = u.valToPos(opts.edgesMs[j + 1], "y", true);
              const t = Math.sqrt(row[j] / max);
              ctx.fillStyle = `rgba(214, 39, 40, ${(0.12 + 0.88 * t).toFixed(3)})`;
              ctx.fillRect(x0, y1, Math.max(1, x1 - x0 - 1), Math.max(1, y0 - y1));
            }
          }
          ctx.restore();
        },
      ],
    },
  };
  const options: uPlot.Options = {
    title: opts.title,
    width: Math.max(200, holder.clientWidth || 600),
    height: opts.height ?? 220,
    plugins: [cells, overlayPlugin(opts.markers ?? [], [])],
    legend: { show: false },
    cursor: { drag: { x: Boolean(opts.onSelect), y: false, setScale: false } },
    scales: { x: { time: true, range: [xs[0], xs.at(-1)!] }, y: { distr: 3, range: [low, high] } },
    axes: [{}, { label: "latency", values: (_u, splits) => splits.map((v) => (v === null ? "" : ms(v))), size: 70 }],
    series: [{}, { label: "latency", stroke: "transparent", points: { show: false } }],
    hooks: {
      setSelect: [
        (u: uPlot) => {
          if (!opts.onSelect || u.select.width < 3) return;
          opts.onSelect(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"));
        },
      ],
    },
  };
  const data: uPlot.AlignedData = [xs, xs.map(() => null)];
  const chart = new uPlot(options, data, holder);
  return register(opts.name, chart, holder);
}

export interface ScatterPoint {
  x: number;
  y: number;
  error: boolean;
  id: string;
}

/** Traces as dots, duration over time; a click opens the dot nearest the pointer. */
export function scatter(
  holder: HTMLElement,
  name: string,
  points: ScatterPoint[],
  onPick: (id: string) => void,
): () => void {
  const sorted = [...points].sort((a, b) => a.x - b.x);
  const xs = sorted.map((p) => p.x);
  const ok = sorted.map((p) => (p.error ? null : p.y));
  const bad = sorted.map((p) => (p.error ? p.y : null));
  const dots = (color: string): uPlot.Series => ({
    stroke: color,
    fill: color,
    paths: () => null,
    points: { show: true, size: 7, stroke: color, fill: color },
  });
  const options: uPlot.Options = {
    title: "Trace duration over time (click a dot to open the trace)",
    width: Math.max(200, holder.clientWidth || 600),
    height: 240,
    // Padded ranges: the slowest, first and last dots sit inside the plot, whole and clickable, not cut in
    // half on its border.
    scales: {
      x: {
        time: true,
        range: (_u, min, max) => {
          const pad = (max - min) * 0.02 || 1;
          return [min - pad, max + pad];
        },
      },
      y: { distr: 3, range: (_u, min, max) => [min / 1.5, max * 1.5] },
    },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    axes: [{}, { label: "duration", values: (_u, splits) => splits.map((v) => (v === null ? "" : ms(v))), size: 70 }],
    series: [{}, { ...dots("#4e79a7"), label: "ok" }, { ...dots("#d62728"), label: "error" }],
  };
  const chart = new uPlot(options, [xs, ok, bad], holder);
  chart.over.style.cursor = "pointer";
  chart.over.addEventListener("click", (event) => {
    const rect = chart.over.getBoundingClientRect();
    const px = event.clientX - rect.left;
    const py = event.clientY - rect.top;
    let best = -1;
    let bestDistance = 15 * 15;
    for (let i = 0; i < sorted.length; i++) {
      const dx = chart.valToPos(sorted[i].x, "x") - px;
      const dy = chart.valToPos(sorted[i].y, "y") - py;
      const distance = dx * dx + dy * dy;
      if (distance < bestDistance) {
        bestDistance = distance;
        best = i;
      }
    }
    if (best >= 0) onPick(sorted[best].id);
  });
  return register(name, chart, holder);
}
