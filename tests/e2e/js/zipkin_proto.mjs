// One RPC in Zipkin's protobuf encoding, made by protobufjs from zipkin-api's own zipkin.proto, POSTed to a
// Zipkin endpoint as application/x-protobuf (as Brave's PROTO3 encoding, zipkin-go's protobuf serializer and
// the Collector's Zipkin exporter with `format: proto` send it).
//
//   node zipkin_proto.mjs --endpoint http://127.0.0.1:9411/api/v2/spans [--gzip yes]
//
// Prints one JSON line: the ids and times it sent, for the test to find them.
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import protobuf from "protobufjs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, value, i, all) => (i % 2 ? pairs : [...pairs, [value.slice(2), all[i + 1]]]), []),
);
const root = await protobuf.load(join(dirname(fileURLToPath(import.meta.url)), "zipkin.proto"));
const ListOfSpans = root.lookupType("zipkin.proto3.ListOfSpans");
const Kind = root.lookupEnum("zipkin.proto3.Span.Kind").values;

const traceId = randomBytes(8); // a 64-bit trace id, as Brave makes by default
const clientId = randomBytes(8);
const childId = randomBytes(8);
const nowUs = Date.now() * 1000;
const frontend = { serviceName: "proto-frontend", ipv4: Buffer.from([10, 0, 0, 7]), port: 8080 };
const backend = { serviceName: "proto-backend", ipv6: Buffer.from("20010db8000000000000000000000001", "hex") };
const spans = [
  {
    traceId, id: clientId, kind: Kind.CLIENT, name: "get /api", timestamp: nowUs, duration: 12000,
    localEndpoint: frontend, remoteEndpoint: backend,
    annotations: [{ timestamp: nowUs + 10, value: "ws" }],
    tags: { "http.path": "/api", "http.status_code": "500", error: "boom" },
    debug: true,
  },
  {
    // The server half under the client's id (B3 "join"), marked shared.
    traceId, id: clientId, kind: Kind.SERVER, name: "get /api", timestamp: nowUs + 1000, duration: 9000,
    localEndpoint: backend, shared: true,
  },
  {
    traceId, parentId: clientId, id: childId, name: "select", timestamp: nowUs + 2000, duration: 3000,
    localEndpoint: backend, tags: { "sql.query": "SELECT 1" },
  },
];
const problem = ListOfSpans.verify({ spans });
if (problem) throw new Error(problem);
let body = ListOfSpans.encode(ListOfSpans.create({ spans })).finish();
const headers = { "Content-Type": "application/x-protobuf" };
if (args.gzip === "yes") {
  body = gzipSync(body);
  headers["Content-Encoding"] = "gzip";
}
const response = await fetch(args.endpoint, { method: "POST", body, headers });
console.log(
  JSON.stringify({
    status: response.status,
    trace_id: traceId.toString("hex"),
    client_id: clientId.toString("hex"),
    child_id: childId.toString("hex"),
    now_us: nowUs,
  }),
);
