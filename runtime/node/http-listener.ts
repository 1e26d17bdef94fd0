// One plaintext port for HTTP/2 (gRPC over h2c) and HTTP/1.1 (gRPC-Web,
// Connect, the JSON gateway, /health). Node's cleartext HTTP/2 server does not
// answer HTTP/1.1 (allowHTTP1 needs TLS + ALPN), so we look at the first bytes
// of each connection: the HTTP/2 client preface starts with "PRI * HTTP/2.0",
// anything else is HTTP/1.1. Used by both runtimes: Bun implements node:net,
// node:http and node:http2.
//
// Every connection is held to the limits of transport-limits.ts: the preface
// must decide within a timeout; HTTP/1.1 requests have header and request
// timeouts (http1-timeouts.ts); HTTP/2 frames pass the frame guard
// (h2-connection.ts) and sessions are watched (h2-session-limits.ts).
import * as http from "node:http";
import * as http2 from "node:http2";
import { existsSync, lstatSync, rmSync } from "node:fs";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
import { guardedHttp2Socket, type GuardedConnection } from "./h2-connection.ts";
import { chooseReadPath, handshakeDefaults } from "./h2-handshake.ts";
import type { Violation } from "./h2-frame-guard.ts";
import { SessionSupervisor } from "./h2-session-limits.ts";
import { handOverHttp1, keepConnectionsAlive } from "./http1-handover.ts";
import { Http1TimeoutWatch } from "./http1-timeouts.ts";
import { transportLimitsDefault, type TransportLimits } from "./transport-limits.ts";

