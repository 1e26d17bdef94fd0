// kill -9 in the middle of a stream of acknowledged writes, then restart:
// every acknowledged write is there and the revision never goes back.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function kvClient(server: RunningServer) {
  return createClient(KV, createGrpcTransport({ baseUrl: `http://${server.endpoint}` }));
}

describe("durability across kill -9", () => {
  const servers: RunningServer[] = [];
  after(async () => {
    await Promise.all(servers.map((server) => server.kill()));
  });

  test("acknowledged writes survive SIGKILL and restart, twice", async () => {
    let server = await startEdgetcd();
    servers.push(server);
    const acknowledged = new Map<string, { value: string; revision: bigint }>();
    let highestRevision = 0n;
    for (let crash = 0; crash < 2; crash++) {
      const client = kvClient(server);
      let stop = false;
      const writers = Array.from({ length: 8 }, async (_, writer) => {
        for (let sequence = 0; !stop; sequence++) {
          const key = `durable/${crash}/${writer}/${sequence % 50}`;
          const value = `${crash}-${writer}-${sequence}`;
          try {
            const response = await client.put({ key: encoder.encode(key), value: encoder.encode(value) });
            const revision = response.header?.revision ?? 0n;
            acknowledged.set(key, { value, revision });
            if (revision > highestRevision) highestRevision = revision;
          } catch {
            return; // the server died under us: this write was never acknowledged
          }
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await server.kill();
      stop = true;
      await Promise.all(writers);
      assert.ok(acknowledged.size > 0, "some writes were acknowledged before the kill");

      server = await startEdgetcd({ dataDir: server.dataDir });
      servers.push(server);
      const reader = kvClient(server);
      const all = await reader.range({ key: encoder.encode("durable/"), rangeEnd: encoder.encode("durable0") });
      const found = new Map(all.kvs.map((kv) => [decoder.decode(kv.key), kv]));
      for (const [key, { value, revision }] of acknowledged) {
        const kv = found.get(key);
        assert.ok(kv !== undefined, `acknowledged key ${key} is present after restart`);
        // A later unacknowledged write may have landed too; never an older one.
        assert.ok(kv.modRevision >= revision, `${key}: mod revision ${kv.modRevision} >= acknowledged ${revision}`);
        if (kv.modRevision === revision) assert.equal(decoder.decode(kv.value), value);
      }
      assert.ok((all.header?.revision ?? 0n) >= highestRevision, "the revision never goes back");
    }
  });
});
