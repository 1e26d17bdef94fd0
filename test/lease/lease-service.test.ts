// The Lease service over gRPC and BrowserLease over HTTP/1.1: client-chosen
// ids, etcd's answers for unknown leases (TTL -1 from TimeToLive, TTL 0 on
// the keep-alive stream, which stays open), and a browser keep-alive that
// holds a lease past its TTL for as long as the call stays open.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { BrowserLease } from "../../src/gen/edgetcd/v1/edgetcd_pb.ts";
import { KV, Lease, type LeaseKeepAliveRequest, type LeaseKeepAliveResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";

const timing = ["--heartbeat-interval", "100", "--election-timeout", "1000"];
const bytes = (text: string) => new TextEncoder().encode(text);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("Lease service", () => {
  let server: RunningServer;
  before(async () => {
    server = await startEdgetcd({ extraArgs: timing });
  }, { timeout: 120_000 });
  after(async () => {
    await server?.stop();
  });

  test("client-chosen ids, duplicates refused, unknown leases answered as etcd does", { timeout: 30_000 }, async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
    const lease = createClient(Lease, transport);
    const granted = await lease.leaseGrant({ ID: 0x7777n, TTL: 1n });
    assert.equal(granted.ID, 0x7777n);
    assert.equal(granted.TTL, 2n, "raised to the minimum TTL");
    await assert.rejects(lease.leaseGrant({ ID: 0x7777n, TTL: 10n }), /etcdserver: lease already exists/);
    const unknown = await lease.leaseTimeToLive({ ID: 0x9999n });
    assert.equal(unknown.TTL, -1n);
    assert.equal(unknown.ID, 0x9999n);

    // One stream: a live lease, an unknown one (TTL 0, the stream goes on), the live one again.
    const requests: LeaseKeepAliveRequest[] = [0x7777n, 0x9999n, 0x7777n].map((ID) => ({ $typeName: "etcdserverpb.LeaseKeepAliveRequest", ID }));
    async function* send() {
      for (const request of requests) {
        yield request;
        await sleep(50);
      }
    }
    const responses: LeaseKeepAliveResponse[] = [];
    for await (const response of lease.leaseKeepAlive(send())) responses.push(response);
    assert.deepEqual(responses.map((r) => [r.ID, r.TTL]), [[0x7777n, 2n], [0x9999n, 0n], [0x7777n, 2n]]);
    assert.ok(responses.every((r) => r.header !== undefined && r.header.revision > 0n));
    const leases = await lease.leaseLeases({});
    assert.ok(leases.leases.some((status) => status.ID === 0x7777n));
    await lease.leaseRevoke({ ID: 0x7777n });
    await assert.rejects(lease.leaseRevoke({ ID: 0x7777n }), /etcdserver: requested lease not found/);
  });

  for (const [name, makeTransport] of [
    ["Connect JSON over HTTP/1.1", (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false })],
    ["gRPC-Web over HTTP/1.1", (baseUrl: string) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
  ] as const) {
    test(`BrowserLease (${name}) keeps a lease alive while the call is open; the key goes after it closes`, { timeout: 30_000 }, async () => {
      const baseUrl = `http://${server.endpoint}`;
      const grpc = createGrpcTransport({ baseUrl });
      const kv = createClient(KV, grpc);
      const lease = createClient(Lease, grpc);
      const { ID } = await lease.leaseGrant({ TTL: 2n });
      const key = bytes(`browser/${name}`);
      await kv.put({ key, value: bytes("v"), lease: ID });
      const abort = new AbortController();
      const seen: bigint[] = [];
      const keeping = (async () => {
        try {
          for await (const response of createClient(BrowserLease, makeTransport(baseUrl)).keepAlive({ ID }, { signal: abort.signal })) {
            seen.push(response.TTL);
          }
        } catch (error) {
          if (!abort.signal.aborted) throw error;
        }
      })();
      await sleep(3500);
      assert.equal((await kv.range({ key })).count, 1n, "alive past its TTL");
      assert.ok(seen.length >= 4 && seen.every((ttl) => ttl === 2n), `renewals: ${seen.join(",")}`);
      abort.abort();
      await keeping;
      const deadline = Date.now() + 5000;
      while ((await kv.range({ key })).count !== 0n) {
        assert.ok(Date.now() < deadline, "the key outlived its lease");
        await sleep(100);
      }
      // A gone lease: one answer with TTL 0, then the stream ends.
      const ended: bigint[] = [];
      for await (const response of createClient(BrowserLease, makeTransport(baseUrl)).keepAlive({ ID })) ended.push(response.TTL);
      assert.deepEqual(ended, [0n]);
    });
  }
});