export type NodeRequestHandler = (
  request: http.IncomingMessage | http2.Http2ServerRequest,
  response: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * writeHead on either response kind: their signatures differ in @types/node 24
 * (no call on the union type-checks), their run-time behaviour for a status
 * and a header record does not.
 */
export function writeHead(response: http.ServerResponse | http2.Http2ServerResponse, status: number, headers?: http.OutgoingHttpHeaders): void {
  (response as http.ServerResponse).writeHead(status, headers);
}

export type StreamClaim = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

export interface ListenOptions {
  host: string;
  port: number;
  /** A unix socket to listen on instead of host and port (etcd's unix:// URLs). */
  path?: string;
  /** Handles HTTP/2 requests (gRPC, and everything else over h2c). */
  handleHttp2: NodeRequestHandler;
  /**
   * Sees each HTTP/2 stream before `handleHttp2` and may take it (returns
   * true): the gRPC fast path (grpc-fast-path.ts). Streams it leaves go to
   * `handleHttp2` through Node's compatibility API.
   */
  claimHttp2Stream?: StreamClaim;
  /** Handles HTTP/1.1 requests; undefined to refuse HTTP/1.1 on this port. */
  handleHttp1?: NodeRequestHandler;
  /** Limits on every connection; transportLimitsDefault when absent. */
  limits?: TransportLimits;
  /**
   * Read HTTP/2 connections through the `:authority` rewriter (h2-authority.ts),
   * for clients such as etcdctl 3.4 that send `http://host:port`. Default true;
   * the peer listener, whose only clients are our own members, turns it off.
   */
  rewriteAuthority?: boolean;
  /** Told of each connection closed for breaking a limit (for logs and tests). */
  onViolation?: (violation: Violation) => void;
  /** Serve TLS on this port (an https URL); absent for plain text. */
  tls?: TlsListenOptions;
}

export interface TlsListenOptions {
  /** Key, certificate, CA, CRL, ciphers, requestCert: what tls.createServer takes. */
  secureOptions: tls.TlsOptions;
  /** After a successful handshake: false closes the connection (etcd's --client-cert-allowed-hostname). */
  acceptPeer?(socket: tls.TLSSocket): boolean;
}

/**
 * Offered by ALPN: gRPC clients (grpc-go, etcdctl) insist on h2; browsers and
 * curl take either. A client that offers neither is still served: the first
 * bytes decide, as on a plaintext port.
 */
const alpnProtocols = ["h2", "http/1.1"];

export interface Listener {
  /** The bound port (useful when listening on port 0). */
  port: number;
  /**
   * Graceful stop: refuse new connections, send GOAWAY on every HTTP/2 session
   * and close idle HTTP/1.1 connections; requests already running go on until
   * `close`.
   */
  stopAccepting(): void;
  close(): Promise<void>;
  /** HTTP/2 connections so far by how they are read: natively by nghttp2, or through the frame guard (h2-handshake.ts). */
  readonly readPaths: { native: number; guarded: number };
}

const http2PrefaceStart = Buffer.from("PRI * HTTP/2.0");
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/**
 * The HTTP/2 and HTTP/1.1 servers a listener hands its connections to, with
 * the transport limits every listener keeps (plaintext, client TLS, peer TLS):
 * stream and header-list settings, the session supervisor, HTTP/1.1 timeouts.
 */
export interface LimitedServers {
  h2: http2.Http2Server;
  h1: http.Server;
  supervisor: SessionSupervisor;
  http1Timeouts: Http1TimeoutWatch;
  /** Gives h2 a connection read through the frame guard; its session is supervised with that connection. */
  /** `tlsSocket`: the TLS connection under `stream`, when there is one (see tlsSocketOf). */
  serveGuarded(stream: Duplex, connection: GuardedConnection, tlsSocket?: tls.TLSSocket): void;
  /**
   * Gives h2 the socket itself (read natively by nghttp2), `bytes` (already
   * read) first. `enforceClientPolicy`: a client's connection, held to the
   * keepalive and reset limits the guard holds guarded ones to.
   */
  serveNative(socket: net.Socket, bytes: Buffer, tlsSocket: tls.TLSSocket | undefined, enforceClientPolicy: boolean): void;
}

export function limitedHttpServers(
  limits: TransportLimits,
  handleHttp2: NodeRequestHandler,
  handleHttp1: (request: http.IncomingMessage, response: http.ServerResponse) => void,
  nowMs: () => number,
  claimHttp2Stream?: StreamClaim,
): LimitedServers {
  const h2 = http2.createServer(
    {
      settings: { maxConcurrentStreams: limits.concurrentStreamsMax, maxHeaderListSize: limits.headerListBytesMax },
      // etcd accepts requests up to --max-request-bytes plus gRPC overhead; the
      // API layer enforces the limit with etcd's error, so the transport must not.
      maxSessionMemory: limits.sessionMemoryMegabytesMax,
    },
    handleHttp2,
  );
  if (claimHttp2Stream !== undefined) claimingStreams(h2, claimHttp2Stream);
  const supervisor = new SessionSupervisor(limits, nowMs);
  // The session is created while the server takes the connection, so the
  // connection being handed over is the one its session reads.
  let connectionHandedOver: GuardedConnection | undefined;
  let tlsSocketHandedOver: tls.TLSSocket | undefined;
  let nativeClientHandedOver: net.Socket | undefined;
  h2.on("session", (session) => {
    supervisor.adopt(session, connectionHandedOver, nativeClientHandedOver === undefined ? undefined : { socket: nativeClientHandedOver, keepalive: limits.keepalive });
    if (tlsSocketHandedOver !== undefined) tlsSocketOfSession.set(session, tlsSocketHandedOver);
  });
  const h1 = http.createServer(handleHttp1);
  h1.keepAliveTimeout = 60_000;
  keepConnectionsAlive(h1);
  const http1Timeouts = new Http1TimeoutWatch(
    h1,
    { headersTimeoutMs: limits.http1HeadersTimeoutMs, requestTimeoutMs: limits.http1RequestTimeoutMs },
    nowMs,
  );
  return {
    h2,
    h1,
    supervisor,
    http1Timeouts,
    serveGuarded(stream, connection, tlsSocket) {
      connectionHandedOver = connection;
      tlsSocketHandedOver = tlsSocket;
      h2.emit("connection", stream);
      connectionHandedOver = undefined;
      tlsSocketHandedOver = undefined;
    },
    serveNative(socket, bytes, tlsSocket, enforceClientPolicy) {
      socket.pause();
      socket.unshift(bytes);
      nativeClientHandedOver = enforceClientPolicy ? socket : undefined;
      tlsSocketHandedOver = tlsSocket;
      h2.emit("connection", socket);
      nativeClientHandedOver = undefined;
      tlsSocketHandedOver = undefined;
    },
  };
}

/**
 * Lets `claim` take a stream before the compatibility API (which listens to
 * the same event) wraps it in a request and response. Node and Bun both
 * deliver streams through the server's `emit`.
 */
function claimingStreams(h2: http2.Http2Server, claim: StreamClaim): void {
  const emit = h2.emit;
  h2.emit = function (this: http2.Http2Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === "stream" && claim(args[0] as http2.ServerHttp2Stream, args[1] as http2.IncomingHttpHeaders)) return true;
    return emit.call(this, event, ...args);
  } as typeof h2.emit;
}

