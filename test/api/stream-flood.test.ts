// One client floods a LeaseKeepAlive or a Watch stream as fast as it can
// write: every request is answered (the stream is slowed, never dropped
// from), and another client's writes keep succeeding meanwhile.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  KV,
  Lease,
  LeaseKeepAliveRequestSchema,
  Watch,
  WatchRequestSchema,
  type LeaseKeepAliveRequest,
  type WatchRequest,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";

/** Requests the flooding stream sends: well past keepAlivesPendingPerStreamMax. */
const floodRequests = 30_000;
/** The well-behaved client's pace. */
const putIntervalMs = 50;
/** A put of the well-behaved client may take this long at most (loose: CI machines are shared). */
const putLatencyMsMax = 2_000;

const bytes = (text: string) => new TextEncoder().encode(text);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Puts one key every putIntervalMs while `flooding()`; returns each put's latency. */
async function putWhile(kv: Client<typeof KV>, flooding: () => boolean): Promise<number[]> {
  const latenciesMs: number[] = [];
  while (flooding()) {
    const started = performance.now();
    const response = await kv.put({ key: bytes("well-behaved"), value: bytes("v") });
    latenciesMs.push(performance.now() - started);
    assert.ok((response.header?.revision ?? 0n) > 0n);
    await sleep(putIntervalMs);
  }
  return latenciesMs;
}

function assertServed(putLatenciesMs: number[]): void {
  assert.ok(putLatenciesMs.length > 0, "the other client wrote during the flood");
  const sortedMs = putLatenciesMs.toSorted((a, b) => a - b);
  const medianMs = sortedMs[sortedMs.length >> 1] ?? 0;
  const slowestMs = sortedMs[sortedMs.length - 1] ?? 0;
  assert.ok(slowestMs < putLatencyMsMax, `the other client's puts: median ${medianMs.toFixed(0)} ms, slowest ${slowestMs.toFixed(0)} ms`);
}

describe("stream floods", () => {
  let server: RunningServer;
  before(async () => {
    server = await startEdgetcd();
  }, { timeout: 120_000 });
  after(async () => {
    await server?.stop();
  });

  test("every request of a flooding LeaseKeepAlive stream is answered, and another client keeps being served", { timeout: 120_000 }, async () => {
    // Separate connections, as two clients would have.
    const lease = createClient(Lease, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
    const kv = createClient(KV, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
    const { ID } = await lease.leaseGrant({ TTL: 60n });

    let flooding = true;
    const wellBehaved = putWhile(kv, () => flooding);

    async function* flood(): AsyncGenerator<LeaseKeepAliveRequest> {
      const request = create(LeaseKeepAliveRequestSchema, { ID });
      for (let sent = 0; sent < floodRequests; sent++) yield request;
    }
    let answered = 0;
    try {
      for await (const response of lease.leaseKeepAlive(flood())) {
        assert.equal(response.ID, ID);
        assert.ok(response.TTL > 0n);
        answered++;
      }
    } finally {
      flooding = false;
    }
    assert.equal(answered, floodRequests, "every keep-alive request is answered");
    assertServed(await wellBehaved);
  });

  test("every create and cancel of a flooding Watch stream is answered, and another client keeps being served", { timeout: 120_000 }, async () => {
    const watch = createClient(Watch, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
    const kv = createClient(KV, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
    let flooding = true;
    const wellBehaved = putWhile(kv, () => flooding);

    // etcd keeps a watch stream open after the client half-closes: the test ends it once all is answered.
    const done = new AbortController();
    async function* flood(): AsyncGenerator<WatchRequest> {
      const key = bytes("watched");
      for (let sent = 0; sent < floodRequests; sent += 2) {
        yield create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key, watchId: 1n } } });
        yield create(WatchRequestSchema, { requestUnion: { case: "cancelRequest", value: { watchId: 1n } } });
      }
      await new Promise((resolve) => done.signal.addEventListener("abort", resolve));
    }
    let created = 0;
    let canceled = 0;
    try {
      for await (const response of watch.watch(flood(), { signal: done.signal })) {
        if (response.created) created++;
        else if (response.canceled) canceled++;
        if (created + canceled === floodRequests) done.abort();
      }
    } catch (error) {
      if (!done.signal.aborted) throw error;
    } finally {
      flooding = false;
    }
    assert.deepEqual({ created, canceled }, { created: floodRequests / 2, canceled: floodRequests / 2 }, "every create and cancel is answered");
    assertServed(await wellBehaved);
  });
});
