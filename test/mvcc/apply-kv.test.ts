import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  type Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  CompareSchema,
  DeleteRangeRequestSchema,
  PutRequestSchema,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  RangeRequestSchema,
  type RequestOp,
  RequestOpSchema,
  type TxnRequest,
  TxnRequestSchema,
  TxnResponseSchema,
  RangeResponseSchema,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { EtcdError } from "../../src/errors.ts";
import { KvApplier } from "../../src/server/apply-kv.ts";
import { bytes, openStore, summary, type TestDir, tempDir, text } from "./helpers.ts";

const dirs: TestDir[] = [];
after(() => {
  for (const dir of dirs) dir.remove();
});
async function applier(leaseExists?: (id: bigint) => boolean): Promise<KvApplier> {
  const dir = await tempDir();
  dirs.push(dir);
  const { store } = openStore(dir);
  return new KvApplier(store, leaseExists === undefined ? {} : { leaseExists });
}

const zero = new Uint8Array([0]);
const errorWith = (message: string) => (error: unknown) => error instanceof EtcdError && error.message === message;

function put(kv: KvApplier, key: string, value: string, extra: Partial<{ lease: bigint; prevKv: boolean; ignoreValue: boolean; ignoreLease: boolean }> = {}) {
  return kv.put(create(PutRequestSchema, { key: bytes(key), value: bytes(value), ...extra }));
}
function range(kv: KvApplier, key: string, init: Parameters<typeof create<typeof RangeRequestSchema>>[1] = {}) {
  return kv.range(create(RangeRequestSchema, { key: bytes(key), ...init }));
}
const keys = (response: { kvs: { key: Uint8Array }[] }) => response.kvs.map((kv) => text(kv.key));

const opPut = (key: string, value: string, extra = {}): RequestOp =>
  create(RequestOpSchema, { request: { case: "requestPut", value: create(PutRequestSchema, { key: bytes(key), value: bytes(value), ...extra }) } });
const opRange = (key: string, extra = {}): RequestOp =>
  create(RequestOpSchema, { request: { case: "requestRange", value: create(RangeRequestSchema, { key: bytes(key), ...extra }) } });
const opDelete = (key: string, extra = {}): RequestOp =>
  create(RequestOpSchema, { request: { case: "requestDeleteRange", value: create(DeleteRangeRequestSchema, { key: bytes(key), ...extra }) } });
const opTxn = (txn: TxnRequest): RequestOp => create(RequestOpSchema, { request: { case: "requestTxn", value: txn } });

function compare(
  key: string,
  target: Compare_CompareTarget,
  result: Compare_CompareResult,
  value: bigint | string,
  rangeEnd?: Uint8Array,
): Compare {
  const union: Compare["targetUnion"] =
    target === Compare_CompareTarget.VALUE
      ? { case: "value", value: bytes(value as string) }
      : target === Compare_CompareTarget.VERSION
        ? { case: "version", value: value as bigint }
        : target === Compare_CompareTarget.CREATE
          ? { case: "createRevision", value: value as bigint }
          : target === Compare_CompareTarget.MOD
            ? { case: "modRevision", value: value as bigint }
            : { case: "lease", value: value as bigint };
  return create(CompareSchema, { key: bytes(key), target, result, targetUnion: union, ...(rangeEnd ? { rangeEnd } : {}) });
}
const { EQUAL, GREATER, LESS, NOT_EQUAL } = Compare_CompareResult;
const { VERSION, CREATE, MOD, VALUE, LEASE } = Compare_CompareTarget;

