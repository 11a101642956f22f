#!/usr/bin/env node
// Sends one trace to spyglass with the stock OpenTelemetry JavaScript SDK exporters, used unchanged.
//
//   node send_traces.mjs --protocol proto|json|zipkin --endpoint URL [--gzip yes|no] [--service NAME]
//
// The trace: a SERVER root with typed HTTP attributes, a CLIENT child, and an INTERNAL grandchild (whose one
// attribute ends in a lone surrogate, a string cut inside a pair) with an
// event and an ERROR status. On success it prints one JSON line to stdout,
//   {"trace_id": "<32 hex>", "span_ids": ["<root>", "<client>", "<internal>"]}
// and exits 0. It exits non-zero when any export did not report SUCCESS (the SDK only logs export failures,
// so the exporter's export() is wrapped to see each ExportResult), or when nothing was exported at all.

import { context, diag, DiagConsoleLogger, DiagLogLevel, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const USAGE = 'usage: send_traces.mjs --protocol proto|json|zipkin --endpoint URL [--gzip yes|no] [--service NAME]';

function fail(message) {
  process.stderr.write(`send_traces: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { protocol: undefined, endpoint: undefined, gzip: 'no', service: 'js-sdk-e2e' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) fail(`unexpected argument ${JSON.stringify(arg)}\n${USAGE}`);
    let key = arg.slice(2);
    let value;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    } else {
      value = argv[++i];
    }
    if (!(key in options)) fail(`unknown option --${key}\n${USAGE}`);
    if (value === undefined) fail(`--${key} needs a value\n${USAGE}`);
    options[key] = value;
  }
  if (!['proto', 'json', 'zipkin'].includes(options.protocol)) fail(`--protocol must be proto, json or zipkin\n${USAGE}`);
  if (!options.endpoint) fail(`--endpoint is required\n${USAGE}`);
  if (!['yes', 'no'].includes(options.gzip)) fail(`--gzip must be yes or no\n${USAGE}`);
  if (options.protocol === 'zipkin' && options.gzip === 'yes') fail('the Zipkin exporter has no compression option');
  return options;
}

function makeExporter(options) {
  // OTLPExporterNodeConfigBase.compression is CompressionAlgorithm: 'gzip' | 'none'.
  const compression = options.gzip === 'yes' ? 'gzip' : 'none';
  switch (options.protocol) {
    case 'proto':
      return new OTLPProtoTraceExporter({ url: options.endpoint, compression, timeoutMillis: 15000 });
    case 'json':
      return new OTLPJsonTraceExporter({ url: options.endpoint, compression, timeoutMillis: 15000 });
    default:
      return new ZipkinExporter({ url: options.endpoint, serviceName: options.service });
  }
}

/** Wraps exporter.export so that every ExportResult is seen here, not only logged by the SDK. */
function watchExports(exporter) {
  const outcome = { calls: 0, spans: 0, failures: [] };
  const originalExport = exporter.export.bind(exporter);
  exporter.export = (spans, resultCallback) => {
    outcome.calls += 1;
    outcome.spans += spans.length;
    originalExport(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        const error = result.error;
        const detail = error ? `${error.name ?? 'Error'}: ${error.message}${error.data ? ` (${error.data})` : ''}` : 'no error given';
        outcome.failures.push(`export of ${spans.length} spans failed: ${detail}`);
      }
      resultCallback(result);
    });
  };
  return outcome;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const options = parseArgs(process.argv.slice(2));
  diag.setLogger(new DiagConsoleLogger(), process.env.OTEL_LOG_LEVEL === 'debug' ? DiagLogLevel.DEBUG : DiagLogLevel.WARN);

  const exporter = makeExporter(options);
  const outcome = watchExports(exporter);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.service,
      'service.version': '1.4.2',
      'deployment.environment.name': 'e2e',
    }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 60000, exportTimeoutMillis: 30000 })],
  });
  const tracer = provider.getTracer('spyglass-e2e', '0.0.1');

  // No context manager is registered, so parents are passed explicitly.
  const root = tracer.startSpan('GET /checkout/{id}', {
    kind: SpanKind.SERVER,
    attributes: {
      'http.request.method': 'GET', // string
      'http.route': '/checkout/{id}',
      'url.path': '/checkout/42',
      'http.response.status_code': 200, // int
      'server.port': 8080, // int
      'app.cache_hit': false, // bool
      'app.authenticated': true, // bool
      'app.load_factor': 0.75, // double
      'app.feature_flags': ['new-cart', 'fast-pay'], // string array
      'app.retry_delays_ms': [10, 20, 40], // int array
    },
  });
  const rootContext = trace.setSpan(context.active(), root);
  await sleep(5);

  const client = tracer.startSpan(
    'GET inventory',
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'http.request.method': 'GET',
        'server.address': 'inventory.internal',
        'server.port': 9000,
        'http.response.status_code': 503,
      },
    },
    rootContext,
  );
  const clientContext = trace.setSpan(rootContext, client);
  await sleep(5);

  // A string cut inside a surrogate pair, as String.prototype.slice cuts one: its last code unit is a lone
  // high surrogate ('\u{1F6D2}' is '\uD83D\uDED2'). JSON.stringify escapes it; protobuf.js writes it as 3 bytes.
  const note = 'sold out \u{1F6D2}'.slice(0, 10);
  const internal = tracer.startSpan(
    'parse inventory response',
    { kind: SpanKind.INTERNAL, attributes: { 'app.note': note } },
    clientContext,
  );
  await sleep(2);
  internal.addEvent('cache.miss', { 'cache.key': 'sku:1234', 'cache.attempt': 2 });
  internal.setStatus({ code: SpanStatusCode.ERROR, message: 'inventory unavailable' });
  await sleep(2);
  internal.end();
  client.end();
  root.end();

  const traceId = root.spanContext().traceId;
  const spanIds = [root, client, internal].map((span) => span.spanContext().spanId);

  await provider.forceFlush();
  await provider.shutdown();

  if (outcome.calls === 0 || outcome.spans < spanIds.length) {
    process.stderr.write(`send_traces: exported ${outcome.spans} spans in ${outcome.calls} calls, expected ${spanIds.length}\n`);
    process.exit(1);
  }
  if (outcome.failures.length > 0) {
    for (const failure of outcome.failures) process.stderr.write(`send_traces: ${failure}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ trace_id: traceId, span_ids: spanIds })}\n`);
}

main().catch((error) => {
  process.stderr.write(`send_traces: ${error?.stack ?? error}\n`);
  process.exit(1);
});
