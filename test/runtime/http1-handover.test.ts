// HTTP/1.1 connections handed over by the listener (runtime/node/http-listener.ts
// reads the first bytes of each connection to choose HTTP/2 or HTTP/1.1, then
// gives the connection to a node:http server that never listens itself), with
// a raw client, so the bytes on the wire are the test's own. Two faults of
// Deno 2.9's node:http that our listener works around (http1-handover.ts,
// issue 16): a kept-alive connection was closed after its first response, and
// a first request whose body was already in the kernel's buffer was parsed
// body first (HTTP 400).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { listenHttp, writeHead, type Listener } from "../../runtime/node/http-listener.ts";

/**
 * A first request of more than one read (64 KiB), written in two parts back to
 * back: Deno's parser read the second part before the first, and every one of
 * the 30 connections was answered HTTP 400 before the fix (a request written
 * in one part: none in 50).
 */
const bodyBytes = 100_000;
const firstPartBytes = 60_000;
const connectionsMax = 30;

let listener: Listener;

before(async () => {
  listener = await listenHttp({
    host: "127.0.0.1",
    port: 0,
    handleHttp2: (_request, response) => response.end("h2"),
    handleHttp1: (request, response) => {
      let received = 0;
      request.on("data", (chunk: Buffer) => (received += chunk.length));
      request.on("end", () => {
        const body = `${request.method} ${request.url} ${received}`;
        writeHead(response, 200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
        response.end(body);
      });
    },
  });
});

after(async () => {
  await listener.close();
});

/** The head and body of a POST with a Content-Length, as one buffer. */
function post(path: string, bodyLength: number): Buffer {
  const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${bodyLength}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), Buffer.alloc(bodyLength, 0x61)]);
}

/**
 * A raw HTTP/1.1 connection that sends one request at a time and reads each
 * response whole (Content-Length only, as the server answers here), or learns
 * that the connection ended.
 */
class RawHttp1Connection {
  private received = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", end);
  }

  static async open(port: number): Promise<RawHttp1Connection> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new RawHttp1Connection(socket);
  }

  /** Writes `request`'s parts back to back and returns the response's status and body, or "connection ended". */
  async exchange(...request: Buffer[]): Promise<{ status: number; body: string } | "connection ended"> {
    for (const part of request) this.socket.write(part);
    for (;;) {
      const response = this.takeResponse();
      if (response !== undefined) return response;
      if (this.ended) return "connection ended";
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private takeResponse(): { status: number; body: string } | undefined {
    const headEnd = this.received.indexOf("\r\n\r\n");
    if (headEnd < 0) return undefined;
    const head = this.received.subarray(0, headEnd).toString("latin1");
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
    const contentLength = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    const bodyStart = headEnd + 4;
    if (this.received.length < bodyStart + contentLength) return undefined;
    const body = this.received.subarray(bodyStart, bodyStart + contentLength).toString("latin1");
    this.received = this.received.subarray(bodyStart + contentLength);
    return { status, body };
  }
}

describe("HTTP/1.1 connections handed over by the listener", () => {
  test("a kept-alive connection serves request after request", async () => {
    const connection = await RawHttp1Connection.open(listener.port);
    try {
      for (let index = 0; index < 5; index++) {
        const response = await connection.exchange(post(`/kept/${index}`, index * 10));
        assert.deepEqual(response, { status: 200, body: `POST /kept/${index} ${index * 10}` }, `request ${index} on the connection`);
      }
    } finally {
      connection.close();
    }
  });

  test("a first request that arrives in two parts is parsed in order on every connection", async () => {
    const outcomes: string[] = [];
    for (let index = 0; index < connectionsMax; index++) {
      const connection = await RawHttp1Connection.open(listener.port);
      try {
        const request = post(`/first/${index}`, bodyBytes);
        const first = await connection.exchange(request.subarray(0, firstPartBytes), request.subarray(firstPartBytes));
        const second = first === "connection ended" ? first : await connection.exchange(post(`/second/${index}`, bodyBytes));
        outcomes.push(JSON.stringify([first, second]));
      } finally {
        connection.close();
      }
    }
    const expected = (index: number) =>
      JSON.stringify([
        { status: 200, body: `POST /first/${index} ${bodyBytes}` },
        { status: 200, body: `POST /second/${index} ${bodyBytes}` },
      ]);
    const wrong = outcomes.flatMap((outcome, index) => (outcome === expected(index) ? [] : [`connection ${index}: ${outcome}`]));
    assert.deepEqual(wrong, [], `${wrong.length} of ${connectionsMax} connections answered otherwise`);
  });
});
