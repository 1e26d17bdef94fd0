// The linearizability checker and its models on hand-built histories (legal
// and illegal), then on a large history drawn from a sequential simulation
// with overlapping intervals, and on mutated copies of it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Prng } from "../../runtime/sim/prng.ts";
import { checkOperations, checkOperationsVerbose, describeReport, type Operation } from "./porcupine.ts";
import {
  etcdModel, etcdModelAppliedLast, prepareEtcdHistory, registerModel,
  type EtcdRequest, type EtcdResponse, type KeyValue, type RegisterInput, type RegisterOutput,
} from "./models.ts";
import { randomLegalHistory } from "./generate.ts";

type RegisterOp = Operation<RegisterInput, RegisterOutput>;
type EtcdOp = Operation<EtcdRequest, EtcdResponse>;

const unknown = { type: "unknown" } as const;

function op<I, O>(clientId: number, call: number, ret: number, input: I, output: O): Operation<I, O> {
  return { clientId, call, return: ret, input, output };
}

const read = (client: number, call: number, ret: number, key: string, value: string | null, version: number, modRevision: number): RegisterOp =>
  op(client, call, ret, { type: "read", key }, { type: "read", value, version, modRevision });
const write = (client: number, call: number, ret: number, key: string, value: string, revision: number | undefined): RegisterOp =>
  op(client, call, ret, { type: "write", key, value }, revision === undefined ? unknown : { type: "write", revision });

function kv(key: string, value: string, createRevision: number, modRevision: number, version: number, lease = 0): KeyValue {
  return { key, value, createRevision, modRevision, version, lease };
}

const eop = (client: number, call: number, ret: number, input: EtcdRequest, output: EtcdResponse): EtcdOp => op(client, call, ret, input, output);
const get = (client: number, call: number, ret: number, key: string, revision: number, kvs: KeyValue[], atRevision?: number): EtcdOp =>
  op(client, call, ret, { type: "range", key, revision: atRevision }, { type: "range", revision, kvs, count: kvs.length });
const put = (client: number, call: number, ret: number, key: string, value: string, revision: number | undefined, lease?: number): EtcdOp =>
  op(client, call, ret, { type: "put", key, value, lease }, revision === undefined ? unknown : { type: "put", revision });

function assertResult<S, I, O>(model: Parameters<typeof checkOperationsVerbose<S, I, O>>[0], history: Operation<I, O>[], expected: string) {
  const report = checkOperationsVerbose(model, history, { timeoutMs: 10_000 });
  assert.equal(report.result, expected, describeReport(model, report));
}

describe("register model", () => {
  test("legal: concurrent writes with several valid orders, reads in between", () => {
    const history = [
      write(1, 0, 10, "x", "a", 2),
      write(2, 2, 12, "x", "b", 3),
      read(3, 5, 15, "x", "a", 1, 2),
      read(4, 6, 16, "x", null, 0, 0),
      read(3, 16, 17, "x", "b", 2, 3),
    ];
    assertResult(registerModel, history, "ok");
  });

  test("legal: a failed write that took effect late, and one that never did", () => {
    const history = [
      write(1, 0, Infinity, "x", "late", undefined),
      read(2, 1, 2, "x", null, 0, 0),
      read(2, 5, 6, "x", "late", 1, 7),
      write(3, 0, Infinity, "y", "never", undefined),
      read(2, 7, 8, "y", null, 0, 0),
      write(2, 9, 10, "y", "w", 9),
      read(2, 11, 12, "y", "w", 1, 9),
    ];
    assertResult(registerModel, history, "ok");
  });

  test("legal: a failed write revealed only by the version of the next read", () => {
    const history = [
      write(1, 0, 1, "x", "a", 2),
      write(2, 2, Infinity, "x", "lost?", undefined),
      write(3, 3, 4, "x", "b", 5),
      read(3, 5, 6, "x", "b", 3, 5),
    ];
    assertResult(registerModel, history, "ok");
  });

  test("illegal: stale read after a completed write", () => {
    const history = [write(1, 0, 1, "x", "a", 2), write(1, 2, 3, "x", "b", 3), read(2, 4, 5, "x", "a", 1, 2)];
    assertResult(registerModel, history, "illegal");
  });

  test("illegal: an acknowledged write lost", () => {
    assertResult(registerModel, [write(1, 0, 1, "x", "a", 2), read(2, 2, 3, "x", null, 0, 0)], "illegal");
  });

  test("illegal: read of a value never written", () => {
    assertResult(registerModel, [write(1, 0, 1, "x", "a", 2), read(2, 2, 3, "x", "zzz", 1, 2)], "illegal");
  });

  test("illegal: mod revision going back for one key", () => {
    assertResult(registerModel, [write(1, 0, 1, "x", "a", 5), write(1, 2, 3, "x", "b", 4)], "illegal");
  });

  test("illegal: compare-and-set result inconsistent with the value", () => {
    const history: RegisterOp[] = [
      write(1, 0, 1, "x", "a", 2),
      op(2, 2, 3, { type: "cas", key: "x", expected: "a", value: "c" }, { type: "cas", succeeded: false, revision: 2 }),
    ];
    assertResult(registerModel, history, "illegal");
  });

  test("partitions keys: an illegal key is found among legal ones", () => {
    const history: RegisterOp[] = [];
    for (let k = 0; k < 20; k++) history.push(write(k, k * 10, k * 10 + 1, `k${k}`, `v${k}`, k + 2), read(k, k * 10 + 2, k * 10 + 3, `k${k}`, `v${k}`, 1, k + 2));
    assert.equal(checkOperations(registerModel, history), "ok");
    history.push(read(99, 500, 501, "k7", null, 0, 0));
    assert.equal(checkOperations(registerModel, history), "illegal");
  });
});

