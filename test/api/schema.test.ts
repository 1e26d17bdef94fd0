// Wire compatibility of the generated schema with etcd's. Expected bytes are
// built by hand from etcd's field numbers (tag = field << 3 | wire type), so
// a wrong field number or type in proto/ shows up here even though the
// encoder itself comes from the same schema.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescService } from "@bufbuild/protobuf";
import {
  Auth,
  Cluster,
  Compare_CompareResult,
  Compare_CompareTarget,
  KV,
  Lease,
  Maintenance,
  MemberSchema,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  RangeRequestSchema,
  RangeResponseSchema,
  TxnRequestSchema,
  Watch,
  WatchCreateRequest_FilterType,
  WatchRequestSchema,
  WatchResponseSchema,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType } from "../../src/gen/mvccpb/kv_pb.ts";
import { Lock } from "../../src/gen/v3lockpb/v3lock_pb.ts";
import { Election } from "../../src/gen/v3electionpb/v3election_pb.ts";
import { BrowserLease, BrowserWatch } from "../../src/gen/edgetcd/v1/edgetcd_pb.ts";

// --- a tiny hand-written protobuf encoder, independent of the schema --------

const VARINT = 0;
const LENGTH_DELIMITED = 2;

function varint(value: number | bigint): number[] {
  // int64 negatives are sent as their 64-bit two's complement (10 bytes).
  let rest = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return out;
}

function tag(fieldNumber: number, wireType: number): number[] {
  return varint((fieldNumber << 3) | wireType);
}

function intField(fieldNumber: number, value: number | bigint): number[] {
  return [...tag(fieldNumber, VARINT), ...varint(value)];
}

function bytesField(fieldNumber: number, payload: number[] | string): number[] {
  const body = typeof payload === "string" ? [...new TextEncoder().encode(payload)] : payload;
  return [...tag(fieldNumber, LENGTH_DELIMITED), ...varint(body.length), ...body];
}

const text = (value: string) => new TextEncoder().encode(value);
const hex = (bytes: Uint8Array | number[]) => Buffer.from(bytes).toString("hex");

function assertBytes(actual: Uint8Array, expected: number[]) {
  assert.equal(hex(actual), hex(expected));
}

// --- encoding ------------------------------------------------------------------

test("RangeRequest: every field lands on etcd's field number", () => {
  const request = create(RangeRequestSchema, {
    key: text("foo"),
    rangeEnd: text("fop"),
    limit: 10n,
    revision: 7n,
    sortOrder: RangeRequest_SortOrder.DESCEND,
    sortTarget: RangeRequest_SortTarget.MOD,
    serializable: true,
    keysOnly: true,
    countOnly: true,
    minModRevision: 3n,
    maxModRevision: 4n,
    minCreateRevision: 1n,
    maxCreateRevision: 300n,
  });
  assertBytes(toBinary(RangeRequestSchema, request), [
    ...bytesField(1, "foo"),
    ...bytesField(2, "fop"),
    ...intField(3, 10),
    ...intField(4, 7),
    ...intField(5, 2), // DESCEND
    ...intField(6, 3), // MOD
    ...intField(7, 1),
    ...intField(8, 1),
    ...intField(9, 1),
    ...intField(10, 3),
    ...intField(11, 4),
    ...intField(12, 1),
    ...intField(13, 300),
  ]);
});

test("RangeRequest: a negative revision is a 10-byte two's complement varint", () => {
  const bytes = toBinary(RangeRequestSchema, create(RangeRequestSchema, { revision: -1n }));
  assertBytes(bytes, intField(4, -1));
  assert.equal(bytes.length, 11);
});

test("TxnRequest: compare on mod_revision, nested txn and failure branch", () => {
  const request = create(TxnRequestSchema, {
    compare: [
      {
        result: Compare_CompareResult.LESS,
        target: Compare_CompareTarget.MOD,
        key: text("k"),
        targetUnion: { case: "modRevision", value: 5n },
        rangeEnd: text("l"),
      },
      // clientv3's "key does not exist" guard: a oneof member set to zero
      // must still be sent, or the server cannot tell which target it is.
      {
        result: Compare_CompareResult.EQUAL,
        target: Compare_CompareTarget.CREATE,
        key: text("k"),
        targetUnion: { case: "createRevision", value: 0n },
      },
    ],
    success: [
      {
        request: {
          case: "requestTxn",
          value: {
            compare: [{ target: Compare_CompareTarget.VALUE, key: text("a"), targetUnion: { case: "value", value: text("v") } }],
            success: [{ request: { case: "requestPut", value: { key: text("a"), value: text("b"), lease: 9n, prevKv: true } } }],
          },
        },
      },
      { request: { case: "requestDeleteRange", value: { key: text("d"), prevKv: true } } },
    ],
    failure: [{ request: { case: "requestRange", value: { key: text("k") } } }],
  });

  const firstCompare = [
    ...intField(1, 2), // LESS
    ...intField(2, 2), // MOD
    ...bytesField(3, "k"),
    ...intField(6, 5), // mod_revision
    ...tag(64, LENGTH_DELIMITED), // range_end = 64 needs a two-byte tag
    1,
    ...text("l"),
  ];
  const secondCompare = [...intField(2, 1), ...bytesField(3, "k"), ...intField(5, 0)];
  const nestedTxn = [
    ...bytesField(1, [...intField(2, 3), ...bytesField(3, "a"), ...bytesField(7, "v")]),
    ...bytesField(2, bytesField(2, [...bytesField(1, "a"), ...bytesField(2, "b"), ...intField(3, 9), ...intField(4, 1)])),
  ];
  assertBytes(toBinary(TxnRequestSchema, request), [
    ...bytesField(1, firstCompare),
    ...bytesField(1, secondCompare),
    ...bytesField(2, bytesField(4, nestedTxn)), // request_txn = 4
    ...bytesField(2, bytesField(3, [...bytesField(1, "d"), ...intField(3, 1)])), // request_delete_range = 3
    ...bytesField(3, bytesField(1, bytesField(1, "k"))), // request_range = 1
  ]);
  assert.deepEqual(tag(64, LENGTH_DELIMITED), [0x82, 0x04]);
});