describe("apply: range", () => {
  async function seeded(): Promise<KvApplier> {
    const kv = await applier();
    put(kv, "a", "3"); // 2
    put(kv, "b", "1"); // 3
    put(kv, "c", "2"); // 4
    put(kv, "b", "0"); // 5: b has version 2
    put(kv, "d", "9"); // 6
    put(kv, "b", "5"); // 7: b version 3
    return kv;
  }

  test("limit, more, count; count_only; keys_only; revision; header", async () => {
    const kv = await seeded();
    let response = range(kv, "a", { rangeEnd: zero, limit: 2n });
    assert.deepEqual(keys(response), ["a", "b"]);
    assert.equal(response.more, true);
    assert.equal(response.count, 4n);
    assert.equal(response.header?.revision, 7n);
    response = range(kv, "a", { rangeEnd: zero, limit: 4n });
    assert.equal(response.more, false);
    response = range(kv, "a", { rangeEnd: zero, countOnly: true });
    assert.equal(response.kvs.length, 0);
    assert.equal(response.count, 4n);
    assert.equal(response.more, false);
    response = range(kv, "b", { keysOnly: true });
    assert.deepEqual(summary(response.kvs), ["b=@c3m7v3"]);
    response = range(kv, "a", { rangeEnd: bytes("c"), revision: 4n });
    assert.deepEqual(summary(response.kvs), ["a=3@c2m2v1", "b=1@c3m3v1"]);
    assert.equal(response.header?.revision, 7n, "header says the store's revision, not the read one");
    assert.throws(() => range(kv, "a", { revision: 8n }), errorWith("etcdserver: mvcc: required revision is a future revision"));
    // The response is a valid protobuf message.
    const decoded = fromBinary(RangeResponseSchema, toBinary(RangeResponseSchema, response));
    assert.equal(decoded.kvs.length, 2);
  });

  test("sort: every target both ways; NONE with a non-key target sorts ascending", async () => {
    const kv = await seeded();
    const sorted = (target: RangeRequest_SortTarget, order: RangeRequest_SortOrder) =>
      keys(range(kv, "a", { rangeEnd: zero, sortTarget: target, sortOrder: order }));
    const { ASCEND, DESCEND, NONE } = RangeRequest_SortOrder;
    const T = RangeRequest_SortTarget;
    assert.deepEqual(sorted(T.KEY, NONE), ["a", "b", "c", "d"]);
    assert.deepEqual(sorted(T.KEY, DESCEND), ["d", "c", "b", "a"]);
    assert.deepEqual(sorted(T.VALUE, ASCEND), ["c", "a", "b", "d"]);
    assert.deepEqual(sorted(T.VALUE, DESCEND), ["d", "b", "a", "c"]);
    assert.deepEqual(sorted(T.MOD, DESCEND), ["b", "d", "c", "a"]);
    assert.deepEqual(sorted(T.CREATE, DESCEND), ["d", "c", "b", "a"]);
    assert.deepEqual(sorted(T.VERSION, DESCEND)[0], "b");
    assert.deepEqual(sorted(T.MOD, NONE), ["a", "c", "d", "b"], "NONE with target MOD = ascending");
  });

  test("sort with limit sorts everything first; target with NONE keeps etcd's limit-before-sort", async () => {
    const kv = await seeded();
    const T = RangeRequest_SortTarget;
    let response = range(kv, "a", { rangeEnd: zero, sortTarget: T.MOD, sortOrder: RangeRequest_SortOrder.DESCEND, limit: 1n });
    assert.deepEqual(keys(response), ["b"]);
    assert.equal(response.more, true);
    // etcd decides "fetch all" on the requested order: NONE keeps the MVCC
    // limit (limit+1 by key: a, b, c), then sorts that slice ascending by
    // mod (a@1, c@3, b@6) and cuts to the limit; d@5 was never looked at.
    response = range(kv, "a", { rangeEnd: zero, sortTarget: T.MOD, limit: 2n });
    assert.deepEqual(keys(response), ["a", "c"]);
    assert.equal(response.more, true);
    assert.equal(response.count, 4n);
  });

  test("min/max mod and create revision filters apply after the range; count does not change", async () => {
    const kv = await seeded();
    let response = range(kv, "a", { rangeEnd: zero, minModRevision: 4n, maxModRevision: 6n });
    assert.deepEqual(keys(response), ["c", "d"]);
    assert.equal(response.count, 4n);
    response = range(kv, "a", { rangeEnd: zero, minCreateRevision: 3n, maxCreateRevision: 4n });
    assert.deepEqual(keys(response), ["b", "c"]);
    response = range(kv, "a", { rangeEnd: zero, minCreateRevision: 3n, limit: 1n });
    assert.deepEqual(keys(response), ["b"]);
    assert.equal(response.more, true);
    response = range(kv, "a", { rangeEnd: zero, minCreateRevision: 5n, limit: 1n });
    assert.deepEqual(keys(response), ["d"]);
    assert.equal(response.more, false);
  });
});