describe("etcd model", () => {
  test("legal: concurrent puts in either order, reads see one global revision", () => {
    const history = [
      put(1, 0, 10, "a", "1", 3),
      put(2, 0, 10, "b", "2", 2),
      get(3, 1, 11, "a", 2, []),
      get(3, 12, 13, "a", 3, [kv("a", "1", 3, 3, 1)]),
      get(4, 12, 14, "b", 3, [kv("b", "2", 2, 2, 1)]),
    ];
    assertResult(etcdModel, history, "ok");
  });

  test("legal: a failed put that took effect late, and one that never did", () => {
    const late = [put(1, 0, Infinity, "a", "late", undefined), get(2, 1, 2, "a", 1, []), get(2, 5, 6, "a", 2, [kv("a", "late", 2, 2, 1)])];
    assertResult(etcdModel, late, "ok");
    const never = [put(1, 0, Infinity, "a", "never", undefined), get(2, 5, 6, "a", 1, []), put(2, 7, 8, "b", "x", 2), get(2, 9, 10, "a", 2, [])];
    assertResult(etcdModel, never, "ok");
  });

  test("illegal: stale read after a completed write", () => {
    assertResult(etcdModel, [put(1, 0, 1, "a", "x", 2), put(1, 2, 3, "a", "y", 3), get(2, 4, 5, "a", 3, [kv("a", "x", 2, 2, 1)])], "illegal");
  });

  test("illegal: the revision goes back", () => {
    assertResult(etcdModel, [put(1, 0, 1, "a", "x", 2), get(2, 2, 3, "b", 1, [])], "illegal");
  });

  test("illegal: an acknowledged write lost", () => {
    assertResult(etcdModel, [put(1, 0, 1, "a", "x", 2), put(1, 2, 3, "b", "y", 3), get(2, 4, 5, "a", 3, [])], "illegal");
  });

  test("illegal: read of a value never written", () => {
    assertResult(etcdModel, [put(1, 0, 1, "a", "x", 2), get(2, 2, 3, "a", 2, [kv("a", "ghost", 2, 2, 1)])], "illegal");
  });

  test("txn: the compare result must match the state", () => {
    const txn = (succeeded: boolean, revision: number): EtcdOp =>
      eop(2, 2, 3,
        { type: "txn", compares: [{ key: "a", target: "value", result: "=", operand: "x" }], success: [{ type: "put", key: "a", value: "z" }], failure: [{ type: "range", key: "a" }] },
        succeeded
          ? { type: "txn", succeeded, revision, results: [{ type: "put" }] }
          : { type: "txn", succeeded, revision, results: [{ type: "range", kvs: [kv("a", "x", 2, 2, 1)], count: 1 }] });
    assertResult(etcdModel, [put(1, 0, 1, "a", "x", 2), txn(true, 3)], "ok");
    assertResult(etcdModel, [put(1, 0, 1, "a", "x", 2), txn(false, 2)], "illegal");
    // Concurrent with the put, failing is legal: the txn may come first (then its range sees nothing).
    const early = eop(2, 0, 3,
      { type: "txn", compares: [{ key: "a", target: "version", result: ">", operand: 0 }], success: [], failure: [{ type: "range", key: "a" }] },
      { type: "txn", succeeded: false, revision: 1, results: [{ type: "range", kvs: [], count: 0 }] } as EtcdResponse);
    assertResult(etcdModel, [put(1, 0, 1, "a", "x", 2), early], "ok");
  });

  test("lease revoke deletes every attached key in one revision", () => {
    const grant = eop(1, 0, 1, { type: "leaseGrant", lease: 7, ttl: 60 }, { type: "leaseGrant" } as EtcdResponse);
    const attached = [grant, put(1, 2, 3, "a", "x", 2, 7), put(1, 4, 5, "b", "y", 3, 7), get(1, 6, 7, "a", 3, [kv("a", "x", 2, 2, 1, 7)])];
    const revoke = (revision: number) => eop(1, 8, 9, { type: "leaseRevoke", lease: 7 }, { type: "leaseRevoke", revision } as EtcdResponse);
    const after = (revision: number) => eop(1, 10, 11, { type: "range", key: "a", rangeEnd: "\0" }, { type: "range", revision, kvs: [], count: 0 } as EtcdResponse);
    assertResult(etcdModel, [...attached, revoke(4), after(4)], "ok");
    assertResult(etcdModel, [...attached, revoke(5), after(5)], "illegal");
    const noLease = eop(1, 10, 11, { type: "put", key: "c", value: "z", lease: 7 }, { type: "error", error: "leaseNotFound" } as EtcdResponse);
    assertResult(etcdModel, [...attached, revoke(4), noLease], "ok");
    const putOk = eop(1, 10, 11, { type: "put", key: "c", value: "z", lease: 7 }, { type: "put", revision: 5 } as EtcdResponse);
    assertResult(etcdModel, [...attached, revoke(4), putOk], "illegal");
  });

  test("compaction: a read below the compact revision fails, at or above it reads history", () => {
    const writes = [put(1, 0, 1, "a", "x", 2), put(1, 2, 3, "a", "y", 3), put(1, 4, 5, "a", "z", 4)];
    const compact = eop(1, 6, 7, { type: "compact", revision: 3 }, { type: "compact" } as EtcdResponse);
    const compactedRead = eop(2, 8, 9, { type: "range", key: "a", revision: 2 }, { type: "error", error: "compacted" } as EtcdResponse);
    const atCompact = get(2, 10, 11, "a", 4, [kv("a", "y", 2, 3, 2)], 3);
    assertResult(etcdModel, [...writes, compact, compactedRead, atCompact], "ok");
    assertResult(etcdModel, [...writes, compact, get(2, 8, 9, "a", 4, [kv("a", "x", 2, 2, 1)], 2)], "illegal");
    assertResult(etcdModel, [...writes, get(2, 8, 9, "a", 4, [kv("a", "x", 2, 2, 1)], 2)], "ok");
    assertResult(etcdModel, [...writes, compact, eop(1, 8, 9, { type: "compact", revision: 3 }, { type: "compact" } as EtcdResponse)], "illegal");
  });
});

