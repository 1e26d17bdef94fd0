// How a member tells a peer that it refused the peer's certificate, and how the
// peer hears it. etcd 3.4 refuses inside the TLS handshake (VerifyPeerCertificate
// of pkg/transport, on both the serving and the dialling side): Go sends a
// bad_certificate alert and the refused member logs "remote error: tls: bad
// certificate". Node cannot fail a handshake on --peer-cert-allowed-cn or
// --peer-cert-allowed-hostname: its OpenSSL verify callback always lets the
// handshake finish, and no option or event runs inside it (keylog, SNI and ALPN
// callbacks run before the client's certificate arrives; TLS 1.3 clients finish
// before the server has checked theirs). So the refusing side says it right
// after the handshake, in HTTP/2's words: its first frames are its preface and
// a GOAWAY with INADEQUATE_SECURITY and the debug data "bad certificate", and
// it sends nothing else. The refused side recognises exactly that GOAWAY and
// logs Go's text. Over ALPN http/1.1 a refused client gets a 403 instead.
import type * as tls from "node:tls";
import { encodeGoaway, frameHeaderBytes, frameType } from "./h2-frame-guard.ts";

/** RFC 9113 §7 INADEQUATE_SECURITY: "the underlying transport has properties that do not meet minimum security requirements". */
export const certificateRefusalCode = 0xc;
const certificateRefusalDebug = "bad certificate";
/** The GOAWAY debug data of a certificate refusal. */
export const certificateRefusalDebugData = Buffer.from(certificateRefusalDebug);
/** What the refused member logs: Go's text for the alert etcd would have sent. */
export const refusedByPeerText = "remote error: tls: bad certificate";
/** What the refusing member logs (etcd's VerifyPeerCertificate error), followed by its reason. */
export const certificateRefusedText = "client certificate authentication failed";

export interface RefusalLimits {
  /** A refused connection is closed this long after our answer at the latest. */
  lingerMs: number;
  /** Bytes read from a refused client, looking for its own refusal; past it the connection is closed. */
  readBytesMax: number;
}

/** A refusing client's first flight is its preface, SETTINGS and GOAWAY (about 100 bytes; Bun adds a HEADERS frame). */
export const refusalLimitsDefault: RefusalLimits = { lingerMs: 1000, readBytesMax: 4096 };

const clientPreface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Whether a GOAWAY's code and debug data are a certificate refusal. */
export function isCertificateRefusal(code: number, debugData: Uint8Array | undefined): boolean {
  return code === certificateRefusalCode && debugData !== undefined && Buffer.from(debugData).equals(certificateRefusalDebugData);
}

/** A refusing server's answer: its connection preface (an empty SETTINGS) and the GOAWAY. */
export function serverRefusalFrames(): Buffer {
  const settings = Buffer.alloc(frameHeaderBytes);
  settings[3] = frameType.settings;
  return Buffer.concat([settings, encodeGoaway(0, certificateRefusalCode, certificateRefusalDebug)]);
}

const http1RefusalBody = `${certificateRefusedText}\n`;
const http1Refusal = Buffer.from(
  `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${http1RefusalBody.length}\r\nconnection: close\r\n\r\n${http1RefusalBody}`,
);

/**
 * Whether `bytes`, the start of what an HTTP/2 client sent, hold its
 * certificate refusal: the preface, then frames, one of them that GOAWAY.
 * False for anything else, complete or not.
 */
export function holdsCertificateRefusal(bytes: Uint8Array): boolean {
  if (bytes.length < clientPreface.length || !clientPreface.equals(bytes.subarray(0, clientPreface.length))) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = clientPreface.length;
  while (offset + frameHeaderBytes <= bytes.length) {
    const length = (view.getUint16(offset) << 8) | view.getUint8(offset + 2);
    const end = offset + frameHeaderBytes + length;
    if (end > bytes.length) return false;
    if (view.getUint8(offset + 3) === frameType.goaway && length >= 8) {
      const code = view.getUint32(offset + frameHeaderBytes + 4);
      if (isCertificateRefusal(code, bytes.subarray(offset + frameHeaderBytes + 8, end))) return true;
    }
    offset = end;
  }
  return false;
}

/**
 * Answers a connection whose certificate this member refused, instead of
 * dropping it unexplained: the refusal frames (or a 403 over HTTP/1.1), then
 * the end of the connection. Nothing the client sends is served; its first
 * bytes are only read (at most `readBytesMax`, for at most `lingerMs`) to see
 * whether it refused our certificate too, as a dialler does when the allowed
 * CN or hostname rules exclude both sides.
 */
export function answerRefusedConnection(socket: tls.TLSSocket, onRefusedByPeer: () => void, limits: RefusalLimits = refusalLimitsDefault): void {
  const isHttp2 = socket.alpnProtocol === "h2";
  socket.on("error", () => socket.destroy());
  const timer = setTimeout(() => socket.destroy(), limits.lingerMs);
  socket.once("close", () => clearTimeout(timer));
  socket.end(isHttp2 ? serverRefusalFrames() : http1Refusal);
  const chunks: Buffer[] = [];
  let bytesRead = 0;
  socket.on("data", (chunk: Buffer) => {
    bytesRead += chunk.length;
    if (bytesRead > limits.readBytesMax) return socket.destroy();
    if (!isHttp2) return;
    chunks.push(chunk);
    if (!holdsCertificateRefusal(Buffer.concat(chunks))) return;
    onRefusedByPeer();
    socket.destroy();
  });
}
