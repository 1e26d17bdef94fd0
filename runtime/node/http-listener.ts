// One plaintext port for HTTP/2 (gRPC over h2c) and HTTP/1.1 (gRPC-Web,
// Connect, the JSON gateway, /health). Node's cleartext HTTP/2 server does not
// answer HTTP/1.1 (allowHTTP1 needs TLS + ALPN), so we look at the first bytes
// of each connection: the HTTP/2 client preface starts with "PRI * HTTP/2.0",
// anything else is HTTP/1.1. Used by both runtimes: Bun implements node:net,
// node:http and node:http2.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { authorityRewritingSocket } from "./h2-authority.ts";

export type NodeRequestHandler = (
  request: http.IncomingMessage | http2.Http2ServerRequest,
  response: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface ListenOptions {
  host: string;
  port: number;
  /** Handles HTTP/2 requests (gRPC, and everything else over h2c). */
  handleHttp2: NodeRequestHandler;
  /** Handles HTTP/1.1 requests; undefined to refuse HTTP/1.1 on this port. */
  handleHttp1?: NodeRequestHandler;
  /** HTTP/2 streams per connection; etcd's default is effectively unlimited. */
  maxConcurrentStreams?: number;
  /**
   * Read HTTP/2 connections through the `:authority` rewriter (h2-authority.ts),
   * for clients such as etcdctl 3.4 that send `http://host:port`. Default true;
   * the peer listener, whose only clients are our own members, turns it off.
   */
  rewriteAuthority?: boolean;
}

export interface Listener {
  /** The bound port (useful when listening on port 0). */
  port: number;
  close(): Promise<void>;
}

const http2PrefaceStart = Buffer.from("PRI * HTTP/2.0");
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

export async function listenHttp(options: ListenOptions): Promise<Listener> {
  const h2 = http2.createServer(
    {
      settings: { maxConcurrentStreams: options.maxConcurrentStreams ?? 2 ** 31 - 1 },
      // etcd accepts requests up to --max-request-bytes plus gRPC overhead; the
      // API layer enforces the limit with etcd's error, so the transport must not.
      maxSessionMemory: 64,
    },
    options.handleHttp2,
  );
  const h1 = http.createServer(options.handleHttp1 ?? refuseHttp1);
  h1.keepAliveTimeout = 60_000;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setNoDelay(true);
    routeByPreface(socket, h2, h1, options.rewriteAuthority ?? true);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        h2.close();
        h1.close();
      }),
  };
}

function routeByPreface(socket: net.Socket, h2: http2.Http2Server, h1: http.Server, rewriteAuthority: boolean): void {
  let buffered = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const compared = Math.min(buffered.length, http2PrefaceStart.length);
    const isHttp2 = buffered.subarray(0, compared).equals(http2PrefaceStart.subarray(0, compared));
    if (isHttp2 && buffered.length < http2PrefaceStart.length) return; // need more bytes to decide
    socket.off("data", onData);
    if (isHttp2 && rewriteAuthority) {
      // etcdctl 3.4 may send `:authority: http://host:port`, which our HTTP/2
      // servers refuse; the server reads the connection through a rewriter.
      h2.emit("connection", authorityRewritingSocket(socket, buffered));
      return;
    }
    socket.pause();
    socket.unshift(buffered);
    (isHttp2 ? h2 : h1).emit("connection", socket);
    // Node's HTTP/2 session drains the unshifted bytes itself on the next tick
    // and then reads the socket natively; resuming first would lose them. Bun's
    // session reads through the stream, which must flow.
    if (!isHttp2 || isBun) socket.resume();
  };
  socket.on("data", onData);
  socket.on("error", () => socket.destroy());
}

function refuseHttp1(_request: http.IncomingMessage, response: http.ServerResponse): void {
  response.writeHead(505, { "content-type": "text/plain" });
  response.end("HTTP/1.1 is not served on this listener\n");
}
