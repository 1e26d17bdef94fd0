// The page the browser test opens: it watches a prefix through
// edgetcd.v1.BrowserWatch with connect-web (Connect or gRPC-Web, from the
// query string) from another origin than edgetcd's, and publishes what it
// receives on `window.watchReport` for the test to read.
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { BrowserWatch } from "../../src/gen/edgetcd/v1/edgetcd_pb.ts";

export interface ReceivedEvent {
  type: "PUT" | "DELETE";
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** undefined when the event has no prev_kv (a create). */
  previousValue: string | undefined;
  /** Which response of the stream carried the event (atomicity: one revision, one response). */
  responseIndex: number;
  responseRevision: number;
}

export interface WatchReport {
  created: boolean;
  watchId: number;
  events: ReceivedEvent[];
  /** The error that ended the stream, if any (a refused CORS origin lands here). */
  error: string | undefined;
  ended: boolean;
}

const report: WatchReport = { created: false, watchId: -1, events: [], error: undefined, ended: false };
(window as unknown as { watchReport: WatchReport }).watchReport = report;

const parameters = new URLSearchParams(location.search);
const baseUrl = parameters.get("edgetcd") ?? "";
const prefix = new TextEncoder().encode(parameters.get("prefix") ?? "");
const transport: Transport =
  parameters.get("transport") === "grpc-web" ? createGrpcWebTransport({ baseUrl }) : createConnectTransport({ baseUrl });
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The end of the range that holds every key starting with `key`. */
function prefixEnd(key: Uint8Array): Uint8Array {
  const end = key.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

async function watch(): Promise<void> {
  const stream = createClient(BrowserWatch, transport).watch({
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    startRevision: BigInt(parameters.get("startRevision") ?? "0"),
    prevKv: true,
  });
  let responseIndex = 0;
  for await (const response of stream) {
    if (response.created) {
      report.created = true;
      report.watchId = Number(response.watchId);
    }
    for (const event of response.events) {
      const kv = event.kv!;
      report.events.push({
        type: event.type === 1 ? "DELETE" : "PUT",
        key: decode(kv.key),
        value: decode(kv.value),
        createRevision: Number(kv.createRevision),
        modRevision: Number(kv.modRevision),
        version: Number(kv.version),
        previousValue: event.prevKv === undefined ? undefined : decode(event.prevKv.value),
        responseIndex,
        responseRevision: Number(response.header?.revision ?? 0),
      });
    }
    responseIndex += 1;
  }
}

watch().then(
  () => (report.ended = true),
  (error: unknown) => (report.error = error instanceof Error ? error.message : String(error)),
);
