// The peer network port on node:http2, cleartext (h2c), or TLS for https peer
// URLs when the member has a peer certificate (peer-tls.ts). Used by both
// runtimes: Bun implements node:http2's server and client. The listener also
// answers HTTP/1.1 (curl http://peer/version), through the shared preface
// router (plaintext) or ALPN (TLS).
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import type {
  PeerIncomingRequest,
  PeerListener,
  PeerNetwork,
  PeerOutgoingStream,
  PeerRequestHandler,
  PeerSession,
} from "../../src/ports.ts";
import { listenAddressOf, listenHttp, unixSocketPathOf, writeHead } from "./http-listener.ts";
import { peerTransportLimits } from "./transport-limits.ts";
import { certificateRefusalCode, certificateRefusalDebugData, isCertificateRefusal, refusalLimitsDefault, refusedByPeerText } from "./peer-refusal.ts";
import { listenPeerTls, peerSessionTlsOptions, peerTlsFetch, serverCertificateRefusal, type PeerTlsEvents, type PeerTlsMaterial } from "./peer-tls.ts";

/**
 * The receive window of each peer connection. HTTP/2's default (64 KiB for the
 * whole connection) would make a snapshot stream wait for a window update every
 * 64 KiB, and heartbeats on the same connection behind it.
 */
const connectionWindowBytes = 16 * 1024 * 1024;
/** The receive window of each stream; a snapshot stream cannot take the whole connection window. */
const streamWindowBytes = 1024 * 1024;

const sessionSettings: http2.Settings = { initialWindowSize: streamWindowBytes };

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** A cleartext session to a peer URL: http://host:port, or unix://path through its socket. */
function plainSession(url: string, createConnection?: () => net.Socket): NodePeerSession {
  const path = unixSocketPathOf(url);
  if (path === undefined) return new NodePeerSession(url, createConnection);
  return new NodePeerSession("http://localhost", createConnection ?? (() => net.connect(path)));
}

export const nodePeerNetwork: PeerNetwork = {
  async listen(url, handler) {
    const serve = servePeer(handler);
    const address = listenAddressOf(url);
    const listener = await listenHttp({
      ...address,
      handleHttp2: serve,
      handleHttp1: serve,
      rewriteAuthority: false,
      limits: peerTransportLimits,
    });
    const bound = new URL(url.href);
    if (address.path === undefined) bound.port = String(listener.port);
    const result: PeerListener = { url: bound, close: () => listener.close() };
    return result;
  },

  connect(url) {
    return plainSession(url);
  },

  // Plaintext peers: the runtime's web-standard fetch (peerTlsFetch below for https ones).
  fetch: (url, init) => globalThis.fetch(url, init),
};

function servePeer(handler: PeerRequestHandler) {
  return (request: http.IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse) => {
    if ("stream" in request) widenWindow(request.stream.session);
    handler(incomingRequest(request, response));
  };
}

/**
 * The peer network of a member with a peer certificate (--peer-cert-file):
 * https URLs are served and dialled over TLS, http ones exactly as
 * nodePeerNetwork does (etcd serves each listen URL by its scheme).
 */
export function nodePeerNetworkWithTls(material: PeerTlsMaterial, dialer?: PeerDialer, events: PeerTlsEvents = {}): PeerNetwork {
  const clientTls = peerSessionTlsOptions(material);
  const check: SessionCertificateCheck = { refusalOf: (host, certificate) => serverCertificateRefusal(material, host, certificate), events };
  return {
    async listen(url, handler) {
      if (url.protocol !== "https:") return nodePeerNetwork.listen(url, handler);
      const { host, port } = listenAddressOf(url);
      const listener = await listenPeerTls({
        host,
        port,
        handle: servePeer(handler),
        limits: peerTransportLimits,
        material,
        ...events,
      });
      const bound = new URL(url.href);
      bound.port = String(listener.port);
      const result: PeerListener = { url: bound, close: () => listener.close() };
      return result;
    },
    connect(url) {
      const dial = dialer?.(url);
      if (!url.startsWith("https:")) return plainSession(url, dial);
      // Through a test proxy the TLS session runs over the proxied socket, checked against the peer's own host.
      const host = new URL(url).hostname;
      const createConnection = dial === undefined ? undefined : () => tls.connect({ ...clientTls, socket: dial(), ALPNProtocols: ["h2"], host, servername: net.isIP(host) === 0 ? host : "" });
      return new NodePeerSession(url, createConnection, clientTls, check);
    },
    fetch: peerTlsFetch(material, events),
  };
}

/**
 * Opens the socket of a session to `url`, or returns undefined to let
 * http2.connect dial `url` itself.
 */
export type PeerDialer = (url: string) => (() => net.Socket) | undefined;

