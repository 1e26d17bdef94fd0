// Peer TLS (etcd's --peer-* flags) on node:tls and node:http2, for both
// runtimes. An https peer URL is served as HTTP/2 over TLS (ALPN h2, HTTP/1.1
// for curl and one-off requests) under the same transport limits as the
// plaintext peer listener; members dial https peers with their own peer
// certificate and trust only the peer CA. With --peer-auto-tls the member
// serves a self-signed certificate made in memory and dials https peers
// without verifying theirs, as etcd 3.4 does (encryption, not authentication).
//
// Who may talk: with --peer-client-cert-auth or --peer-trusted-ca-file a
// dialling peer must show a certificate the CA signed (OpenSSL refuses the
// handshake) and the CRL does not revoke (by serial, as etcd: crl.ts);
// --peer-cert-allowed-cn and
// --peer-cert-allowed-hostname are checked as soon as the handshake completes,
// before a byte of HTTP is read (Node has no hook inside the server's
// verification), and on the certificate of every peer this member dials. The
// side that refuses a certificate after the handshake tells the other why it
// closes (peer-refusal.ts), as etcd's bad_certificate alert does.
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import * as tls from "node:tls";
import type { PeerFetch, PeerTlsConfig } from "../../src/ports.ts";
import { guardedHttp2Socket } from "./h2-connection.ts";
import { limitedHttpServers, listenOn, type NodeRequestHandler } from "./http-listener.ts";
import { answerRefusedConnection, certificateRefusedText, isCertificateRefusal, refusedByPeerText } from "./peer-refusal.ts";
import type { TransportLimits } from "./transport-limits.ts";
import { selfSignedCertificate } from "./self-signed-certificate.ts";
import { peerCertificateRevoked, revokedSerials } from "./crl.ts";

