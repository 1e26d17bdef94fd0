// A hand-driven HTTP/2 client for the transport-limit tests: it writes the
// frames it is told to (however malformed or abusive), never acknowledges or
// opens a window unless told to, and records what the server sends back.
import * as net from "node:net";

export const frameTypes = { data: 0x0, headers: 0x1, rstStream: 0x3, settings: 0x4, ping: 0x6, goaway: 0x7, windowUpdate: 0x8, continuation: 0x9 };
export const flags = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 };

export function frame(type: number, frameFlags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = frameFlags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

export const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(frameTypes.settings, 0, 0)]);

/** A HEADERS block for `POST path` (HPACK: literal fields without indexing, no Huffman). */
export function requestBlock(path: string, extra: Record<string, string> = {}): Buffer {
  const fields: Array<[string, string]> = [
    [":method", "POST"],
    [":scheme", "http"],
    [":authority", "127.0.0.1"],
    [":path", path],
    ...Object.entries(extra),
  ];
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    parts.push(Buffer.from([0x00]), hpackString(name), hpackString(value));
  }
  return Buffer.concat(parts);
}

/** An HPACK string literal (RFC 7541 §5.2), without Huffman coding. */
export function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text);
  if (bytes.length >= 127) {
    let rest = bytes.length - 127;
    const prefix = [0x7f];
    while (rest >= 128) {
      prefix.push((rest % 128) | 0x80);
      rest = Math.floor(rest / 128);
    }
    prefix.push(rest);
    return Buffer.concat([Buffer.from(prefix), bytes]);
  }
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

export interface ReceivedFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export interface Goaway {
  lastStreamId: number;
  code: number;
  debug: string;
}

export class RawHttp2Client {
  readonly frames: ReceivedFrame[] = [];
  goaway: Goaway | undefined;
  readonly closed: Promise<void>;
  private buffered = Buffer.alloc(0);
  private readonly waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    const wakeAll = () => {
      for (const wake of this.waiters.splice(0)) wake();
    };
    socket.once("close", wakeAll);
    socket.once("end", wakeAll);
  }

  static async connect(port: number, sendPreface = true): Promise<RawHttp2Client> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new RawHttp2Client(socket);
    if (sendPreface) client.write(preface);
    return client;
  }

  write(bytes: Uint8Array): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(bytes);
  }

  /** Resolves when a frame matching `match` has arrived (or the connection closed: then undefined). */
  async waitFor(match: (received: ReceivedFrame) => boolean): Promise<ReceivedFrame | undefined> {
    for (;;) {
      const found = this.frames.find(match);
      if (found !== undefined) return found;
      if (this.socket.destroyed || this.socket.readableEnded) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) break;
      const received: ReceivedFrame = {
        type: this.buffered[3] as number,
        flags: this.buffered[4] as number,
        streamId: this.buffered.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.buffered.subarray(9, 9 + length)),
      };
      this.buffered = this.buffered.subarray(9 + length);
      if (received.type === frameTypes.goaway) {
        this.goaway = {
          lastStreamId: received.payload.readUInt32BE(0) & 0x7fffffff,
          code: received.payload.readUInt32BE(4),
          debug: received.payload.subarray(8).toString(),
        };
      }
      this.frames.push(received);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }
}
