// The listener's transport limits (runtime/node/transport-limits.ts, issue 24)
// against a hand-driven HTTP/2 client on the runtime's own server (nghttp2 on
// Node, Bun's on Bun): each limit is broken for real, the connection is closed
// with the HTTP/2 error the limit names, and a well-behaved client on another
// connection is still served.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { listenHttp, type Listener } from "../../runtime/node/http-listener.ts";
import { http2ErrorCode, InboundFrameGuard, frameLimitsDefault } from "../../runtime/node/h2-frame-guard.ts";
import { clientTransportLimits, concurrentStreamsMaxDefault, transportLimitsDefault, type TransportLimits } from "../../runtime/node/transport-limits.ts";
import { flags, frame, frameTypes, RawHttp2Client, requestBlock } from "./raw-h2-client.ts";

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
/** What a CONTINUATION flood may add to this process's memory. */
const floodMemoryBytesMax = 64 * 1024 * 1024;
const megabyte = 1024 * 1024;

const limits: TransportLimits = {
  ...transportLimitsDefault,
  concurrentStreamsMax: 8,
  outboundBufferedBytesMax: 4 * megabyte,
  outboundBufferedOverMsMax: 300,
  idleMsMax: 600,
  keepaliveIntervalMs: 300,
  keepaliveTimeoutMs: 300,
  prefaceTimeoutMs: 300,
  http1HeadersTimeoutMs: 300,
  http1RequestTimeoutMs: 600,
};

let listener: Listener;

before(async () => {
  listener = await listenHttp({
    host: "127.0.0.1",
    port: 0,
    limits,
    handleHttp2: (request, response) => {
      const path = request.url ?? "/";
      if (path === "/hold") return; // answered never: keeps its stream open
      if (path === "/big") {
        response.end(Buffer.alloc(megabyte, 1));
        return;
      }
      request.resume();
      request.on("end", () => response.end("ok"));
    },
    handleHttp1: (request, response) => {
      request.resume();
      request.on("end", () => response.end("ok"));
    },
  });
});

after(async () => {
  await listener.close();
});

/** A well-behaved client on its own connection: one request, answered "ok". */
async function wellBehavedRequest(): Promise<string> {
  const session = http2.connect(`http://127.0.0.1:${listener.port}`);
  try {
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": "/ok" });
    stream.end();
    let body = "";
    stream.setEncoding("utf8");
    for await (const chunk of stream) body += chunk;
    return body;
  } finally {
    session.destroy();
  }
}

async function openRaw(): Promise<RawHttp2Client> {
  const client = await RawHttp2Client.connect(listener.port);
  await client.waitFor((received) => received.type === frameTypes.settings && (received.flags & flags.ack) === 0);
  client.write(frame(frameTypes.settings, flags.ack, 0));
  return client;
}

async function closedWithin(client: RawHttp2Client, ms: number): Promise<boolean> {
  const timeout = new Promise<false>((resolve) => setTimeout(() => resolve(false), ms).unref());
  return Promise.race([client.closed.then(() => true as const), timeout]);
}

