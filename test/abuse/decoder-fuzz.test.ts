// Row F1 of ../shared/reliability.md for the client port's decoders: seeded
// random mutations of valid requests (bit flips, truncation, inserted and
// duplicated bytes, random bytes) sent as gRPC messages and as gateway JSON
// bodies to a real member. Every request must get an answer (a gRPC status;
// an HTTP status that is never 500, which the gateway gives only for a bug),
// the member must not die, and a well-formed request still works after each
// batch. A malformed protobuf gets grpc-go's Internal (as from etcd), which is
// allowed; Unknown never is.
//
// CI runs a few hundred; EDGETCD_FUZZ_ITERATIONS=<n> runs more (`npm run
// test:long -- --fuzz-minutes M` runs it for minutes), EDGETCD_FUZZ_SEED=<seed>
// replays one. A failure names its seed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  LeaseGrantRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  RequestOpSchema,
  TxnRequestSchema,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { clientsOf } from "../support/cluster.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";
import { seededRandom as random } from "../support/seeded-random.ts";

const iterations = Number(process.env.EDGETCD_FUZZ_ITERATIONS ?? 300);
const onlySeed = process.env.EDGETCD_FUZZ_SEED === undefined ? undefined : Number(process.env.EDGETCD_FUZZ_SEED);
const bytes = (text: string) => new TextEncoder().encode(text);

function mutate(input: Uint8Array, next: () => number): Uint8Array {
  const data = [...input];
  const steps = 1 + Math.floor(next() * 4);
  for (let i = 0; i < steps; i++) {
    const at = Math.floor(next() * (data.length + 1));
    switch (Math.floor(next() * 6)) {
      case 0: // flip a bit
        if (data.length > 0) data[at % data.length] = (data[at % data.length] as number) ^ (1 << Math.floor(next() * 8));
        break;
      case 1: // truncate
        data.length = at;
        break;
      case 2: // insert random bytes
        data.splice(at, 0, ...Array.from({ length: 1 + Math.floor(next() * 8) }, () => Math.floor(next() * 256)));
        break;
      case 3: // duplicate a run
        data.splice(at, 0, ...data.slice(at, at + 1 + Math.floor(next() * 16)));
        break;
      case 4: // a huge varint where a length may be
        data.splice(at, 0, 0xff, 0xff, 0xff, 0xff, 0x0f);
        break;
      default: // replace a byte
        if (data.length > 0) data[at % data.length] = Math.floor(next() * 256);
    }
  }
  return Uint8Array.from(data);
}

const nested = (depth: number): Uint8Array => {
  let txn = create(TxnRequestSchema, { success: [create(RequestOpSchema, { request: { case: "requestPut", value: { key: bytes("k"), value: bytes("v") } } })] });
  for (let i = 0; i < depth; i++) txn = create(TxnRequestSchema, { success: [create(RequestOpSchema, { request: { case: "requestTxn", value: txn } })] });
  return toBinary(TxnRequestSchema, txn);
};

/** Valid requests to mutate: gRPC path, protobuf bytes, gateway path and JSON. */
const corpus: Array<{ path: string; message: Uint8Array; gateway?: string; json: string }> = [
  { path: "/etcdserverpb.KV/Range", message: toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: bytes("a"), rangeEnd: bytes("z"), limit: 10n })), gateway: "/v3/kv/range", json: '{"key":"YQ==","range_end":"eg==","limit":"10","sort_order":"ASCEND"}' },
  { path: "/etcdserverpb.KV/Put", message: toBinary(PutRequestSchema, create(PutRequestSchema, { key: bytes("fuzz"), value: bytes("v"), prevKv: true })), gateway: "/v3/kv/put", json: '{"key":"ZnV6eg==","value":"dg==","prev_kv":true}' },
  { path: "/etcdserverpb.KV/DeleteRange", message: toBinary(DeleteRangeRequestSchema, create(DeleteRangeRequestSchema, { key: bytes("fuzz/"), rangeEnd: bytes("fuzz0") })), gateway: "/v3/kv/deleterange", json: '{"key":"ZnV6ei8=","range_end":"ZnV6ejA="}' },
  { path: "/etcdserverpb.KV/Txn", message: nested(3), gateway: "/v3/kv/txn", json: '{"compare":[{"key":"YQ==","target":"VERSION","result":"EQUAL","version":"0"}],"success":[{"request_put":{"key":"YQ==","value":"Yg=="}}]}' },
  { path: "/etcdserverpb.KV/Compact", message: toBinary(CompactionRequestSchema, create(CompactionRequestSchema, { revision: 1n })), gateway: "/v3/kv/compaction", json: '{"revision":"1"}' },
  { path: "/etcdserverpb.Lease/LeaseGrant", message: toBinary(LeaseGrantRequestSchema, create(LeaseGrantRequestSchema, { TTL: 30n })), json: '{"TTL":"30"}' },
];