/** The TLS socket under an HTTP/2 stream's connection, when there is one. */
export function tlsSocketOfStream(stream: http2.Http2Stream): tls.TLSSocket | undefined {
  return tlsSocketOfSession.get(stream.session as http2.Http2Session);
}

/**
 * The TLS connection an HTTP/2 session reads. The session reads a guarded
 * stream, not the TLS socket (Node wraps it again), so a request cannot reach
 * the certificate through its `socket`; this remembers it per session.
 */
const tlsSocketOfSession = new WeakMap<http2.Http2Session, tls.TLSSocket>();

/**
 * The TLS socket a request came over, whichever HTTP version: for whether
 * the client's certificate was verified and what it names
 * (--client-cert-auth's CommonName, src/api/auth-context.ts).
 */
export function tlsSocketOf(request: http.IncomingMessage | http2.Http2ServerRequest): tls.TLSSocket | undefined {
  if ("stream" in request) return tlsSocketOfStream(request.stream);
  return request.socket instanceof tls.TLSSocket ? request.socket : undefined;
}

/** The socket of a unix:// URL (etcd's: the URL's host, port included: unix://etcd.unix:1 is the file etcd.unix:1). */
export function unixSocketPathOf(url: URL | string): string | undefined {
  const parsed = typeof url === "string" ? new URL(url) : url;
  return parsed.protocol === "unix:" ? parsed.host : undefined;
}

/**
 * Where a listen URL binds, as ListenOptions takes it: its host (localhost as
 * 127.0.0.1, an IPv6 address without brackets) and port (the scheme's when
 * the URL has none), or a unix:// URL's socket.
 */
export function listenAddressOf(url: URL): Pick<ListenOptions, "host" | "port" | "path"> {
  const path = unixSocketPathOf(url);
  if (path !== undefined) return { host: "", port: 0, path };
  const host = url.hostname === "localhost" ? "127.0.0.1" : url.hostname.replace(/^\[|\]$/g, "");
  return { host, port: Number(url.port || (url.protocol === "https:" ? 443 : 80)) };
}

/** Starts `server` listening; the port it got (port 0 picks a free one). A bind failure rejects. */
export async function listenOn(server: net.Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return typeof address === "object" && address !== null ? address.port : port;
}

/**
 * Starts `server` listening on the unix socket `path`. A socket file left by
 * an earlier run is removed first, as etcd's unix listener does (a live one
 * is refused: the data dir lock is taken later, and two members must not
 * share a socket); any other file there is not touched, and the bind fails.
 */