describe("header blocks", () => {
  test("a flood of empty CONTINUATION frames: GOAWAY ENHANCE_YOUR_CALM, memory bounded, others served", async () => {
    // The attack of issue 24: 35 MB of empty CONTINUATION frames (3.9 million), written at once.
    const empty = frame(frameTypes.continuation, 0, 1);
    const flood = Buffer.alloc(Math.floor((35 * megabyte) / empty.length) * empty.length);
    for (let offset = 0; offset < flood.length; offset += empty.length) empty.copy(flood, offset);
    const client = await openRaw();
    const rssBefore = process.memoryUsage().rss;
    client.write(frame(frameTypes.headers, 0, 1, requestBlock("/ok")));
    client.write(flood);
    assert.ok(await closedWithin(client, 3000), "the connection is closed");
    assert.equal(client.goaway?.code, http2ErrorCode.enhanceYourCalm);
    assert.equal(client.goaway?.debug, "too many CONTINUATION frames");
    const grownBytes = process.memoryUsage().rss - rssBefore;
    assert.ok(grownBytes < floodMemoryBytesMax, `memory grew ${grownBytes} bytes`);
    assert.equal(await wellBehavedRequest(), "ok");
  });

  test("a header block of the allowed 8 CONTINUATION frames (135 KB of headers) is served", async () => {
    const client = await openRaw();
    const extra: Record<string, string> = {};
    for (let index = 0; index < 9; index++) extra[`x-big-${index}`] = "a".repeat(15_000); // nghttp2 takes fields up to 64 KiB
    const block = requestBlock("/ok", extra);
    const frameCount = Math.ceil(block.length / 16_000);
    assert.equal(frameCount, 9);
    const cut = (index: number) => block.subarray(index * 16_000, (index + 1) * 16_000);
    client.write(frame(frameTypes.headers, flags.endStream, 1, cut(0)));
    for (let index = 1; index < frameCount; index++) client.write(frame(frameTypes.continuation, index === frameCount - 1 ? flags.endHeaders : 0, 1, cut(index)));
    const response = await client.waitFor((received) => received.type === frameTypes.headers && received.streamId === 1);
    assert.ok(response !== undefined, "answered");
    assert.equal(client.goaway, undefined);
    client.close();
  });

  test("a frame over SETTINGS_MAX_FRAME_SIZE: GOAWAY FRAME_SIZE_ERROR", async () => {
    const client = await openRaw();
    client.write(frame(frameTypes.headers, 0, 1, Buffer.alloc(20_000)));
    assert.ok(await closedWithin(client, 3000));
    assert.equal(client.goaway?.code, http2ErrorCode.frameSizeError);
    assert.equal(await wellBehavedRequest(), "ok");
  });

  test("the guard counts frame headers, so empty frames use up the block's bytes", () => {
    const guard = new InboundFrameGuard({ ...frameLimitsDefault, headerBlockContinuationFramesMax: 1000, headerBlockBytesMax: 9 * 20 });
    const stream = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(frameTypes.headers, 0, 1)];
    for (let index = 0; index < 19; index++) stream.push(frame(frameTypes.continuation, 0, 1));
    assert.equal(guard.scan(Buffer.concat(stream)), undefined);
    assert.deepEqual(guard.scan(frame(frameTypes.continuation, 0, 1)), { code: http2ErrorCode.protocolError, debug: "header block too large" });
  });

  test("frames interleaved with a header block: GOAWAY PROTOCOL_ERROR", async () => {
    const client = await openRaw();
    client.write(Buffer.concat([frame(frameTypes.headers, 0, 1, requestBlock("/ok")), frame(frameTypes.ping, 0, 0, Buffer.alloc(8))]));
    assert.ok(await closedWithin(client, 3000));
    assert.equal(client.goaway?.code, http2ErrorCode.protocolError);
  });
});

describe("streams and buffered bytes", () => {
  test("a client opening streams beyond the advertised limit: refused (Bun) or disconnected (Node); others served", async () => {
    const client = await openRaw();
    const streamCount = limits.concurrentStreamsMax + 3;
    for (let streamId = 1; streamId <= 2 * streamCount - 1; streamId += 2) {
      client.write(frame(frameTypes.headers, flags.endHeaders, streamId, requestBlock("/hold")));
    }
    if (isBun) {
      // Bun's server does not hold clients to SETTINGS_MAX_CONCURRENT_STREAMS; the supervisor refuses each stream over it.
      const lastStreamId = 2 * streamCount - 1;
      await client.waitFor((received) => received.type === frameTypes.rstStream && received.streamId === lastStreamId);
      const refused = client.frames.filter((received) => received.type === frameTypes.rstStream);
      assert.deepEqual(
        refused.map((received) => [received.streamId, received.payload.readUInt32BE(0)]),
        [17, 19, 21].map((streamId) => [streamId, 0x7]), // REFUSED_STREAM
      );
    } else {
      // nghttp2 takes a stream over the limit it advertised as a connection error: Node resets and closes the connection.
      assert.ok(await closedWithin(client, 3000), "the connection is closed");
    }
    assert.equal(await wellBehavedRequest(), "ok");
    client.close();
  });

  test("a client that never opens its window: new streams refused, then GOAWAY ENHANCE_YOUR_CALM", async () => {
    const client = await openRaw();
    for (let streamId = 1; streamId <= 15; streamId += 2) {
      client.write(frame(frameTypes.headers, flags.endHeaders | flags.endStream, streamId, requestBlock("/big")));
    }
    assert.ok(await closedWithin(client, 5000), "the connection is closed");
    assert.equal(client.goaway?.code, http2ErrorCode.enhanceYourCalm);
    assert.match(client.goaway?.debug ?? "", /client not reading/);
    assert.equal(await wellBehavedRequest(), "ok");
  });

  test("--max-concurrent-streams is honoured below the cap and held to it above (etcd's default among them)", () => {
    const flagsOf = (maxConcurrentStreams: number) => ({ maxConcurrentStreams, grpcKeepaliveMinTimeMs: 5000, grpcKeepaliveIntervalMs: 0, grpcKeepaliveTimeoutMs: 0 });
    assert.equal(clientTransportLimits(flagsOf(4294967295)).concurrentStreamsMax, concurrentStreamsMaxDefault);
    assert.equal(clientTransportLimits(flagsOf(100)).concurrentStreamsMax, 100);
  });
});