describe("apply: put and delete", () => {
  test("put: revision, prev_kv, lease kept by ignore_lease, value kept by ignore_value", async () => {
    const kv = await applier();
    let response = put(kv, "k", "v1", { lease: 7n, prevKv: true });
    assert.equal(response.header?.revision, 2n);
    assert.equal(response.prevKv, undefined);
    response = put(kv, "k", "v2", { prevKv: true, ignoreLease: true });
    assert.deepEqual(summary([response.prevKv!]), ["k=v1@c2m2v1"]);
    assert.equal(range(kv, "k").kvs[0]?.lease, 7n);
    put(kv, "k", "", { ignoreValue: true, lease: 8n });
    const now = range(kv, "k").kvs[0]!;
    assert.deepEqual(summary([now]), ["k=v2@c2m4v3"]);
    assert.equal(now.lease, 8n);
  });

  test("ignore_value / ignore_lease on a missing key: key not found, nothing written", async () => {
    const kv = await applier();
    assert.throws(() => put(kv, "k", "", { ignoreValue: true }), errorWith("etcdserver: key not found"));
    assert.throws(() => put(kv, "k", "x", { ignoreLease: true }), errorWith("etcdserver: key not found"));
    assert.equal(kv.store.currentRevision, 1);
  });

  test("lease hook: a put naming a missing lease fails", async () => {
    const kv = await applier((id) => id === 5n);
    assert.throws(() => put(kv, "k", "v", { lease: 6n }), errorWith("etcdserver: requested lease not found"));
    assert.equal(put(kv, "k", "v", { lease: 5n }).header?.revision, 2n);
    assert.equal(put(kv, "j", "v").header?.revision, 3n);
  });

  test("delete range: deleted count, prev_kvs, revision unchanged when nothing matched", async () => {
    const kv = await applier();
    put(kv, "a", "1");
    put(kv, "b", "2");
    put(kv, "c", "3");
    let response = kv.deleteRange(create(DeleteRangeRequestSchema, { key: bytes("a"), rangeEnd: bytes("c"), prevKv: true }));
    assert.equal(response.deleted, 2n);
    assert.deepEqual(summary(response.prevKvs), ["a=1@c2m2v1", "b=2@c3m3v1"]);
    assert.equal(response.header?.revision, 5n);
    response = kv.deleteRange(create(DeleteRangeRequestSchema, { key: bytes("a"), rangeEnd: bytes("c") }));
    assert.equal(response.deleted, 0n);
    assert.equal(response.header?.revision, 5n);
    response = kv.deleteRange(create(DeleteRangeRequestSchema, { key: bytes("\u0000"), rangeEnd: zero }));
    assert.equal(response.deleted, 1n);
    assert.deepEqual(response.prevKvs, []);
  });

  test("compact: a fresh store (revision 1, never compacted) accepts revision 0, then 1 (etcd)", async () => {
    const kv = await applier();
    assert.equal(kv.store.compactRevision, -1);
    assert.equal(kv.compact(create(CompactionRequestSchema, { revision: 0n })).header?.revision, 1n);
    assert.equal(kv.store.compactRevision, 0);
    kv.compact(create(CompactionRequestSchema, { revision: 1n }));
    assert.equal(kv.store.compactRevision, 1);
  });

  test("compact: errors and header", async () => {
    const kv = await applier();
    put(kv, "a", "1");
    put(kv, "a", "2");
    assert.equal(kv.compact(create(CompactionRequestSchema, { revision: 2n, physical: true })).header?.revision, 3n);
    assert.throws(() => kv.compact(create(CompactionRequestSchema, { revision: 2n })), errorWith("etcdserver: mvcc: required revision has been compacted"));
    assert.throws(() => kv.compact(create(CompactionRequestSchema, { revision: 4n })), errorWith("etcdserver: mvcc: required revision is a future revision"));
  });
});