/** nodePeerNetwork with sessions dialled through `dialer` (tests route peers through proxies: runtime/faults/peer-dial.ts). */
export function nodePeerNetworkDialing(dialer: PeerDialer): PeerNetwork {
  return { ...nodePeerNetwork, connect: (url) => plainSession(url, dialer(url)) };
}

function widenWindow(session: http2.Http2Session | undefined): void {
  // Bun 1.4's setLocalWindowSize stalls the session's streams (checked: a
  // second stream on a widened session never reaches the server), so Bun keeps
  // HTTP/2's default connection window.
  if (isBun || session === undefined || session.destroyed) return;
  const marked = session as http2.Http2Session & { edgetcdWindow?: boolean };
  if (marked.edgetcdWindow === true) return;
  marked.edgetcdWindow = true;
  try {
    session.setLocalWindowSize(connectionWindowBytes);
  } catch {
    // Not every implementation supports it; the default window still works, only slower.
  }
}

function incomingRequest(
  request: http.IncomingMessage | http2.Http2ServerRequest,
  response: http.ServerResponse | http2.Http2ServerResponse,
): PeerIncomingRequest {
  const respond = (status: number, headers: Record<string, string> = {}) => {
    if (response.headersSent) return;
    writeHead(response, status, headers);
    // Declared on both response kinds at run time; @types/node misses the HTTP/2 one.
    (response as { flushHeaders?: () => void }).flushHeaders?.();
  };
  return {
    method: request.method ?? "GET",
    path: (request.url ?? "/").split("?")[0] ?? "/",
    header(name) {
      const value = request.headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
    body: plainChunks(request as AsyncIterable<Uint8Array>),
    respond,
    end(body) {
      if (response.writableEnded) return;
      if (!response.headersSent) writeHead(response, response.statusCode);
      if (body === undefined) response.end();
      else response.end(body);
    },
    abort() {
      if ("stream" in request) request.stream.close(http2.constants.NGHTTP2_CANCEL);
      else request.socket.destroy();
    },
  };
}

/** Node hands out Buffers; src/ sees plain Uint8Array views of the same memory. */
async function* plainChunks(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** How a session to an https peer judges the certificate the peer showed, and whom it tells. */
interface SessionCertificateCheck {
  /** Why the certificate shown for `host` is refused, or undefined when it is taken. */
  refusalOf(host: string, certificate: tls.PeerCertificate | undefined): string | undefined;
  events: PeerTlsEvents;
}

class NodePeerSession implements PeerSession {
  private readonly session: http2.ClientHttp2Session;
  readonly closed: Promise<void>;
  /**
   * Resolves once the session may carry requests: at once over cleartext;
   * over TLS when the peer's certificate has been taken on 'connect'. Rejects
   * when it was refused or the session closed first.
   */
  private readonly usable: Promise<void>;
  private isUsable: boolean;

  constructor(url: string, createConnection?: () => net.Socket, clientTls: tls.ConnectionOptions = {}, check?: SessionCertificateCheck) {
    this.session = http2.connect(
      url,
      createConnection === undefined ? { ...clientTls, settings: sessionSettings } : { ...clientTls, settings: sessionSettings, createConnection },
    );
    this.session.on("error", () => this.session.destroy());
    const peer = new URL(url);
    let settle: (refusal?: string) => void = () => {};
    this.usable = new Promise((resolve, reject) => (settle = (refusal) => (refusal === undefined ? resolve() : reject(new Error(refusal)))));
    this.usable.catch(() => {});
    this.isUsable = check === undefined;
    if (check !== undefined) {
      // Registered first, and requests wait for `usable`: no request leaves
      // before the certificate is taken (Bun's client would otherwise send
      // HEADERS of requests made before 'connect' along with its preface).
      this.session.once("connect", () => {
        const socket = this.session.socket as unknown as tls.TLSSocket;
        const refusal = check.refusalOf(peer.hostname.replace(/^\[|\]$/g, ""), socket.getPeerCertificate());
        if (refusal === undefined) {
          this.isUsable = true;
          return settle();
        }
        check.events.onRefused?.(refusal, peer.host);
        this.refuse();
        settle(refusal);
      });
    }
    this.session.once("connect", () => widenWindow(this.session));
    // A GOAWAY (the peer is stopping, or refused our certificate) means no new streams: let the session go.
    this.session.on("goaway", (code: number, _lastStreamId: number, debugData?: Buffer) => {
      if (isCertificateRefusal(code, debugData)) check?.events.onRefusedByPeer?.(refusedByPeerText, peer.host);
      this.session.close();
    });
    this.closed = new Promise((resolve) =>
      this.session.once("close", () => {
        settle("peer session closed");
        resolve();
      }),
    );
  }

  request(path: string, headers: Record<string, string>): PeerOutgoingStream {
    if (this.isUsable) return this.openStream(path, headers);
    return deferredStream(this.usable.then(() => this.openStream(path, headers)));
  }

  /** Tells the server we refuse its certificate (peer-refusal.ts), and ends the session: only our preface and the GOAWAY were sent. */
  private refuse(): void {
    const session = this.session;
    session.goaway(certificateRefusalCode, 0, certificateRefusalDebugData);
    session.close();
    const timer = setTimeout(() => session.destroy(), refusalLimitsDefault.lingerMs);
    timer.unref?.();
    session.once("close", () => clearTimeout(timer));
  }

  private openStream(path: string, headers: Record<string, string>): PeerOutgoingStream {
    let stream: http2.ClientHttp2Stream;
    try {
      if (this.session.closed || this.session.destroyed) throw new Error("peer session closed");
      stream = this.session.request({ ":method": "POST", ":path": path, ...headers }, { endStream: false });
    } catch (error) {
      return failedStream(error);
    }
    return new NodeOutgoingStream(stream);
  }

  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        const sent = this.session.ping((error) => (error === null ? resolve() : reject(error)));
        if (!sent) reject(new Error("too many unacknowledged pings"));
      } catch (error) {
        reject(error);
      }
    });
  }

  close(): void {
    this.session.destroy();
  }
}

