// edgetcd.v1.BrowserWatch over HTTP/1.1 (Connect JSON and binary, gRPC-Web),
// where bidirectional streams cannot run: every event in order, a catch-up
// from a past revision, progress notifications, and the stream ending when
// the watcher is canceled for compaction.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { BrowserWatch } from "../../src/gen/edgetcd/v1/edgetcd_pb.ts";
import { KV, type WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

const transports: Array<[string, (baseUrl: string) => Transport]> = [
  ["Connect JSON over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false })],
  ["Connect binary over HTTP/1.1", (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true })],
  ["gRPC-Web over HTTP/1.1", (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
];

describe("BrowserWatch over HTTP/1.1", () => {
  let server: RunningServer;
  before(async () => {
    // A short progress interval so the periodic notification shows up in the test.
    server = await startEdgetcd({ extraArgs: ["--experimental-watch-progress-notify-interval", "200ms"] });
  }, { timeout: 120_000 });
  after(async () => {
    await server?.stop();
  });

  for (const [name, makeTransport] of transports) {
    test(`${name}: catch-up then live events, every one in order, with progress`, async () => {
      const transport = makeTransport(`http://${server.endpoint}`);
      const kv = createClient(KV, transport);
      const prefix = `bw/${name}/`;
      const first = Number((await kv.put({ key: bytes(`${prefix}0`), value: bytes("0") })).header!.revision);
      await kv.put({ key: bytes(`${prefix}1`), value: bytes("1") });
      const abort = new AbortController();
      const responses: WatchResponse[] = [];
      const stream = createClient(BrowserWatch, transport).watch(
        { key: bytes(prefix), rangeEnd: bytes(`${prefix.slice(0, -1)}0`), startRevision: BigInt(first), prevKv: true, progressNotify: true },
        { signal: abort.signal },
      );
      const total = 60;
      let last = 0;
      const reading = (async () => {
        try {
          for await (const response of stream) {
            responses.push(response);
            const events = responses.flatMap((r) => r.events);
            if (events.length >= total + 2 && responses.some((r, i) => i > 0 && r.events.length === 0 && Number(r.header!.revision) >= last)) break;
          }
        } catch (error) {
          if (!abort.signal.aborted) throw error;
        }
      })();
      for (let i = 0; i < total; i++) {
        const key = `${prefix}${i % 5}`;
        last = Number((i % 7 === 6 ? await kv.deleteRange({ key: bytes(key) }) : await kv.put({ key: bytes(key), value: bytes(`v${i}`) })).header!.revision);
      }
      const timeout = setTimeout(() => abort.abort(), 10_000);
      await reading;
      clearTimeout(timeout);
      abort.abort();
      assert.equal(responses[0]!.created, true);
      const events = responses.flatMap((r) => r.events);
      assert.deepEqual(
        events.map((e) => Number(e.kv!.modRevision)),
        Array.from({ length: total + 2 }, (_, i) => first + i),
        "every revision once, in order",
      );
      const deletes = events.filter((e) => e.type === 1);
      assert.ok(deletes.length > 0 && deletes.every((e) => e.prevKv !== undefined && text(e.prevKv.key) === text(e.kv!.key)));
      const progress = responses.slice(1).filter((r) => r.events.length === 0 && !r.canceled);
      assert.ok(progress.length > 0, "a periodic progress notification");
    });
  }

  test("the stream ends after the compaction cancel", async () => {
    const transport = transports[0]![1](`http://${server.endpoint}`);
    const kv = createClient(KV, transport);
    const revision = Number((await kv.put({ key: bytes("bw-compact"), value: bytes("x") })).header!.revision);
    await kv.put({ key: bytes("bw-compact"), value: bytes("y") });
    await kv.compact({ revision: BigInt(revision + 1) });
    const responses: WatchResponse[] = [];
    for await (const response of createClient(BrowserWatch, transport).watch({ key: bytes("bw-compact"), startRevision: BigInt(revision) })) {
      responses.push(response);
    }
    assert.equal(responses.length, 2);
    assert.equal(responses[0]!.created, true);
    assert.equal(responses[1]!.canceled, true);
    assert.equal(Number(responses[1]!.compactRevision), revision + 1);
  });
});
