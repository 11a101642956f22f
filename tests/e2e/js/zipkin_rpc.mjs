#!/usr/bin/env node
// One RPC traced with the Zipkin JS tracer (npm `zipkin`) and reported with its HTTP transport
// (`zipkin-transport-http`), both used unchanged, to spyglass's Zipkin endpoint.
//
//   node zipkin_rpc.mjs --endpoint URL [--join yes|no] [--fail yes|no] [--debug yes|no] [--encoder v1|v2]
//
// Two tracers stand for two processes, each with its own recorder and transport (so each reports in requests of
// its own): "zipkin-frontend" runs a local span "checkout" that calls "zipkin-backend" over real HTTP with the
// stock client instrumentation; the backend's stock server instrumentation reads the B3 headers and, with
// --join yes (zipkin-js's default, supportsJoin), records its SERVER span under the client's span id, marked
// shared. Inside it the backend runs a local span "SELECT orders" (failing with --fail yes, and the RPC then
// answers 503). The backend reports the child before the server span, and the frontend reports its client
// span after both, in separate requests. With --debug yes the root carries Zipkin's debug flag (B3 `X-B3-Flags:
// 1`), which every span of the trace inherits and reports as `"debug": true`. With --encoder v1 the transport
// keeps its own default encoder, Zipkin v1 JSON (`JSON_V1`), for an endpoint of /api/v1/spans.
//
// On success it prints one JSON line to stdout,
//   {"trace_id", "root_id", "client_id", "server_id", "server_shared", "db_id", "requests"}
// and exits 0; it exits non-zero when any report was not answered 202.

import http from 'node:http';
import zipkin from 'zipkin';
import zipkinTransportHttp from 'zipkin-transport-http';

const { Tracer, BatchRecorder, ExplicitContext, Instrumentation, jsonEncoder } = zipkin;
const { HttpLogger } = zipkinTransportHttp;
const USAGE = 'usage: zipkin_rpc.mjs --endpoint URL [--join yes|no] [--fail yes|no] [--debug yes|no] [--encoder v1|v2]';

function fail(message) {
  process.stderr.write(`zipkin_rpc: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { endpoint: undefined, join: 'yes', fail: 'no', debug: 'no', encoder: 'v2' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    if (!(key in options) || argv[i + 1] === undefined) fail(`bad argument ${JSON.stringify(argv[i])}`);
    options[key] = argv[i + 1];
  }
  if (!options.endpoint) fail('--endpoint is required');
  for (const key of ['join', 'fail', 'debug']) if (!['yes', 'no'].includes(options[key])) fail(`--${key} must be yes or no`);
  if (!['v1', 'v2'].includes(options.encoder)) fail('--encoder must be v1 or v2');
  return options;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `tracer.local(name, callable)`, as a new trace's root whose id carries the debug flag when `debug`. */
function localRoot(tracer, serviceName, name, debug, callable) {
  if (!debug) return tracer.local(name, callable);
  return tracer.scoped(() => {
    const id = tracer.createRootId(new zipkin.option.Some(true), true);
    tracer.setId(id);
    tracer.recordServiceName(serviceName);
    tracer.recordAnnotation(new zipkin.Annotation.LocalOperationStart(name));
    return callable().then((value) => {
      tracer.letId(id, () => tracer.recordAnnotation(new zipkin.Annotation.LocalOperationStop()));
      return value;
    });
  });
}

/** A process's reporting: the stock transport, with fetch wrapped only to see every answer. */
function reporting(endpoint, encoder, outcome) {
  const fetchImplementation = (url, options) => {
    const sent = fetch(url, options).then((response) => {
      outcome.requests += 1;
      if (response.status !== 202) outcome.failures.push(`${url} answered ${response.status}`);
      return response;
    });
    outcome.pending.push(sent.catch((error) => outcome.failures.push(String(error))));
    return sent;
  };
  // v1: the transport's own default encoder (JSON_V1), as a user who sets none gets it.
  const encoding = encoder === 'v2' ? { jsonEncoder: jsonEncoder.JSON_V2 } : {};
  const logger = new HttpLogger({ endpoint, ...encoding, httpInterval: 50, fetchImplementation });
  logger.on('error', (error) => outcome.failures.push(String(error)));
  return { logger, recorder: new BatchRecorder({ logger }), fetchImplementation };
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const outcome = { requests: 0, failures: [], pending: [] };
  const front = reporting(options.endpoint, options.encoder, outcome);
  const back = reporting(options.endpoint, options.encoder, outcome);
  const frontend = new Tracer({ ctxImpl: new ExplicitContext(), recorder: front.recorder, localServiceName: 'zipkin-frontend' });
  const backend = new Tracer({
    ctxImpl: new ExplicitContext(),
    recorder: back.recorder,
    localServiceName: 'zipkin-backend',
    supportsJoin: options.join === 'yes',
  });
  const ids = {};

  const server = http.createServer((request, response) => {
    const instrumentation = new Instrumentation.HttpServer({ tracer: backend, port: server.address().port });
    backend.scoped(() => {
      const readHeader = (name) => {
        const value = request.headers[name.toLowerCase()];
        return value === undefined ? zipkin.option.None : new zipkin.option.Some(value);
      };
      const id = instrumentation.recordRequest(request.method, request.url, readHeader);
      ids.server_id = id.spanId;
      ids.server_shared = id.isShared();
      const query = backend.letId(id, () =>
        backend.local('SELECT orders', () => {
          ids.db_id = backend.id.spanId;
          return sleep(20).then(() => {
            if (options.fail === 'yes') throw new Error('connection refused');
          });
        }),
      );
      query
        .then(() => 200, () => 503)
        .then(async (status) => {
          await sleep(150); // the child is reported in a request of its own, before its server span
          backend.scoped(() => instrumentation.recordResponse(id, status));
          response.writeHead(status, { 'content-type': 'text/plain' });
          response.end(status === 200 ? 'ok' : 'unavailable');
        });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/orders/42`;

  const client = new Instrumentation.HttpClient({ tracer: frontend, remoteServiceName: 'zipkin-backend' });
  await localRoot(frontend, 'zipkin-frontend', 'checkout', options.debug === 'yes', () => {
    ids.trace_id = frontend.id.traceId;
    ids.root_id = frontend.id.spanId;
    const traced = client.recordRequest({ headers: {} }, url, 'GET');
    const clientId = frontend.id;
    ids.client_id = clientId.spanId;
    return fetch(url, { headers: traced.headers }).then(async (response) => {
      await response.text();
      await sleep(150); // the client span ends, and is reported, after the server's spans
      frontend.scoped(() => client.recordResponse(clientId, response.status));
    });
  });

  // Report what is still queued, then wait for every answer.
  await sleep(200);
  front.logger.processQueue(front.fetchImplementation);
  back.logger.processQueue(back.fetchImplementation);
  await Promise.all(outcome.pending);
  server.close();

  if (outcome.failures.length > 0) {
    for (const failure of outcome.failures) process.stderr.write(`zipkin_rpc: ${failure}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ ...ids, requests: outcome.requests })}\n`);
}

main().catch((error) => {
  process.stderr.write(`zipkin_rpc: ${error?.stack ?? error}\n`);
  process.exit(1);
});
