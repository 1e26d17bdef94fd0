// Raw WatchResponses from the real etcd 3.4 and from edgetcd for the same
// requests: created, canceled, duplicate id, empty range, compacted start,
// exactly-at-compact start, prev_kv, progress. Everything must be equal
// except the ids and term in the header.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { toJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV, Watch, WatchResponseSchema, type WatchRequest, type WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Step = { request?: Omit<WatchRequest, "$typeName">; put?: string; responses: number };
const create = (value: Record<string, unknown>): Step["request"] => ({ requestUnion: { case: "createRequest", value: value as never } });

const steps: Step[] = [
  { request: create({ key: bytes("a") }), responses: 1 },
  { request: create({ key: bytes("a"), watchId: 5n, prevKv: true }), responses: 1 },
  { request: create({ key: bytes("b"), watchId: 5n }), responses: 1 },
  { request: create({ key: bytes("b"), rangeEnd: bytes("a") }), responses: 1 },
  { request: create({ key: bytes("a"), startRevision: 2n }), responses: 2 },
  { request: create({ key: bytes("a"), rangeEnd: bytes("c"), startRevision: 3n, prevKv: true }), responses: 2 },
  { request: create({ key: bytes(""), rangeEnd: new Uint8Array([0]), startRevision: 4n, filters: [1] }), responses: 2 },
  { request: { requestUnion: { case: "progressRequest", value: {} as never } }, responses: 1 },
  { request: { requestUnion: { case: "cancelRequest", value: { watchId: 5n } as never } }, responses: 1 },
  { request: { requestUnion: { case: "cancelRequest", value: { watchId: 99n } as never } }, responses: 0 },
  { put: "a", responses: 3 },
  { put: "b", responses: 2 },
  { request: create({ key: bytes("a"), startRevision: 100n }), responses: 1 },
];

async function run(server: RunningServer): Promise<unknown[][]> {
  const transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
  const kv = createClient(KV, transport);
  for (const key of ["a", "a", "b"]) await kv.put({ key: bytes(key), value: bytes(`${key}-value`) });
  await kv.compact({ revision: 3n });
  const pending: WatchRequest[] = [];
  let wake: (() => void) | undefined;
  let open = true;
  async function* requests(): AsyncGenerator<WatchRequest> {
    while (open) {
      const next = pending.shift();
      if (next !== undefined) yield next;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  const received: WatchResponse[] = [];
  const abort = new AbortController();
  const reading = (async () => {
    try {
      for await (const response of createClient(Watch, transport).watch(requests(), { signal: abort.signal })) received.push(response);
    } catch {
      // aborted at the end
    }
  })();
  const perStep: unknown[][] = [];
  for (const step of steps) {
    const before = received.length;
    if (step.request !== undefined) {
      pending.push(step.request as WatchRequest);
      wake?.();
    }
    if (step.put !== undefined) await kv.put({ key: bytes(step.put), value: bytes("new") });
    const deadline = Date.now() + 5000;
    while (received.length < before + step.responses && Date.now() < deadline) await sleep(10);
    await sleep(step.responses === 0 ? 300 : 50); // nothing more may arrive
    perStep.push(
      received
        .slice(before)
        .sort((x, y) => Number(x.watchId - y.watchId))
        .map((response) => {
          const json = toJson(WatchResponseSchema, response) as Record<string, unknown>;
          json.header = { revision: (json.header as Record<string, unknown> | undefined)?.revision ?? "0" };
          return json;
        }),
    );
  }
  open = false;
  abort.abort();
  wake?.();
  await reading;
  return perStep;
}

describe("watch responses on the wire, etcd 3.4 vs edgetcd", () => {
  let etcd: RunningServer;
  let edgetcd: RunningServer;
  before(async () => {
    [etcd, edgetcd] = await Promise.all([startEtcd(), startEdgetcd()]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all([etcd?.stop(), edgetcd?.stop()]);
  });

  test("created, canceled, errors, compaction, prev_kv, filters and progress are identical", async () => {
    const [expected, actual] = await Promise.all([run(etcd), run(edgetcd)]);
    for (const [index, step] of steps.entries()) {
      assert.deepEqual(actual[index], expected[index], `step ${index}: ${JSON.stringify(step, (_k, v) => (typeof v === "bigint" ? `${v}` : v))}`);
    }
    // The scenario covers what it claims.
    const flat = JSON.stringify(expected);
    assert.match(flat, /duplicate watch ID/);
    assert.match(flat, /watcher range is empty/);
    assert.match(flat, /"compactRevision":"3"/);
    assert.match(flat, /prevKv/);
  });
});