/** A CRL file that does not parse stops the start, naming the flag. */
function checkedCrlFile(path: string): string {
  try {
    revokedSerials(readFileSync(path));
  } catch (error) {
    throw new Error(`--peer-crl-file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return path;
}

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** etcd's floor (pkg/transport: tls.VersionTLS12). */
const tlsVersionMin = "TLSv1.2";

/** The files of PeerTlsConfig, read once at start (a missing file fails the start, as in etcd). */
export interface PeerTlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  /** --peer-crl-file, read again for each connection (crl.ts). */
  crlFile: string | undefined;
  /** A dialling peer must show a certificate signed by `ca` (etcd: --peer-client-cert-auth or a trusted CA given). */
  requireClientCert: boolean;
  allowedCn: string | undefined;
  allowedHostname: string | undefined;
  /**
   * --peer-auto-tls: the certificate is self-signed, so https peers are dialled
   * without verifying theirs (etcd's InsecureSkipVerify for a self-signed
   * TLSInfo): encryption, not authentication.
   */
  skipPeerVerification?: boolean;
}

export function loadPeerTls(config: PeerTlsConfig): PeerTlsMaterial {
  if (config.certFile === undefined || config.keyFile === undefined) {
    if (config.autoTlsHosts === undefined) throw new Error("peer TLS needs --peer-cert-file and --peer-key-file, or --peer-auto-tls");
    const pair = selfSignedCertificate(config.autoTlsHosts);
    return {
      cert: Buffer.from(pair.certificatePem),
      key: Buffer.from(pair.keyPem),
      ca: undefined,
      crlFile: undefined,
      requireClientCert: false,
      allowedCn: undefined,
      allowedHostname: undefined,
      skipPeerVerification: true,
    };
  }
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`--${flag} ${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  const material: PeerTlsMaterial = {
    cert: read("peer-cert-file", config.certFile),
    key: read("peer-key-file", config.keyFile),
    skipPeerVerification: false,
    ca: config.trustedCaFile === undefined ? undefined : read("peer-trusted-ca-file", config.trustedCaFile),
    crlFile: config.crlFile === undefined ? undefined : checkedCrlFile(config.crlFile),
    requireClientCert: config.clientCertAuth || config.trustedCaFile !== undefined,
    allowedCn: config.allowedCn,
    allowedHostname: config.allowedHostname,
  };
  if (material.requireClientCert && material.ca === undefined) {
    // etcd would verify against the system roots; a peer CA is what peer TLS is for.
    throw new Error("--peer-client-cert-auth needs --peer-trusted-ca-file");
  }
  // Fails now on a key that does not match its certificate, a bad PEM or a bad CRL.
  tls.createSecureContext(secureContextOptions(material));
  return material;
}

function secureContextOptions(material: PeerTlsMaterial): tls.SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: tlsVersionMin,
    ...(material.ca === undefined ? {} : { ca: material.ca }),
  };
}

/**
 * Why `certificate` may not talk to us, or undefined when it may: the allowed
 * CN is an exact match of the subject's CommonName, the allowed hostname is
 * checked against the SANs (and CN) as a server name would be (etcd 3.4's
 * VerifyPeerCertificate, on both the serving and the dialling side).
 */
export function certificateRefusal(material: PeerTlsMaterial, certificate: tls.PeerCertificate | undefined): string | undefined {
  if (material.allowedCn === undefined && material.allowedHostname === undefined) return undefined;
  if (certificate === undefined || Object.keys(certificate).length === 0) return "no certificate";
  if (material.allowedCn !== undefined) {
    const commonName = certificate.subject?.CN;
    return commonName === material.allowedCn ? undefined : `CommonName ${JSON.stringify(commonName)} is not ${JSON.stringify(material.allowedCn)}`;
  }
  // Go's VerifyHostname reads the CommonName only from a certificate without
  // SANs; Node falls back to it whenever no DNS SAN is there.
  const namesOnly = certificate.subjectaltname ? { ...certificate, subject: { ...certificate.subject, CN: "" } } : certificate;
  const mismatch = tls.checkServerIdentity(material.allowedHostname ?? "", namesOnly as tls.PeerCertificate);
  return mismatch === undefined ? undefined : mismatch.message;
}

/**
 * Why this member refuses the certificate a peer serves at `host`, or
 * undefined when it may be talked to: the URL's host must be in it (as Go's
 * client checks), then etcd's allowed CN or hostname.
 */
export function serverCertificateRefusal(material: PeerTlsMaterial, host: string, certificate: tls.PeerCertificate | undefined): string | undefined {
  // --peer-auto-tls: any certificate is taken (the peer's is self-signed too).
  if (material.skipPeerVerification === true) return undefined;
  if (certificate === undefined || Object.keys(certificate).length === 0) return "the peer showed no certificate";
  const mismatch = tls.checkServerIdentity(host, certificate);
  if (mismatch !== undefined) return mismatch.message;
  const refusal = certificateRefusal(material, certificate);
  return refusal === undefined ? undefined : `${certificateRefusedText}: ${refusal}`;
}

/** What peer TLS tells the member's log (the caller rate-limits: anyone who reaches the port can cause these). */
export interface PeerTlsEvents {
  /** This member refused a peer: a failed handshake, or a certificate it does not take, on either side of a connection. */
  onRefused?: (reason: string, remoteAddress: string | undefined) => void;
  /** A peer said it refused this member's certificate (peer-refusal.ts); `reason` is Go's text for it. */
  onRefusedByPeer?: (reason: string, remoteAddress: string | undefined) => void;
}

export interface TlsListenOptions extends PeerTlsEvents {
  host: string;
  port: number;
  handle: NodeRequestHandler;
  limits: TransportLimits;
  material: PeerTlsMaterial;
}

export interface TlsListener {
  port: number;
  close(): Promise<void>;
}

/**
 * The https peer listener. The TLS server decides the protocol by ALPN, then
 * hands the decrypted socket to the same HTTP/2 and HTTP/1.1 servers and
 * limits as listenHttp does for plaintext: Node's native HTTP/2 socket (nghttp2
 * holds the frame limits), Bun's through the frame guard.
 */
export async function listenPeerTls(options: TlsListenOptions): Promise<TlsListener> {
  const { limits, material } = options;
  const nowMs = () => performance.now();
  const { h2, h1, supervisor, http1Timeouts, serveGuarded } = limitedHttpServers(limits, options.handle, options.handle, nowMs);
  const server = tls.createServer({
    ...secureContextOptions(material),
    ALPNProtocols: ["h2", "http/1.1"],
    requestCert: material.requireClientCert,
    rejectUnauthorized: material.requireClientCert,
    // The plaintext listener's preface timeout, for the handshake.
    handshakeTimeout: limits.prefaceTimeoutMs,
  });
  const sockets = new Set<tls.TLSSocket>();
  const refusedByPeer = (remoteAddress: string | undefined) => options.onRefusedByPeer?.(refusedByPeerText, remoteAddress);
  server.on("tlsClientError", (error, socket) => {
    options.onRefused?.(error.message, socket.remoteAddress);
    socket.destroy();
  });
  // A dialler that refuses our certificate says so in a GOAWAY of its own
  // (peer-refusal.ts): read here when we took its certificate, by
  // answerRefusedConnection when we did not. The session is made while the
  // connection is handed over.
  let remoteAddressHandedOver: string | undefined;
  h2.on("session", (session) => {
    const remoteAddress = remoteAddressHandedOver;
    session.on("goaway", (code: number, _lastStreamId: number, debugData?: Buffer) => {
      if (isCertificateRefusal(code, debugData)) refusedByPeer(remoteAddress);
    });
  });
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const remoteAddress = socket.remoteAddress;
    const refusal = material.requireClientCert
      ? material.crlFile !== undefined && peerCertificateRevoked(socket, material.crlFile)
        ? "certificate revoked by --peer-crl-file"
        : certificateRefusal(material, socket.getPeerCertificate())
      : undefined;
    if (refusal !== undefined) {
      options.onRefused?.(`${certificateRefusedText}: ${refusal}`, remoteAddress);
      answerRefusedConnection(socket, () => refusedByPeer(remoteAddress));
      return;
    }
    socket.on("error", () => socket.destroy());
    socket.setNoDelay(true);
    if (socket.alpnProtocol !== "h2") {
      http1Timeouts.adopt(socket);
      h1.emit("connection", socket);
      return;
    }
    remoteAddressHandedOver = remoteAddress;
    try {
      if (!isBun) {
        h2.emit("connection", socket);
        return;
      }
      const { stream, connection } = guardedHttp2Socket(socket, Buffer.alloc(0), {
        limits,
        keepalive: limits.keepalive,
        rewriteAuthority: false,
        nowMs,
      });
      serveGuarded(stream, connection);
    } finally {
      remoteAddressHandedOver = undefined;
    }
  });
  const port = await listenOn(server, options.port, options.host);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        supervisor.stop();
        for (const socket of sockets) socket.destroy();
        h2.close();
        h1.close();
      }),
  };
}