test("WatchRequest: create with filters, cancel and progress", () => {
  const createRequest = create(WatchRequestSchema, {
    requestUnion: {
      case: "createRequest",
      value: {
        key: text("a"),
        rangeEnd: text("b"),
        startRevision: 5n,
        progressNotify: true,
        filters: [WatchCreateRequest_FilterType.NOPUT, WatchCreateRequest_FilterType.NODELETE],
        prevKv: true,
        watchId: 9n,
        fragment: true,
      },
    },
  });
  assertBytes(
    toBinary(WatchRequestSchema, createRequest),
    bytesField(1, [
      ...bytesField(1, "a"),
      ...bytesField(2, "b"),
      ...intField(3, 5),
      ...intField(4, 1),
      ...bytesField(5, [0, 1]), // proto3 packs repeated enums, as Go does
      ...intField(6, 1),
      ...intField(7, 9),
      ...intField(8, 1),
    ]),
  );

  const cancel = create(WatchRequestSchema, { requestUnion: { case: "cancelRequest", value: { watchId: 9n } } });
  assertBytes(toBinary(WatchRequestSchema, cancel), bytesField(2, intField(1, 9)));

  // An empty message in a oneof still costs its tag and a zero length.
  const progress = create(WatchRequestSchema, { requestUnion: { case: "progressRequest", value: {} } });
  assertBytes(toBinary(WatchRequestSchema, progress), bytesField(3, []));
});

test("WatchCreateRequest: unpacked filters from an old client still decode", () => {
  const unpacked = bytesField(1, [...bytesField(1, "a"), ...intField(5, 1), ...intField(5, 0)]);
  const decoded = fromBinary(WatchRequestSchema, new Uint8Array(unpacked));
  assert.equal(decoded.requestUnion.case, "createRequest");
  assert.deepEqual(decoded.requestUnion.value?.filters, [
    WatchCreateRequest_FilterType.NODELETE,
    WatchCreateRequest_FilterType.NOPUT,
  ]);
});

test("Member: uint64 ID above 2^63, URLs and isLearner", () => {
  const id = 0x8e9e05c52164694dn;
  const member = create(MemberSchema, {
    ID: id,
    name: "infra1",
    peerURLs: ["http://127.0.0.1:2380", "http://10.0.0.1:2380"],
    clientURLs: ["http://127.0.0.1:2379"],
    isLearner: true,
  });
  assertBytes(toBinary(MemberSchema, member), [
    ...intField(1, id),
    ...bytesField(2, "infra1"),
    ...bytesField(3, "http://127.0.0.1:2380"),
    ...bytesField(3, "http://10.0.0.1:2380"),
    ...bytesField(4, "http://127.0.0.1:2379"),
    ...intField(5, 1),
  ]);
});

// --- decoding ------------------------------------------------------------------

const header = [...intField(1, 0xcdefn), ...intField(2, 0x1234n), ...intField(3, 42), ...intField(4, 3)];

const keyValue = (key: string, value: string) => [
  ...bytesField(1, key),
  ...intField(2, 10),
  ...intField(3, 12),
  ...intField(4, 2),
  ...bytesField(5, value),
  ...intField(6, 77),
];

test("RangeResponse: decodes header and mvccpb.KeyValue from etcd's numbers", () => {
  const bytes = [...bytesField(1, header), ...bytesField(2, keyValue("foo", "bar")), ...intField(3, 1), ...intField(4, 5)];
  const response = fromBinary(RangeResponseSchema, new Uint8Array(bytes));
  assert.deepEqual(
    {
      clusterId: response.header?.clusterId,
      memberId: response.header?.memberId,
      revision: response.header?.revision,
      raftTerm: response.header?.raftTerm,
    },
    { clusterId: 0xcdefn, memberId: 0x1234n, revision: 42n, raftTerm: 3n },
  );
  assert.equal(response.kvs.length, 1);
  const kv = response.kvs[0]!;
  assert.equal(new TextDecoder().decode(kv.key), "foo");
  assert.equal(new TextDecoder().decode(kv.value), "bar");
  assert.deepEqual([kv.createRevision, kv.modRevision, kv.version, kv.lease], [10n, 12n, 2n, 77n]);
  assert.equal(response.more, true);
  assert.equal(response.count, 5n);
});