export async function listenOnPath(server: net.Server, path: string): Promise<void> {
  if (existsSync(path) && lstatSync(path).isSocket()) {
    if (await socketAnswers(path)) throw new Error(`listen unix ${path}: address already in use`);
    rmSync(path);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

export async function listenHttp(options: ListenOptions): Promise<Listener> {
  const limits = options.limits ?? transportLimitsDefault;
  const nowMs = () => performance.now();
  const { h2, h1, supervisor, http1Timeouts, serveGuarded, serveNative } = limitedHttpServers(limits, options.handleHttp2, options.handleHttp1 ?? refuseHttp1, nowMs, options.claimHttp2Stream);
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const readPaths = { native: 0, guarded: 0 };
  const route: Route = {
    http2(socket, head) {
      const tlsSocket = socket instanceof tls.TLSSocket ? socket : undefined;
      const guarded = (bytes: Buffer, ackToCome = false) => {
        readPaths.guarded++;
        const { stream, connection } = guardedHttp2Socket(socket, bytes, {
          limits,
          keepalive: limits.keepalive,
          rewriteAuthority: options.rewriteAuthority ?? true,
          stripSettingsAck: ackToCome,
          nowMs,
          ...(options.onViolation === undefined ? {} : { onViolation: options.onViolation }),
        });
        serveGuarded(stream, connection, tlsSocket);
        socket.resume();
      };
      if (isBun) {
        // Bun's server reads through a stream anyway: the guard costs little there.
        guarded(head);
        return;
      }
      if (options.rewriteAuthority === false) {
        // Node's own socket, read natively by nghttp2, whose frame limits match
        // the guard's (the peer port keeps it for speed).
        readPaths.native++;
        serveNative(socket, head, tlsSocket, false);
        return;
      }
      // Natively too when the client's first request needs no rewrite (h2-handshake.ts).
      chooseReadPath(socket, head, { ...handshakeDefaults, limits }, (path, bytes, ackToCome) => {
        if (path === "native") {
          readPaths.native++;
          serveNative(socket, bytes, tlsSocket, true);
        } else {
          guarded(bytes, ackToCome);
        }
      });
    },
    http1(socket, head) {
      http1Timeouts.adopt(socket);
      handOverHttp1(h1, socket, head);
    },
  };
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const serveConnection = (socket: net.Socket) => {
    track(socket);
    socket.setNoDelay(true);
    routeByPreface(socket, route, limits.prefaceTimeoutMs);
  };
  const server = options.tls === undefined ? net.createServer(serveConnection) : tlsServer(options.tls, limits, serveConnection, track);
  let port = 0;
  if (options.path === undefined) port = await listenOn(server, options.port, options.host);
  else await listenOnPath(server, options.path);
  // One server.close for both steps: a second call fails on a closed server.
  let serverClosed: Promise<void> | undefined;
  const closeServer = () => (serverClosed ??= new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    port,
    readPaths,
    stopAccepting: () => {
      void closeServer();
      for (const session of sessions) if (!session.closed && !session.destroyed) session.close();
      h1.closeIdleConnections();
    },
    close: () =>
      new Promise<void>((resolve) => {
        void closeServer().then(resolve);
        supervisor.stop();
        for (const socket of sockets) socket.destroy();
        h2.close();
        h1.close();
      }),
  };
}

/**
 * A TLS server whose decrypted sockets go through the same routing, frame
 * guard, session limits and HTTP/1.1 timeouts as plaintext ones: the TLS layer
 * only adds a handshake, held to its own timeout.
 */
function tlsServer(
  options: TlsListenOptions,
  limits: TransportLimits,
  serveConnection: (socket: net.Socket) => void,
  track: (socket: net.Socket) => void,
): tls.Server {
  const server = tls.createServer(
    { ...options.secureOptions, ALPNProtocols: alpnProtocols, handshakeTimeout: limits.tlsHandshakeTimeoutMs },
    (socket) => {
      if (options.acceptPeer !== undefined && !options.acceptPeer(socket)) {
        socket.destroy();
        return;
      }
      serveConnection(socket);
    },
  );
  // The raw socket, tracked so close() also ends connections still in their handshake.
  server.on("connection", (socket: net.Socket) => track(socket));
  // A failed handshake (no certificate, another CA, revoked, timed out) closes
  // that socket; the server serves on.
  server.on("tlsClientError", (_error, socket) => socket.destroy());
  return server;
}

interface Route {
  http2(socket: net.Socket, head: Buffer): void;
  http1(socket: net.Socket, head: Buffer): void;
}

function routeByPreface(socket: net.Socket, route: Route, prefaceTimeoutMs: number): void {
  let buffered = Buffer.alloc(0);
  // A client that never sends enough bytes to choose would hold the socket forever.
  const timer = setTimeout(() => socket.destroy(), prefaceTimeoutMs);
  timer.unref?.();
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const compared = Math.min(buffered.length, http2PrefaceStart.length);
    const isHttp2 = buffered.subarray(0, compared).equals(http2PrefaceStart.subarray(0, compared));
    if (isHttp2 && buffered.length < http2PrefaceStart.length) return; // need more bytes to decide
    clearTimeout(timer);
    socket.off("data", onData);
    if (isHttp2) route.http2(socket, buffered);
    else route.http1(socket, buffered);
  };
  socket.on("data", onData);
  socket.once("close", () => clearTimeout(timer));
  socket.on("error", () => socket.destroy());
}

function refuseHttp1(_request: http.IncomingMessage, response: http.ServerResponse): void {
  response.writeHead(505, { "content-type": "text/plain" });
  response.end("HTTP/1.1 is not served on this listener\n");
}
