// Which way the listener reads a client's HTTP/2 connection (runtime/node/
// h2-handshake.ts): natively when the first request's `:authority` is valid,
// through the frame guard and rewriter otherwise, with the acknowledgement of
// the SETTINGS the listener wrote first taken out either way, whenever it
// comes. On Bun every connection is guarded (its server reads through a
// stream anyway), which the counters show too.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { SettingsAckStripper } from "../../runtime/node/h2-connection.ts";
import { listenHttp, type Listener } from "../../runtime/node/http-listener.ts";
import { flags, frame, frameTypes, preface, RawHttp2Client, requestBlock } from "./raw-h2-client.ts";

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

let listener: Listener;
const authorities = new Map<string, string | undefined>();

before(async () => {
  listener = await listenHttp({
    host: "127.0.0.1",
    port: 0,
    handleHttp2: (request, response) => {
      authorities.set(String(request.headers[":path"]), request.headers[":authority"] as string | undefined);
      request.resume();
      request.on("end", () => response.end("ok"));
    },
  });
});

after(async () => {
  await listener.close();
});

/** The read paths taken by the connections `run` opens. */
async function pathsOf(run: () => Promise<void>): Promise<{ native: number; guarded: number }> {
  const before = { ...listener.readPaths };
  await run();
  return { native: listener.readPaths.native - before.native, guarded: listener.readPaths.guarded - before.guarded };
}

async function requestOn(session: http2.ClientHttp2Session, path: string, authority?: string): Promise<string> {
  const stream = session.request({ ":method": "POST", ":path": path, ...(authority === undefined ? {} : { ":authority": authority }) });
  stream.end("body");
  let body = "";
  stream.setEncoding("utf8");
  for await (const chunk of stream) body += chunk;
  return body;
}

/** Waits for a response (HEADERS then DATA with END_STREAM) on `streamId` of a raw connection. */
async function answered(client: RawHttp2Client, streamId: number): Promise<string> {
  const data = await client.waitFor((received) => received.type === frameTypes.data && received.streamId === streamId);
  return data?.payload.toString() ?? "";
}

describe("read paths", () => {
  test("node:http2's client with a valid authority is read natively, and served over many requests", async () => {
    const paths = await pathsOf(async () => {
      const session = http2.connect(`http://127.0.0.1:${listener.port}`);
      session.on("error", () => {});
      try {
        for (let index = 0; index < 20; index++) assert.equal(await requestOn(session, `/native/${index}`), "ok");
      } finally {
        session.close();
      }
    });
    assert.deepEqual(paths, isBun ? { native: 0, guarded: 1 } : { native: 1, guarded: 0 });
    assert.equal(authorities.get("/native/19"), `127.0.0.1:${listener.port}`);
  });

  test("a first request whose authority needs a rewrite (etcdctl 3.4's http://host:port) is guarded, and rewritten", async () => {
    const paths = await pathsOf(async () => {
      const session = http2.connect(`http://127.0.0.1:${listener.port}`);
      session.on("error", () => {});
      try {
        assert.equal(await requestOn(session, "/rewritten/1", `http://127.0.0.1:${listener.port}`), "ok");
        assert.equal(await requestOn(session, "/rewritten/2", `http://127.0.0.1:${listener.port}`), "ok");
      } finally {
        session.close();
      }
    });
    assert.deepEqual(paths, { native: 0, guarded: 1 });
    assert.equal(authorities.get("/rewritten/2"), `127.0.0.1:${listener.port}`);
  });

  test("headers before the acknowledgement (as grpc-go may send them): native once the ack comes, and served", async () => {
    const paths = await pathsOf(async () => {
      const client = await RawHttp2Client.connect(listener.port);
      await client.waitFor((received) => received.type === frameTypes.settings && (received.flags & flags.ack) === 0);
      client.write(frame(frameTypes.headers, flags.endHeaders | flags.endStream, 1, requestBlock("/early")));
      await new Promise((resolve) => setTimeout(resolve, 50));
      client.write(frame(frameTypes.settings, flags.ack, 0));
      assert.equal(await answered(client, 1), "ok");
      // The server's own SETTINGS, acknowledged now, and a second request on the same connection.
      const settings = client.frames.filter((received) => received.type === frameTypes.settings && (received.flags & flags.ack) === 0);
      if (!isBun) assert.equal(settings.length, 2, "our empty SETTINGS, then the server's");
      client.write(frame(frameTypes.settings, flags.ack, 0));
      client.write(frame(frameTypes.headers, flags.endHeaders | flags.endStream, 3, requestBlock("/early/2")));
      assert.equal(await answered(client, 3), "ok");
      assert.equal(client.goaway, undefined);
      client.close();
    });
    assert.deepEqual(paths, isBun ? { native: 0, guarded: 1 } : { native: 1, guarded: 0 });
  });

  test("a client that never acknowledges is still served, through the guard, which drops a late ack", async () => {
    const paths = await pathsOf(async () => {
      const client = await RawHttp2Client.connect(listener.port);
      client.write(frame(frameTypes.headers, flags.endHeaders | flags.endStream, 1, requestBlock("/no-ack")));
      assert.equal(await answered(client, 1), "ok");
      // Acknowledges both SETTINGS only now: one goes to the server, the other is dropped.
      client.write(Buffer.concat([frame(frameTypes.settings, flags.ack, 0), frame(frameTypes.settings, flags.ack, 0)]));
      client.write(frame(frameTypes.headers, flags.endHeaders | flags.endStream, 3, requestBlock("/no-ack/2")));
      assert.equal(await answered(client, 3), "ok");
      assert.equal(client.goaway, undefined);
      client.close();
    });
    assert.deepEqual(paths, { native: 0, guarded: 1 });
  });

  test("a PING before the first request takes the guarded path", async () => {
    const paths = await pathsOf(async () => {
      const client = await RawHttp2Client.connect(listener.port);
      await client.waitFor((received) => received.type === frameTypes.settings && (received.flags & flags.ack) === 0);
      client.write(frame(frameTypes.settings, flags.ack, 0));
      client.write(frame(frameTypes.ping, 0, 0, Buffer.alloc(8)));
      await client.waitFor((received) => received.type === frameTypes.ping && (received.flags & flags.ack) !== 0);
      client.write(frame(frameTypes.headers, flags.endHeaders | flags.endStream, 1, requestBlock("/pinged")));
      assert.equal(await answered(client, 1), "ok");
      client.close();
    });
    assert.deepEqual(paths, { native: 0, guarded: 1 });
  });
});

describe("the SETTINGS acknowledgement stripper", () => {
  const ack = frame(frameTypes.settings, flags.ack, 0);
  const request = frame(frameTypes.headers, flags.endHeaders, 1, requestBlock("/x"));
  const data = frame(frameTypes.data, flags.endStream, 1, Buffer.from("settings-like \x00\x00\x00\x04\x01 bytes in a payload"));
  const stream = Buffer.concat([preface, request, data, ack, ack, frame(frameTypes.ping, 0, 0, Buffer.alloc(8))]);
  const expected = Buffer.concat([preface, request, data, ack, frame(frameTypes.ping, 0, 0, Buffer.alloc(8))]);

  for (const size of [1, 2, 5, 9, 10, 64, stream.length]) {
    test(`cut into chunks of ${size} bytes: exactly the first ack is gone`, () => {
      const stripper = new SettingsAckStripper();
      const out: Buffer[] = [];
      for (let offset = 0; offset < stream.length; offset += size) out.push(stripper.transform(stream.subarray(offset, offset + size)));
      assert.deepEqual(Buffer.concat(out), expected);
    });
  }
});