test("WatchResponse: events sit on field 11, with type and prev_kv", () => {
  const event = [...intField(1, 1), ...bytesField(2, keyValue("a", "")), ...bytesField(3, keyValue("a", "old"))];
  const bytes = [
    ...bytesField(1, header),
    ...intField(2, 9),
    ...intField(3, 1),
    ...intField(4, 1),
    ...intField(5, 40),
    ...bytesField(6, "compacted"),
    ...intField(7, 1),
    ...bytesField(11, event),
  ];
  const response = fromBinary(WatchResponseSchema, new Uint8Array(bytes));
  assert.equal(response.watchId, 9n);
  assert.equal(response.created, true);
  assert.equal(response.canceled, true);
  assert.equal(response.compactRevision, 40n);
  assert.equal(response.cancelReason, "compacted");
  assert.equal(response.fragment, true);
  assert.equal(response.events.length, 1);
  assert.equal(response.events[0]?.type, Event_EventType.DELETE);
  assert.equal(new TextDecoder().decode(response.events[0]?.prevKv?.value), "old");
});

// --- services --------------------------------------------------------------------

type Shape = Record<string, "unary" | "server_streaming" | "client_streaming" | "bidi_streaming">;

function shapeOf(service: DescService): Shape {
  return Object.fromEntries(service.methods.map((method) => [method.name, method.methodKind]));
}

const unary = (...names: string[]): Shape => Object.fromEntries(names.map((name) => [name, "unary"]));

test("services: etcd's names, methods and stream kinds", () => {
  const expected: [DescService, string, Shape][] = [
    [KV, "etcdserverpb.KV", unary("Range", "Put", "DeleteRange", "Txn", "Compact")],
    [Watch, "etcdserverpb.Watch", { Watch: "bidi_streaming" }],
    [
      Lease,
      "etcdserverpb.Lease",
      { ...unary("LeaseGrant", "LeaseRevoke", "LeaseTimeToLive", "LeaseLeases"), LeaseKeepAlive: "bidi_streaming" },
    ],
    [Cluster, "etcdserverpb.Cluster", unary("MemberAdd", "MemberRemove", "MemberUpdate", "MemberList", "MemberPromote")],
    [
      Maintenance,
      "etcdserverpb.Maintenance",
      {
        ...unary("Alarm", "Status", "Defragment", "Hash", "HashKV", "MoveLeader", "Downgrade"),
        Snapshot: "server_streaming",
      },
    ],
    [
      Auth,
      "etcdserverpb.Auth",
      unary(
        "AuthEnable", "AuthDisable", "AuthStatus", "Authenticate",
        "UserAdd", "UserGet", "UserList", "UserDelete", "UserChangePassword", "UserGrantRole", "UserRevokeRole",
        "RoleAdd", "RoleGet", "RoleList", "RoleDelete", "RoleGrantPermission", "RoleRevokePermission",
      ),
    ],
    [Lock, "v3lockpb.Lock", unary("Lock", "Unlock")],
    [Election, "v3electionpb.Election", { ...unary("Campaign", "Proclaim", "Leader", "Resign"), Observe: "server_streaming" }],
    [BrowserWatch, "edgetcd.v1.BrowserWatch", { Watch: "server_streaming" }],
    [BrowserLease, "edgetcd.v1.BrowserLease", { KeepAlive: "server_streaming" }],
  ];
  for (const [service, typeName, shape] of expected) {
    // typeName is what gRPC puts in the path: /etcdserverpb.KV/Range.
    assert.equal(service.typeName, typeName);
    assert.deepEqual(shapeOf(service), shape, typeName);
  }
});

test("services: request and response types of the streaming and renamed methods", () => {
  const io = (service: DescService, name: string) => {
    const method = service.methods.find((candidate) => candidate.name === name);
    assert.ok(method, name);
    return [method.input.typeName, method.output.typeName];
  };
  assert.deepEqual(io(KV, "Compact"), ["etcdserverpb.CompactionRequest", "etcdserverpb.CompactionResponse"]);
  assert.deepEqual(io(Auth, "UserAdd"), ["etcdserverpb.AuthUserAddRequest", "etcdserverpb.AuthUserAddResponse"]);
  assert.deepEqual(io(Election, "Observe"), ["v3electionpb.LeaderRequest", "v3electionpb.LeaderResponse"]);
  assert.deepEqual(io(BrowserWatch, "Watch"), ["etcdserverpb.WatchCreateRequest", "etcdserverpb.WatchResponse"]);
  assert.deepEqual(io(BrowserLease, "KeepAlive"), ["etcdserverpb.LeaseKeepAliveRequest", "etcdserverpb.LeaseKeepAliveResponse"]);
});