describe("apply: txn", () => {
  const txn = (compares: Compare[], success: RequestOp[], failure: RequestOp[] = []) =>
    create(TxnRequestSchema, { compare: compares, success, failure });

  test("N writes bump the revision once; reads inside see earlier writes; ops answer in order", async () => {
    const kv = await applier();
    put(kv, "a", "0");
    const response = kv.txn(txn([], [opPut("a", "1"), opRange("a"), opPut("b", "2"), opDelete("a"), opRange("a", { rangeEnd: zero })]));
    assert.equal(response.succeeded, true);
    assert.equal(response.header?.revision, 3n);
    assert.equal(kv.store.currentRevision, 3);
    const cases = response.responses.map((r) => r.response.case);
    assert.deepEqual(cases, ["responsePut", "responseRange", "responsePut", "responseDeleteRange", "responseRange"]);
    const inner = response.responses.map((r) => r.response.value?.header?.revision);
    assert.deepEqual(inner, [3n, 3n, 3n, 3n, 3n]);
    const firstRange = response.responses[1]?.response;
    assert.equal(firstRange?.case, "responseRange");
    if (firstRange?.case === "responseRange") assert.deepEqual(summary(firstRange.value.kvs), ["a=1@c2m3v2"]);
    const lastRange = response.responses[4]?.response;
    if (lastRange?.case === "responseRange") assert.deepEqual(keys(lastRange.value), ["b"]);
    fromBinary(TxnResponseSchema, toBinary(TxnResponseSchema, response));
  });

  test("a read-only txn keeps the revision; a txn whose branch has no ops too", async () => {
    const kv = await applier();
    put(kv, "a", "0");
    let response = kv.txn(txn([], [opRange("a")]));
    assert.equal(response.header?.revision, 2n);
    response = kv.txn(txn([compare("a", VALUE, EQUAL, "nope")], [opPut("a", "x")], []));
    assert.equal(response.succeeded, false);
    assert.equal(response.header?.revision, 2n);
    assert.equal(kv.store.currentRevision, 2);
    response = kv.txn(txn([], [opDelete("zz")]));
    assert.equal(response.header?.revision, 2n, "a delete of nothing changes nothing");
  });

  test("compares: every target and result on an existing key", async () => {
    const kv = await applier();
    put(kv, "k", "m", { lease: 4n }); // 1
    put(kv, "k", "m", { lease: 4n }); // 2: version 2, create 1, mod 2
    const ok = (c: Compare) => kv.txn(txn([c], [])).succeeded;
    for (const [target, actual] of [
      [VERSION, 2n],
      [CREATE, 2n],
      [MOD, 3n],
      [LEASE, 4n],
    ] as const) {
      assert.equal(ok(compare("k", target, EQUAL, actual)), true, `${target} =`);
      assert.equal(ok(compare("k", target, NOT_EQUAL, actual)), false);
      assert.equal(ok(compare("k", target, GREATER, actual - 1n)), true);
      assert.equal(ok(compare("k", target, GREATER, actual)), false);
      assert.equal(ok(compare("k", target, LESS, actual + 1n)), true);
      assert.equal(ok(compare("k", target, LESS, actual)), false);
    }
    assert.equal(ok(compare("k", VALUE, EQUAL, "m")), true);
    assert.equal(ok(compare("k", VALUE, GREATER, "l")), true);
    assert.equal(ok(compare("k", VALUE, LESS, "ma")), true);
    assert.equal(ok(compare("k", VALUE, NOT_EQUAL, "m")), false);
  });

  test("compares on a missing key: zero version/create/mod/lease; a value compare always fails", async () => {
    const kv = await applier();
    const ok = (c: Compare) => kv.txn(txn([c], [])).succeeded;
    assert.equal(ok(compare("x", VERSION, EQUAL, 0n)), true);
    assert.equal(ok(compare("x", CREATE, EQUAL, 0n)), true);
    assert.equal(ok(compare("x", MOD, LESS, 1n)), true);
    assert.equal(ok(compare("x", LEASE, EQUAL, 0n)), true);
    assert.equal(ok(compare("x", VALUE, EQUAL, "")), false);
    assert.equal(ok(compare("x", VALUE, NOT_EQUAL, "a")), false);
  });

  test("compares over range_end: every key must satisfy", async () => {
    const kv = await applier();
    put(kv, "p/a", "1");
    put(kv, "p/b", "1");
    put(kv, "p/c", "2");
    const ok = (c: Compare) => kv.txn(txn([c], [])).succeeded;
    assert.equal(ok(compare("p/", VALUE, EQUAL, "1", bytes("p/c"))), true);
    assert.equal(ok(compare("p/", VALUE, EQUAL, "1", bytes("p0"))), false);
    assert.equal(ok(compare("p/", MOD, LESS, 5n, bytes("p0"))), true);
    assert.equal(ok(compare("p/", MOD, GREATER, 2n, bytes("p0"))), false);
    assert.equal(ok(compare("p/", CREATE, GREATER, 0n, zero)), true);
    assert.equal(ok(compare("q/", CREATE, EQUAL, 0n, bytes("q0"))), true, "empty range: zero values");
  });

  test("nested txns: compares see the state before the txn; one revision for all", async () => {
    const kv = await applier();
    put(kv, "a", "1"); // 2
    const nested = txn([compare("a", VALUE, EQUAL, "1")], [opPut("n", "then")], [opPut("n", "else")]);
    const response = kv.txn(txn([compare("a", VERSION, EQUAL, 1n)], [opPut("a", "2"), opTxn(nested), opRange("n")]));
    assert.equal(response.succeeded, true);
    assert.equal(response.header?.revision, 3n);
    const inner = response.responses[1]?.response;
    assert.equal(inner?.case, "responseTxn");
    if (inner?.case === "responseTxn") {
      assert.equal(inner.value.succeeded, true, "the nested compare saw a=1, before the txn's put");
      assert.equal(inner.value.header?.revision, 0n, "etcd leaves the nested header empty");
      assert.equal(inner.value.responses[0]?.response.case, "responsePut");
    }
    assert.deepEqual(summary(range(kv, "n").kvs), ["n=then@c3m3v1"]);
    assert.deepEqual(summary(range(kv, "a").kvs), ["a=2@c2m3v2"]);
  });

  test("checks run before any write: a failing put or range in the chosen branch changes nothing", async () => {
    const kv = await (async () => applier((id) => id === 1n))();
    put(kv, "a", "1");
    assert.throws(() => kv.txn(txn([], [opPut("b", "x"), opPut("missing", "", { ignoreValue: true })])), errorWith("etcdserver: key not found"));
    assert.throws(() => kv.txn(txn([], [opPut("b", "x"), opPut("c", "y", { lease: 9n })])), errorWith("etcdserver: requested lease not found"));
    assert.throws(() => kv.txn(txn([], [opPut("b", "x"), opRange("a", { revision: 5n })])), errorWith("etcdserver: mvcc: required revision is a future revision"));
    assert.equal(kv.store.currentRevision, 2);
    assert.equal(range(kv, "b").count, 0n);
    // Checks follow the chosen branch only.
    const response = kv.txn(txn([compare("a", VALUE, EQUAL, "no")], [opPut("missing", "", { ignoreValue: true })], [opPut("b", "x")]));
    assert.equal(response.succeeded, false);
    assert.equal(kv.store.currentRevision, 3);
  });

  test("compacted revision in a txn range fails the txn", async () => {
    const kv = await applier();
    put(kv, "a", "1");
    put(kv, "a", "2");
    put(kv, "a", "3");
    kv.compact(create(CompactionRequestSchema, { revision: 3n }));
    assert.throws(() => kv.txn(txn([], [opRange("a", { revision: 2n })])), errorWith("etcdserver: mvcc: required revision has been compacted"));
    const response = kv.txn(txn([], [opRange("a", { revision: 3n })]));
    const first = response.responses[0]?.response;
    if (first?.case === "responseRange") assert.deepEqual(summary(first.value.kvs), ["a=2@c2m3v2"]);
    else assert.fail("expected a range response");
  });
});