class NodeOutgoingStream implements PeerOutgoingStream {
  readonly response: Promise<{ status: number; headers: Record<string, string> }>;
  readonly closed: Promise<void>;
  private isClosed = false;

  constructor(private readonly stream: http2.ClientHttp2Stream) {
    stream.on("error", () => {}); // surfaced through `response` and `closed`
    this.response = new Promise((resolve, reject) => {
      stream.once("response", (headers) => {
        const flat: Record<string, string> = {};
        for (const [name, value] of Object.entries(headers)) {
          if (value !== undefined && !name.startsWith(":")) flat[name] = Array.isArray(value) ? (value[0] ?? "") : String(value);
        }
        resolve({ status: Number(headers[":status"]), headers: flat });
      });
      stream.once("close", () => reject(new Error(`peer stream closed before a response (code ${stream.rstCode})`)));
    });
    this.response.catch(() => {});
    // The response body is not used by the peer protocol, but it must be read
    // for flow control to let the peer finish.
    stream.on("data", () => {});
    this.closed = new Promise((resolve) =>
      stream.once("close", () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  write(chunk: Uint8Array): boolean {
    if (this.isClosed || this.stream.destroyed) return false;
    return this.stream.write(chunk);
  }

  drained(): Promise<void> {
    if (this.isClosed || this.stream.destroyed) return Promise.reject(new Error("peer stream closed"));
    if (!this.stream.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.stream.off("close", onClose);
        resolve();
      };
      const onClose = () => {
        this.stream.off("drain", onDrain);
        reject(new Error("peer stream closed"));
      };
      this.stream.once("drain", onDrain);
      this.stream.once("close", onClose);
    });
  }

  end(): void {
    if (!this.isClosed) this.stream.end();
  }

  abort(): void {
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}

/**
 * A stream whose request is made once `opened` resolves (the session's
 * certificate check). Writes before then are held (one per writer: `false`
 * tells it to wait for `drained`) and sent first.
 */
function deferredStream(opened: Promise<PeerOutgoingStream>): PeerOutgoingStream {
  let stream: PeerOutgoingStream | undefined;
  let held: Uint8Array[] = [];
  let ended = false;
  let aborted = false;
  const ready = opened.then((opened) => {
    stream = opened;
    for (const chunk of held) opened.write(chunk);
    held = [];
    if (aborted) opened.abort();
    else if (ended) opened.end();
    return opened;
  });
  ready.catch(() => {});
  const response = ready.then((opened) => opened.response);
  response.catch(() => {});
  return {
    response,
    closed: ready.then(
      (opened) => opened.closed,
      () => undefined,
    ),
    write(chunk) {
      if (stream !== undefined) return stream.write(chunk);
      if (!ended && !aborted) held.push(chunk);
      return false;
    },
    drained: () => ready.then((opened) => opened.drained()),
    end() {
      if (stream !== undefined) stream.end();
      else ended = true;
    },
    abort() {
      aborted = true;
      stream?.abort();
    },
  };
}

function failedStream(error: unknown): PeerOutgoingStream {
  const failure = Promise.reject(error instanceof Error ? error : new Error(String(error)));
  failure.catch(() => {});
  return {
    response: failure,
    write: () => false,
    drained: () => failure,
    end() {},
    closed: Promise.resolve(),
    abort() {},
  };
}