describe("keepalive", () => {
  test("pings more often than --grpc-keepalive-min-time: GOAWAY ENHANCE_YOUR_CALM too_many_pings", async () => {
    const client = await openRaw();
    for (let index = 0; index < 4; index++) client.write(frame(frameTypes.ping, 0, 0, Buffer.alloc(8)));
    assert.ok(await closedWithin(client, 3000));
    assert.deepEqual([client.goaway?.code, client.goaway?.debug], [http2ErrorCode.enhanceYourCalm, "too_many_pings"]);
  });

  test("pings answered by data in between are no strikes", async () => {
    const client = await openRaw();
    for (let streamId = 1; streamId <= 7; streamId += 2) {
      client.write(frame(frameTypes.headers, flags.endHeaders | flags.endStream, streamId, requestBlock("/ok")));
      await client.waitFor((received) => received.type === frameTypes.data && received.streamId === streamId);
      client.write(frame(frameTypes.ping, 0, 0, Buffer.alloc(8)));
    }
    assert.equal(await closedWithin(client, 200), false);
    assert.equal(client.goaway, undefined);
    client.close();
  });

  test("a client that does not answer the server's ping is disconnected; one that does stays", async () => {
    const silent = await openRaw();
    const session = http2.connect(`http://127.0.0.1:${listener.port}`);
    session.on("error", () => {});
    const held = session.request({ ":method": "POST", ":path": "/hold" }); // an open stream: not idle
    held.on("error", () => {});
    silent.write(frame(frameTypes.headers, flags.endHeaders, 1, requestBlock("/hold")));
    assert.ok(await closedWithin(silent, 3000), "the silent client is disconnected");
    assert.ok(silent.frames.some((received) => received.type === frameTypes.ping), "after a ping");
    assert.equal(session.closed || session.destroyed, false, "the answering client is not");
    session.destroy();
  });

  test("a SETTINGS flood from a client that reads no acks: closed by the server (nghttp2's and Bun's own flood checks), memory bounded", async () => {
    const settings = frame(frameTypes.settings, 0, 0);
    const flood = Buffer.alloc(Math.floor((20 * megabyte) / settings.length) * settings.length);
    for (let offset = 0; offset < flood.length; offset += settings.length) settings.copy(flood, offset);
    const client = await openRaw();
    client.socket.pause();
    const rssBefore = process.memoryUsage().rss;
    client.write(flood);
    assert.ok(await closedWithin(client, 5000), "the connection is closed");
    const grownBytes = process.memoryUsage().rss - rssBefore;
    assert.ok(grownBytes < floodMemoryBytesMax, `memory grew ${grownBytes} bytes`);
    assert.equal(await wellBehavedRequest(), "ok");
  });
});

describe("idle connections and timeouts", () => {
  test("a connection with no stream open is closed with GOAWAY NO_ERROR; one with a stream open is not", async () => {
    const idle = http2.connect(`http://127.0.0.1:${listener.port}`);
    idle.on("error", () => {});
    const goaway = new Promise<number>((resolve) => idle.once("goaway", (code) => resolve(code)));
    const busy = http2.connect(`http://127.0.0.1:${listener.port}`);
    busy.on("error", () => {});
    const held = busy.request({ ":method": "POST", ":path": "/hold" });
    held.on("error", () => {});
    assert.equal(await goaway, http2ErrorCode.noError);
    assert.equal(busy.closed || busy.destroyed, false);
    idle.destroy();
    busy.destroy();
  });

  test("a connection that never says which protocol it speaks is closed", async () => {
    const client = await RawHttp2Client.connect(listener.port, false);
    client.write(Buffer.from("PRI * HTTP/")); // could still be either
    assert.ok(await closedWithin(client, 3000));
  });

  test("HTTP/1.1: headers that never end get 408 and the connection is closed", async () => {
    const socket = net.connect(listener.port, "127.0.0.1");
    socket.write("GET /ok HTTP/1.1\r\nHost: x\r\n");
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk));
    await new Promise((resolve) => socket.once("close", resolve));
    assert.match(answer, /^HTTP\/1\.1 408/);
  });

  test("HTTP/1.1: a body that never arrives whole gets 408 and the connection is closed; requests in time are served", async () => {
    const socket = net.connect(listener.port, "127.0.0.1");
    socket.write("POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
    socket.write("POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab".slice(0, 0));
    socket.write("12345");
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk));
    await new Promise((resolve) => socket.once("close", resolve));
    assert.match(answer, /^HTTP\/1\.1 408/);
    const served = await fetch(`http://127.0.0.1:${listener.port}/ok`);
    assert.equal(await served.text(), "ok");
  });
});

