// An HTTP/1.1 proxy in front of one server's client port that records every
// exchange passing through it: what a real application asked of the JSON
// gateway and what it was answered, to compare etcd's answers with edgetcd's
// when the application itself only shows the outcome. Streamed answers
// (/v3/watch, /v3/lease/keepalive) are passed on chunk by chunk as they come.
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Exchange {
  method: string;
  path: string;
  requestBody: string;
  /** undefined while the server has not answered (or when it could not be reached). */
  status?: number;
  responseBody: string;
}

export interface RecordingProxy {
  port: number;
  readonly exchanges: readonly Exchange[];
  close(): Promise<void>;
}

/** Bodies recorded past this are cut (a watch left open could otherwise grow without end). */
const recordedBodyBytesMax = 1024 * 1024;

export async function startRecordingProxy(targetPort: number, listenPort = 0): Promise<RecordingProxy> {
  const exchanges: Exchange[] = [];
  const server = createServer((incoming, outgoing) => forward(incoming, outgoing, targetPort, exchanges));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    exchanges,
    close: async () => {
      // Kept-alive and streaming connections would hold close() open.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function forward(incoming: IncomingMessage, outgoing: ServerResponse, targetPort: number, exchanges: Exchange[]): void {
  const exchange: Exchange = { method: incoming.method ?? "", path: incoming.url ?? "", requestBody: "", responseBody: "" };
  exchanges.push(exchange);
  const upstream = request({ host: "127.0.0.1", port: targetPort, method: exchange.method, path: exchange.path, headers: incoming.headers }, (answer) => {
    exchange.status = answer.statusCode;
    outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.on("data", (chunk: Buffer) => {
      exchange.responseBody = appendCapped(exchange.responseBody, chunk.toString());
      outgoing.write(chunk);
    });
    answer.on("end", () => outgoing.end());
    answer.on("error", () => outgoing.destroy());
  });
  upstream.on("error", () => outgoing.destroy());
  incoming.on("data", (chunk: Buffer) => {
    exchange.requestBody = appendCapped(exchange.requestBody, chunk.toString());
    upstream.write(chunk);
  });
  incoming.on("end", () => upstream.end());
  // The application hung up (a watch it no longer wants): so does the proxy, upstream.
  outgoing.on("close", () => upstream.destroy());
}

function appendCapped(recorded: string, chunk: string): string {
  return recorded.length >= recordedBodyBytesMax ? recorded : recorded + chunk;
}
