// The JSON API as the UI sees it: typed shapes (the API reference and spyglass/api/ui_support.py) and one fetch helper.
// Times are ns since the epoch; they exceed 2^53, so they are off by a few hundred ns here, which no view shows.

export type Attributes = Record<string, unknown>;

export interface Span {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  service: string;
  name: string;
  kind: string;
  start_ns: number;
  duration_ns: number;
  status: "unset" | "ok" | "error";
  status_message: string;
  attributes: Attributes;
  resource: Attributes;
  events: { name: string; time_ns: number; attributes: Attributes }[];
  links: { trace_id: string; span_id: string; attributes: Attributes }[];
}

/** `GET /api/v1/traces/{id}?format=columns`: what the waterfall draws of every span, one list per column.
 * String columns are indices into `dictionaries`; `parent_index` is a row (-1 a root, -2 a missing parent);
 * starts are offsets from `start_ns`. `spans` (full, same order) only when the trace is at most `spans_up_to`. */
export interface TraceColumns {
  trace_id: string;
  span_count: number;
  start_ns: number;
  dictionaries: { service: string[]; name: string[]; kind: string[]; status: Span["status"][] };
  columns: {
    span_id: string[];
    parent_index: number[];
    start_offset_ns: number[];
    duration_ns: number[];
    service: number[];
    name: number[];
    kind: number[];
    status: number[];
  };
  spans?: Span[];
}

export interface TraceSummary {
  trace_id: string;
  root_service: string | null;
  root_operation: string | null;
  start_ns: number;
  duration_ns: number;
  span_count: number;
  error: boolean;
  sample_weight: number;
}

export interface MetricPoint {
  start_ns: number;
  count: number;
  errors: number;
  p50_ms: number | null;
  p90_ms?: number | null;
  p99_ms: number | null;
  max_ms?: number | null;
  /** Per second of the part of the step that data covers (the server's answer; older servers leave it out). */
  rate_per_s?: number;
}

/** The part of the asked window that data covers: rates divide by it, not by the window's length. */
export interface Coverage {
  covered_start_ns?: number;
  covered_end_ns?: number;
  covered_s?: number;
}

export interface MetricGroup extends MetricPoint {
  key: string;
  series?: MetricPoint[];
}

export interface Metrics extends Coverage {
  groups: MetricGroup[];
  estimated: boolean;
  step_s?: number;
  start_ns: number;
  end_ns: number;
}

export interface ServiceOverview {
  service: string;
  owner: string | null;
  count: number;
  errors: number;
  p50_ms: number | null;
  p99_ms: number | null;
  /** Requests per second over the time data covers. */
  rate_per_s?: number;
  series: MetricPoint[];
}

export interface Heatmap {
  step_s: number;
  starts_ns: number[];
  edges_ms: number[];
  counts: number[][];
  total: number;
}

export interface VersionSeen {
  service: string;
  version: string;
  first_seen_ns: number;
  deployed: boolean;
}

export interface Edge {
  parent: string;
  child: string;
  calls: number;
  errors: number;
  p99_ms: number;
  uninstrumented?: boolean;
}

export interface LogRecord {
  time_ns: number;
  trace_id: string;
  span_id: string | null;
  severity: string;
  body: string | null;
  attributes: Attributes;
  service: string;
}

export interface FindingEvent {
  time_ns: number;
  trace_id: string;
  span_id: string;
  service: string;
  operation: string;
  name: string;
  attributes: Attributes;
}

export interface Finding {
  kind: "attribute" | "operation" | "n_plus_one" | "sequential" | "error_source";
  score: number;
  summary: string;
  service: string;
  operation?: string;
  key?: string;
  value?: string;
  owner: string | null;
  evidence: Record<string, unknown>;
  examples: { regression: string[]; baseline: string[] };
  logs?: LogRecord[];
  events?: FindingEvent[];
}

export interface ExplainRequest {
  service: string;
  operation: string;
  start_ns: number;
  end_ns: number;
  baseline_start_ns: number;
  baseline_end_ns: number;
  signal: "latency" | "errors";
}

export interface ExplainResponse {
  findings: Finding[];
  symptom?: { regression: MetricGroup | null; baseline: MetricGroup | null };
}

export interface Contribution {
  service: string;
  operation: string;
  share: number;
  p50_ms: number;
  p99_ms: number;
  max_speedup: number | null;
}

export interface CompareSide {
  calls_per_trace: number;
  own_ms_per_trace: number;
  errors_per_trace: number;
}

export interface CompareResponse {
  a: { traces: number };
  b: { traces: number };
  operations: {
    service: string;
    operation: string;
    a: CompareSide;
    b: CompareSide;
    difference: CompareSide;
    only_in: "a" | "b" | null;
  }[];
  attributes: { key: string; value: string; a: number; b: number; difference: number }[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | null | undefined | string[]>;

export function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) for (const v of value) params.append(key, v);
    else params.set(key, typeof value === "number" ? Math.round(value).toString() : String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export async function getJson<T>(path: string, query: Query = {}): Promise<T> {
  const response = await fetch(url(path, query), { headers: { accept: "application/json" } });
  return answer<T>(response);
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
  return answer<T>(response);
}

async function answer<T>(response: Response): Promise<T> {
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = (await response.json()) as { error?: string };
      if (body.error) message = body.error;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  return (await response.json()) as T;
}

export const api = {
  services: () => getJson<{ services: { name: string }[] }>("/api/v1/services"),
  operations: (service: string) =>
    getJson<{ operations: { name: string; kind: string }[] }>(`/api/v1/services/${encodeURIComponent(service)}/operations`),
  overview: (q: Query) => getJson<{ services: ServiceOverview[]; step_s: number } & Coverage>("/api/v1/ui/services", q),
  metrics: (q: Query) => getJson<Metrics>("/api/v1/metrics", q),
  heatmap: (q: Query) => getJson<Heatmap>("/api/v1/ui/latency-heatmap", q),
  deployments: (q: Query) => getJson<{ versions: VersionSeen[] }>("/api/v1/ui/deployments", q),
  search: (q: Query) => getJson<{ traces: TraceSummary[] }>("/api/v1/traces", q),
  trace: (id: string) => getJson<{ trace_id: string; spans: Span[] }>(`/api/v1/traces/${encodeURIComponent(id)}`),
  traceColumns: (id: string, spansUpTo: number) =>
    getJson<TraceColumns>(`/api/v1/traces/${encodeURIComponent(id)}`, { format: "columns", spans_up_to: spansUpTo }),
  traceSpan: (id: string, spanId: string) =>
    getJson<{ trace_id: string; spans: Span[] }>(`/api/v1/traces/${encodeURIComponent(id)}`, { span_id: spanId }),
  traceCriticalPath: (id: string) =>
    getJson<{ spans: { span_id: string; critical_ns: number }[] }>(`/api/v1/traces/${encodeURIComponent(id)}/critical-path`),
  traceLogs: (id: string) => getJson<{ logs: LogRecord[] }>(`/api/v1/traces/${encodeURIComponent(id)}/logs`),
  dependencies: (q: Query) => getJson<{ edges: Edge[] }>("/api/v1/dependencies", q),
  explain: (body: ExplainRequest) => postJson<ExplainResponse>("/api/v1/explain", body),
  criticalPath: (q: Query) => getJson<{ traces: number; contributions: Contribution[] }>("/api/v1/critical-path", q),
  compare: (a: string[], b: string[]) => getJson<CompareResponse>("/api/v1/compare", { a: a.join(","), b: b.join(",") }),
  status: () => getJson<{ spans_received: number; version: string }>("/api/v1/status"),
};
