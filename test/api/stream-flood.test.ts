// One client floods a LeaseKeepAlive stream as fast as it can write: every
// request is answered (the stream is slowed, never dropped from), and another
// client's writes keep succeeding meanwhile.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV, Lease, LeaseKeepAliveRequestSchema, type LeaseKeepAliveRequest } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";

/** Requests the flooding stream sends: well past keepAlivesPendingPerStreamMax. */
const floodRequests = 30_000;
/** The well-behaved client's pace. */
const putIntervalMs = 50;
/** A put of the well-behaved client may take this long at most (loose: CI machines are shared). */
const putLatencyMsMax = 2_000;

const bytes = (text: string) => new TextEncoder().encode(text);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("LeaseKeepAlive flood", () => {
  let server: RunningServer;
  before(async () => {
    server = await startEdgetcd();
  }, { timeout: 120_000 });
  after(async () => {
    await server?.stop();
  });

  test("every request of a flooding stream is answered, and another client keeps being served", { timeout: 120_000 }, async () => {
    // Separate connections, as two clients would have.
    const lease = createClient(Lease, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
    const kv = createClient(KV, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
    const { ID } = await lease.leaseGrant({ TTL: 60n });

    let flooding = true;
    const putLatenciesMs: number[] = [];
    const wellBehaved = (async () => {
      while (flooding) {
        const started = performance.now();
        const response = await kv.put({ key: bytes("well-behaved"), value: bytes("v") });
        putLatenciesMs.push(performance.now() - started);
        assert.ok((response.header?.revision ?? 0n) > 0n);
        await sleep(putIntervalMs);
      }
    })();

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
      await wellBehaved;
    }

    assert.equal(answered, floodRequests, "every keep-alive request is answered");
    assert.ok(putLatenciesMs.length > 0, "the other client wrote during the flood");
    const sortedMs = putLatenciesMs.toSorted((a, b) => a - b);
    const medianMs = sortedMs[sortedMs.length >> 1] ?? 0;
    const slowestMs = sortedMs[sortedMs.length - 1] ?? 0;
    assert.ok(slowestMs < putLatencyMsMax, `the other client's puts: median ${medianMs.toFixed(0)} ms, slowest ${slowestMs.toFixed(0)} ms`);
  });
});
