// The JSON API as the UI calls it. Every answer's type comes from `./api` (generated from /openapi.json by
// `npm run api-types`), looked up by path and method, so a view can only read what the server documents.
// Times are ns since the epoch; they exceed 2^53, so they are off by a few hundred ns here, which no view shows.
import type { paths, TraceAnswer, TraceColumns } from "./api";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | null | undefined | string[]>;

/** The JSON body a route answers with 200. */
type Answer<P extends keyof paths, M extends "get" | "post"> = paths[P][M] extends {
  responses: { 200: { content: { "application/json": infer T } } };
}
  ? T
  : never;

/** The JSON body a route takes. */
type Body<P extends keyof paths> = paths[P]["post"] extends {
  requestBody: { content: { "application/json": infer T } };
}
  ? T
  : never;

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

async function get<P extends keyof paths>(route: P, path: string, query: Query = {}): Promise<Answer<P, "get">> {
  void route; // the route names the answer's type; `path` is it with its parameters filled in
  const response = await fetch(url(path, query), { headers: { accept: "application/json" } });
  return answer<Answer<P, "get">>(response);
}

async function post<P extends keyof paths>(route: P, body: Body<P>): Promise<Answer<P, "post">> {
  const response = await fetch(route, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
  return answer<Answer<P, "post">>(response);
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

const trace = (id: string): string => `/api/v1/traces/${encodeURIComponent(id)}`;

export const api = {
  services: () => get("/api/v1/services", "/api/v1/services"),
  operations: (service: string) =>
    get("/api/v1/services/{service}/operations", `/api/v1/services/${encodeURIComponent(service)}/operations`),
  overview: (q: Query) => get("/api/v1/ui/services", "/api/v1/ui/services", q),
  metrics: (q: Query) => get("/api/v1/metrics", "/api/v1/metrics", q),
  heatmap: (q: Query) => get("/api/v1/ui/latency-heatmap", "/api/v1/ui/latency-heatmap", q),
  deployments: (q: Query) => get("/api/v1/ui/deployments", "/api/v1/ui/deployments", q),
  search: (q: Query) => get("/api/v1/traces", "/api/v1/traces", q),
  traceColumns: (id: string, spansUpTo: number) =>
    get("/api/v1/traces/{trace_id}", trace(id), { format: "columns", spans_up_to: spansUpTo }) as Promise<TraceColumns>,
  traceSpan: (id: string, spanId: string) =>
    get("/api/v1/traces/{trace_id}", trace(id), { span_id: spanId }) as Promise<TraceAnswer>,
  traceCriticalPath: (id: string) => get("/api/v1/traces/{trace_id}/critical-path", `${trace(id)}/critical-path`),
  traceLogs: (id: string) => get("/api/v1/traces/{trace_id}/logs", `${trace(id)}/logs`),
  dependencies: (q: Query) => get("/api/v1/dependencies", "/api/v1/dependencies", q),
  explain: (body: Body<"/api/v1/explain">) => post("/api/v1/explain", body),
  criticalPath: (q: Query) => get("/api/v1/critical-path", "/api/v1/critical-path", q),
  compare: (a: string[], b: string[]) => get("/api/v1/compare", "/api/v1/compare", { a: a.join(","), b: b.join(",") }),
  status: () => get("/api/v1/status", "/api/v1/status"),
  slos: () => get("/api/v1/slos", "/api/v1/slos"),
  sloSeries: (id: string, q: Query) =>
    get("/api/v1/slos/{slo_id}/series", `/api/v1/slos/${encodeURIComponent(id)}/series`, q),
  alerts: () => get("/api/v1/alerts", "/api/v1/alerts"),
};