describe("checker on generated histories", () => {
  test("a large random legal history is legal, quickly, under both treatments of failed writes", () => {
    const history = randomLegalHistory(7, 1500, 6, 0.01);
    assert.ok(history.filter((o) => o.return === Infinity).length >= 5, "the history has failed writes");
    for (const model of [etcdModel, etcdModelAppliedLast]) {
      const report = checkOperationsVerbose(model, history, { timeoutMs: 20_000 });
      assert.equal(report.result, "ok", describeReport(model, report));
      console.log(`legal history of ${history.length} operations checked in ${report.elapsedMs.toFixed(0)} ms`);
    }
    const prepared = prepareEtcdHistory(history);
    assert.equal(checkOperations(etcdModelAppliedLast, prepared, { timeoutMs: 20_000 }), "ok");
  });

  test("mutated copies of a large legal history are illegal", () => {
    const history = prepareEtcdHistory(randomLegalHistory(7, 1500, 3, 0.01));

    // Mutation 1: a read misses a key written by a put that returned before
    // the read was called, while nothing that could remove the key (a delete
    // of it, any revoke) was called before the read returned.
    const mutated = history.map((o) => ({ ...o }));
    let mutatedAt = -1;
    for (let i = 300; i < mutated.length && mutatedAt < 0; i++) {
      const o = mutated[i] as EtcdOp;
      if (o.input.type !== "range" || o.input.revision !== undefined || o.output.type !== "range") continue;
      const end = o.return;
      const missing = o.output.kvs.find((item) =>
        history.some((w) => w.input.type === "put" && w.input.value === item.value && w.return < o.call) &&
        !history.some((d) => d.call < end && d.return > o.call - 50 && ((d.input.type === "delete" && d.input.key === item.key) || d.input.type === "leaseRevoke")));
      if (missing === undefined) continue;
      const kvs = o.output.kvs.filter((item) => item !== missing);
      mutated[i] = { ...o, output: { ...o.output, kvs, count: kvs.length } };
      mutatedAt = i;
    }
    assert.ok(mutatedAt >= 0, "found a read to mutate");
    assert.equal(checkOperations(etcdModelAppliedLast, mutated, { timeoutMs: 20_000 }), "illegal");

    // Mutation 2: one acknowledged put reports a revision one lower.
    const second = history.map((o) => ({ ...o }));
    const index = second.findIndex((o, i) => i > 300 && o.output.type === "put");
    const target = second[index] as EtcdOp;
    second[index] = { ...target, output: { type: "put", revision: (target.output as { revision: number }).revision - 1 } };
    assert.equal(checkOperations(etcdModelAppliedLast, second, { timeoutMs: 20_000 }), "illegal");
  });

  test("a time budget turns a search that is too long into unknown", () => {
    const history = randomLegalHistory(11, 3000, 8);
    // Make it illegal at the very end so the search must exhaust everything.
    history.push(put(999, 1e9, 1e9 + 1, "key1", "final", 1));
    assert.equal(checkOperations(etcdModel, history, { timeoutMs: 1 }), "unknown");
  });
});
