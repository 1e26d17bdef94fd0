import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  CompareSchema,
  DeleteRangeRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  type RangeRequest_SortOrder,
  type RangeRequest_SortTarget,
  type RequestOp,
  RequestOpSchema,
  type TxnRequest,
  TxnRequestSchema,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { EtcdError, GrpcCode } from "../../src/errors.ts";
import {
  validateDeleteRangeRequest,
  validatePutRequest,
  validateRangeRequest,
  validateTxnRequest,
} from "../../src/server/validate-kv.ts";
import { bytes } from "./helpers.ts";

const fails = (message: string) => (error: unknown) =>
  error instanceof EtcdError && error.message === message && error.code === GrpcCode.InvalidArgument;
const duplicate = fails("etcdserver: duplicate key given in txn request");

const opPut = (key: string): RequestOp =>
  create(RequestOpSchema, { request: { case: "requestPut", value: create(PutRequestSchema, { key: bytes(key) }) } });
const opDelete = (key: string, rangeEnd?: string | Uint8Array): RequestOp =>
  create(RequestOpSchema, {
    request: {
      case: "requestDeleteRange",
      value: create(DeleteRangeRequestSchema, {
        key: bytes(key),
        ...(rangeEnd === undefined ? {} : { rangeEnd: typeof rangeEnd === "string" ? bytes(rangeEnd) : rangeEnd }),
      }),
    },
  });
const opRange = (key: string): RequestOp =>
  create(RequestOpSchema, { request: { case: "requestRange", value: create(RangeRequestSchema, { key: bytes(key) }) } });
const opTxn = (txn: TxnRequest): RequestOp => create(RequestOpSchema, { request: { case: "requestTxn", value: txn } });
const txn = (success: RequestOp[], failure: RequestOp[] = [], compares = 0): TxnRequest =>
  create(TxnRequestSchema, {
    success,
    failure,
    compare: Array.from({ length: compares }, () => create(CompareSchema, { key: bytes("c") })),
  });

describe("validate: single requests", () => {
  test("empty keys", () => {
    assert.throws(() => validateRangeRequest(create(RangeRequestSchema, {})), fails("etcdserver: key is not provided"));
    assert.throws(() => validatePutRequest(create(PutRequestSchema, {})), fails("etcdserver: key is not provided"));
    assert.throws(() => validateDeleteRangeRequest(create(DeleteRangeRequestSchema, {})), fails("etcdserver: key is not provided"));
    validateDeleteRangeRequest(create(DeleteRangeRequestSchema, { key: bytes("k"), rangeEnd: new Uint8Array([0]) }));
  });

  test("ignore_value with a value, ignore_lease with a lease", () => {
    assert.throws(
      () => validatePutRequest(create(PutRequestSchema, { key: bytes("k"), value: bytes("v"), ignoreValue: true })),
      fails("etcdserver: value is provided"),
    );
    assert.throws(
      () => validatePutRequest(create(PutRequestSchema, { key: bytes("k"), lease: 5n, ignoreLease: true })),
      fails("etcdserver: lease is provided"),
    );
    validatePutRequest(create(PutRequestSchema, { key: bytes("k"), ignoreValue: true, ignoreLease: true }));
  });

  test("sort order and target out of their enums are invalid sort options", () => {
    const invalid = fails("etcdserver: invalid sort option");
    assert.throws(() => validateRangeRequest(create(RangeRequestSchema, { key: bytes("k"), sortOrder: 3 as RangeRequest_SortOrder })), invalid);
    assert.throws(() => validateRangeRequest(create(RangeRequestSchema, { key: bytes("k"), sortTarget: 5 as RangeRequest_SortTarget })), invalid);
    validateRangeRequest(create(RangeRequestSchema, { key: bytes("k"), sortOrder: 2, sortTarget: 4 }));
  });
});

describe("validate: txn", () => {
  test("more than maxTxnOps in compare, success or failure", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => opRange(`k${i}`));
    validateTxnRequest(txn(many(128)));
    assert.throws(() => validateTxnRequest(txn(many(129))), fails("etcdserver: too many operations in txn request"));
    assert.throws(() => validateTxnRequest(txn([], many(3)), 2), fails("etcdserver: too many operations in txn request"));
    assert.throws(() => validateTxnRequest(txn([], [], 3), 2), fails("etcdserver: too many operations in txn request"));
  });

  test("a nested txn gets what its parent leaves of the budget", () => {
    // Parent uses 2 of 4; the nested txn may have 2, not 3.
    validateTxnRequest(txn([opRange("a"), opTxn(txn([opRange("b"), opRange("c")]))]), 4);
    assert.throws(
      () => validateTxnRequest(txn([opRange("a"), opTxn(txn([opRange("b"), opRange("c"), opRange("d")]))]), 4),
      fails("etcdserver: too many operations in txn request"),
    );
  });

  test("empty compare key, empty op key, empty op", () => {
    const emptyKey = fails("etcdserver: key is not provided");
    assert.throws(() => validateTxnRequest(create(TxnRequestSchema, { compare: [create(CompareSchema, {})] })), emptyKey);
    assert.throws(() => validateTxnRequest(txn([opPut("")])), emptyKey);
    assert.throws(() => validateTxnRequest(txn([], [opTxn(txn([opDelete("")]))])), emptyKey);
    assert.throws(() => validateTxnRequest(txn([create(RequestOpSchema, {})])), fails("etcdserver: key not found"));
  });

  test("duplicate puts and puts under a delete, at one level", () => {
    assert.throws(() => validateTxnRequest(txn([opPut("a"), opPut("a")])), duplicate);
    assert.throws(() => validateTxnRequest(txn([opPut("a"), opDelete("a")])), duplicate);
    assert.throws(() => validateTxnRequest(txn([opDelete("a", "c"), opPut("b")])), duplicate);
    validateTxnRequest(txn([opDelete("a", "c"), opPut("c")]), undefined);
    validateTxnRequest(txn([opPut("a")], [opPut("a")]), undefined);
    validateTxnRequest(txn([opDelete("a"), opDelete("a", "b")]));
    validateTxnRequest(txn([opRange("a"), opPut("a")]));
  });

  test("etcd's checkIntervals: a from-key delete ('\\0' range end) overlaps no put", () => {
    validateTxnRequest(txn([opDelete("a", new Uint8Array([0])), opPut("b")]));
  });

  test("nested txns: a key put in both branches is fine, in a branch and the parent is not", () => {
    const nested = txn([opPut("k")], [opPut("k")]);
    validateTxnRequest(txn([opTxn(nested)]));
    assert.throws(() => validateTxnRequest(txn([opTxn(nested), opPut("k")])), duplicate);
    assert.throws(() => validateTxnRequest(txn([opTxn(txn([opPut("k")])), opTxn(txn([opPut("k")]))])), duplicate);
    assert.throws(() => validateTxnRequest(txn([opDelete("j", "l"), opTxn(txn([], [opPut("k")]))])), duplicate);
    // A nested delete covers the parent's puts.
    assert.throws(() => validateTxnRequest(txn([opTxn(txn([opDelete("k")])), opPut("k")])), duplicate);
    assert.throws(() => validateTxnRequest(txn([opTxn(txn([], [opDelete("a", "z")])), opPut("k")])), duplicate);
    // Deeper nesting.
    assert.throws(
      () => validateTxnRequest(txn([opPut("k"), opTxn(txn([opTxn(txn([opPut("k")]))]))])),
      duplicate,
    );
  });
});