/**
 * The TLS options of a session dialled to an https peer: our certificate and
 * the peer CA, checked by OpenSSL in the handshake. The server's certificate
 * is not checked against the URL's host or the allowed CN or hostname here:
 * the caller must, with serverCertificateRefusal, before the session carries
 * a request (peer-network.ts does on the session's 'connect', and tells a
 * refused server so).
 */
export function peerSessionTlsOptions(material: PeerTlsMaterial): tls.ConnectionOptions {
  // --peer-auto-tls: any certificate is taken (the peer's is self-signed too).
  if (material.skipPeerVerification === true) return { ...secureContextOptions(material), rejectUnauthorized: false };
  return { ...secureContextOptions(material), checkServerIdentity: () => undefined };
}

/** The TLS options of a one-off request to an https peer: as a session's, with the certificate checked in the handshake. */
export function peerClientTlsOptions(material: PeerTlsMaterial, onRefused?: (reason: string, host: string) => void): tls.ConnectionOptions {
  if (material.skipPeerVerification === true) return peerSessionTlsOptions(material);
  return {
    ...secureContextOptions(material),
    checkServerIdentity(host, certificate) {
      const refusal = serverCertificateRefusal(material, host, certificate);
      if (refusal === undefined) return undefined;
      onRefused?.(refusal, host);
      return new Error(refusal);
    },
  };
}

/** Bytes a one-off peer answer may have (GET /members of a large cluster is a few KiB). */
const peerFetchResponseBytesMax = 16 * 1024 * 1024;

/**
 * A fetch for https peer URLs over HTTP/2 with this member's certificate (one
 * session per request: these are rare, GET /members and lease forwarding);
 * http URLs go to the web-standard fetch exactly as without peer TLS.
 */
export function peerTlsFetch(material: PeerTlsMaterial, events: PeerTlsEvents = {}): PeerFetch {
  const clientOptions = peerClientTlsOptions(material, events.onRefused);
  return async (input, init = {}) => {
    const url = new URL(String(input));
    if (url.protocol !== "https:") return fetch(url, init);
    const session = http2.connect(url.origin, clientOptions);
    session.on("error", () => {});
    try {
      return await new Promise<Response>((resolve, reject) => {
        const fail = (error: unknown) => reject(error instanceof Error ? error : new Error(String(error)));
        session.on("goaway", (code: number, _lastStreamId: number, debugData?: Buffer) => {
          if (!isCertificateRefusal(code, debugData)) return;
          events.onRefusedByPeer?.(refusedByPeerText, url.host);
          fail(new Error(refusedByPeerText));
        });
        session.once("error", fail);
        const signal = init.signal ?? undefined;
        if (signal?.aborted === true) return fail(signal.reason);
        signal?.addEventListener("abort", () => {
          session.destroy();
          fail(signal.reason);
        });
        const headers: Record<string, string> = {};
        new Headers(init.headers).forEach((value, name) => (headers[name] = value));
        const stream = session.request({ ":method": init.method ?? "GET", ":path": url.pathname + url.search, ...headers });
        stream.on("error", fail);
        stream.once("close", () => fail(new Error(`peer stream closed (code ${stream.rstCode})`)));
        const chunks: Buffer[] = [];
        let bytes = 0;
        let status = 0;
        const responseHeaders = new Headers();
        stream.once("response", (head) => {
          status = Number(head[":status"]);
          for (const [name, value] of Object.entries(head)) {
            if (!name.startsWith(":") && value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(", ") : String(value));
          }
        });
        stream.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > peerFetchResponseBytesMax) {
            stream.close(http2.constants.NGHTTP2_CANCEL);
            fail(new Error(`peer answer over ${peerFetchResponseBytesMax} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        stream.once("end", () => {
          const body = Buffer.concat(chunks);
          // 204 and 304 carry no body; Response refuses one for them.
          resolve(new Response(status === 204 || status === 304 ? null : body, { status, headers: responseHeaders }));
        });
        const body = init.body;
        if (body === undefined || body === null) stream.end();
        else if (typeof body === "string" || body instanceof Uint8Array) stream.end(body);
        else fail(new Error("peer fetch takes a string or Uint8Array body"));
      });
    } finally {
      session.close();
    }
  };
}
