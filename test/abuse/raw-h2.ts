// A deliberately misbehaving HTTP/2 client for the abuse tier: it writes
// frames by hand (no flow control, no limits of its own), so it can do what no
// well-behaved library lets it: header blocks that never end, streams it never
// reads, floods of PING, SETTINGS and RST_STREAM. It reads the server's frames
// only to notice a GOAWAY and its error code.
import * as net from "node:net";
import { flags, frame, frameTypes, hpackString } from "../runtime/raw-h2-client.ts";

// Frames and HPACK strings are the transport-limit tests' hand-driven client's
// (test/runtime/raw-h2-client.ts); this file adds what an attacker needs on top:
// floods that wait for the socket to drain, and a reader that never reads.
export { frame };
export const frameType = frameTypes;
export const frameFlag = flags;

export const settingId = { initialWindowSize: 0x4, maxFrameSize: 0x5 } as const;

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** A header block of literal fields without indexing (no Huffman), which every decoder must accept. */
export function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

export function grpcRequestHeaders(authority: string, path: string): Array<[string, string]> {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":authority", authority],
    [":path", path],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ];
}

/** A gRPC message: the 5-byte length prefix, then the protobuf bytes. */
export function grpcMessage(body: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

export interface RawConnection {
  socket: net.Socket;
  /** Writes and waits for the socket to drain; false once the connection is gone. */
  write(bytes: Buffer): Promise<boolean>;
  /** The server's GOAWAY error code, if it sent one. */
  goawayCode(): number | undefined;
  /** Bytes of server frames received (counted, not kept). */
  receivedBytes(): number;
  /** Frames received by type. */
  receivedFrames(type: number): number;
  closed(): boolean;
  /** Resolves when the server closed the connection (or `timeoutMs` passed: false). */
  waitClosed(timeoutMs: number): Promise<boolean>;
  destroy(): void;
}

export interface RawConnectOptions {
  /** SETTINGS sent after the preface (id → value). */
  settings?: ReadonlyArray<readonly [number, number]>;
  /** Do not read the socket at all (a peer that never drains what the server writes). */
  neverRead?: boolean;
}

export async function rawConnect(port: number, options: RawConnectOptions = {}): Promise<RawConnection> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  let goaway: number | undefined;
  let received = 0;
  const framesByType = new Map<number, number>();
  let pending: Buffer = Buffer.alloc(0);
  let isClosed = false;
  const closedPromise = new Promise<void>((resolve) => socket.once("close", () => {
    isClosed = true;
    resolve();
  }));
  if (options.neverRead === true) socket.pause();
  else {
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < 9 + length) break;
        const type = pending[3] as number;
        framesByType.set(type, (framesByType.get(type) ?? 0) + 1);
        if (type === frameType.goaway && length >= 8) goaway = pending.readUInt32BE(9 + 4);
        pending = pending.subarray(9 + length);
      }
    });
  }
  const settingsPayload = Buffer.alloc(6 * (options.settings?.length ?? 0));
  (options.settings ?? []).forEach(([id, value], i) => {
    settingsPayload.writeUInt16BE(id, i * 6);
    settingsPayload.writeUInt32BE(value, i * 6 + 2);
  });
  const connection: RawConnection = {
    socket,
    write: async (bytes) => {
      if (isClosed || socket.destroyed) return false;
      const flushed = socket.write(bytes);
      if (flushed) return true;
      await Promise.race([new Promise<void>((resolve) => socket.once("drain", resolve)), closedPromise]);
      return !isClosed;
    },
    goawayCode: () => goaway,
    receivedBytes: () => received,
    receivedFrames: (type) => framesByType.get(type) ?? 0,
    closed: () => isClosed,
    waitClosed: async (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const result = await Promise.race([closedPromise.then(() => true as const), timedOut]);
      clearTimeout(timer);
      return result;
    },
    destroy: () => socket.destroy(),
  };
  await connection.write(Buffer.concat([preface, frame(frameType.settings, 0, 0, settingsPayload)]));
  return connection;
}

/** Sends `bytesTotal` of frames made by `next`, as fast as the server drains them, until done, closed or `deadlineMs`. */
export async function flood(
  connection: RawConnection,
  next: () => Buffer,
  bytesTotal: number,
  deadlineMs: number,
): Promise<{ bytesSent: number; closedByServer: boolean }> {
  const deadline = Date.now() + deadlineMs;
  let bytesSent = 0;
  while (bytesSent < bytesTotal && Date.now() < deadline && !connection.closed()) {
    // Batches of frames per write keep the attacker's own overhead low.
    const batch: Buffer[] = [];
    let batchBytes = 0;
    while (batchBytes < 64 * 1024) {
      const piece = next();
      batch.push(piece);
      batchBytes += piece.length;
    }
    // A server that stops reading us must not hang the attacker past its deadline.
    const written = await Promise.race([
      connection.write(Buffer.concat(batch)),
      new Promise<"stalled">((resolve) => setTimeout(() => resolve("stalled"), Math.max(0, deadline - Date.now()))),
    ]);
    if (written === "stalled") return { bytesSent, closedByServer: connection.closed() };
    if (!written) return { bytesSent, closedByServer: true };
    bytesSent += batchBytes;
  }
  return { bytesSent, closedByServer: connection.closed() };
}