async function grpcCall(session: http2.ClientHttp2Session, path: string, message: Uint8Array): Promise<string> {
  const framed = new Uint8Array(5 + message.length);
  new DataView(framed.buffer).setUint32(1, message.length);
  framed.set(message, 5);
  return await new Promise<string>((resolve) => {
    const request = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    request.on("response", (headers) => (status = headers["grpc-status"] as string | undefined));
    request.on("trailers", (trailers) => (status = trailers["grpc-status"] as string | undefined));
    request.on("data", () => {});
    request.on("end", () => resolve(status ?? "none"));
    request.on("error", (error) => resolve(`error ${error.message}`));
    request.setTimeout(10_000, () => {
      request.close();
      resolve("timeout");
    });
    request.end(framed);
  });
}

describe("fuzz: client-port decoders (gRPC and the JSON gateway)", { timeout: 600_000 }, () => {
  let server: RunningServer;
  let session: http2.ClientHttp2Session;
  before(async () => {
    server = await startEdgetcd();
    session = http2.connect(`http://127.0.0.1:${server.clientPort}`);
    session.on("error", () => {});
  });
  after(async () => {
    session?.destroy();
    await server?.kill();
  });

  test(`${onlySeed === undefined ? iterations : 1} seeded mutations of each request, on gRPC and on the gateway`, async () => {
    const seeds = onlySeed === undefined ? Array.from({ length: iterations }, (_, i) => i + 1) : [onlySeed];
    const grpcStatuses = new Map<string, number>();
    const httpStatuses = new Map<number, number>();
    for (const seed of seeds) {
      const next = random(seed);
      const sample = corpus[seed % corpus.length] as (typeof corpus)[number];
      const replay = `(replay: EDGETCD_FUZZ_SEED=${seed} node --import tsx --test test/abuse/decoder-fuzz.test.ts)`;
      const grpcStatus = await grpcCall(session, sample.path, mutate(sample.message, next));
      grpcStatuses.set(grpcStatus, (grpcStatuses.get(grpcStatus) ?? 0) + 1);
      // 2 is Unknown: what an exception nobody mapped becomes.
      assert.ok(/^\d+$/.test(grpcStatus) && grpcStatus !== "2", `seed ${seed}: gRPC ${sample.path} answered ${grpcStatus} ${replay}`);
      if (sample.gateway !== undefined) {
        const body = mutate(bytes(sample.json), next);
        const response = await fetch(`http://127.0.0.1:${server.clientPort}${sample.gateway}`, { method: "POST", body: Buffer.from(body), signal: AbortSignal.timeout(10_000) });
        await response.arrayBuffer();
        httpStatuses.set(response.status, (httpStatuses.get(response.status) ?? 0) + 1);
        assert.notEqual(response.status, 500, `seed ${seed}: gateway ${sample.gateway} answered 500 for ${new TextDecoder().decode(body)} ${replay}`);
      }
      assert.equal(server.process.exitCode, null, `seed ${seed}: the member died ${replay}\n${server.output().slice(-2000)}`);
      if (seed % 50 === 0) await clientsOf(server).kv.range({ key: bytes("a") });
    }
    console.log(`fuzz answers: gRPC ${JSON.stringify(Object.fromEntries(grpcStatuses))}, gateway ${JSON.stringify(Object.fromEntries(httpStatuses))}`);
    const answer = await clientsOf(server).kv.put({ key: bytes("after-fuzz"), value: bytes("ok") });
    assert.ok((answer.header?.revision ?? 0n) > 0n);
  });
});
