// v3lockpb.Lock (etcd's v3lock server): clientv3's Mutex recipe run on the
// server, with the same keys, so a lock taken here excludes a clientv3 or
// `etcdctl lock` holder of the same name and the other way round.
//
// A waiter puts `<name>/<lease id in hex>` (create_revision compare = 0, so a
// lease that already holds the key reuses it), attached to its lease; the
// waiter whose key has the lowest create revision holds the lock. The others
// wait for every key of the name created before theirs to be deleted. The
// lock key's create revision is a fencing token: compare it in a txn to write
// only while still the holder. A lock is granted only while its key, and so
// its lease, still stands (Jepsen found etcd 3.4 handing out a lock whose
// lease had expired while it waited).
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeRequestSchema,
  LeaseGrantRequestSchema,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  RangeRequestSchema,
  RequestOpSchema,
  TxnRequestSchema,
  WatchCreateRequestSchema,
  type Compare,
  type RangeRequest,
  type RequestOp,
  type ResponseHeader,
  type TxnResponse,
  type WatchResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType, type KeyValue } from "../gen/mvccpb/kv_pb.ts";
import type { Lock, LockResponse } from "../gen/v3lockpb/v3lock_pb.ts";
import { EtcdError, etcdError, GrpcCode } from "../errors.ts";
import { leaseIdHex } from "../server/facade.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { validateDeleteRangeRequest } from "../server/validate-kv.ts";
import { callerOf, serverAs } from "./auth-context.ts";
import { guardedAsRecipe } from "./errors.ts";
import { WatchSession } from "./watch-service.ts";
import { mutant } from "../mutants.ts";

/** The TTL of the lease granted for a request naming none (clientv3's default session TTL). */
export const sessionTtlSecondsDefault = 60;

const encoder = new TextEncoder();

/** concurrency.ErrSessionExpired: the waiter's key (its lease) went before the lock was granted. */
export const sessionExpiredMessage = "mutex: session is expired";

export function lockService(server: EtcdServer): ServiceImpl<typeof Lock> {
  return {
    lock: (request, context) => guardedAsRecipe(() => lock(serverAs(server, callerOf(context)), request.name, request.lease, context.signal)),
    unlock: (request, context) =>
      guardedAsRecipe(async () => {
        const deletion = create(DeleteRangeRequestSchema, { key: request.key });
        validateDeleteRangeRequest(deletion);
        const response = await server.deleteRange(deletion, callerOf(context));
        return { $typeName: "v3lockpb.UnlockResponse", header: response.header };
      }),
  };
}

async function lock(server: EtcdServer, name: Uint8Array, leaseId: bigint, signal: AbortSignal): Promise<LockResponse> {
  const lease = leaseId !== 0n ? leaseId : await sessionLease(server);
  const prefix = recipePrefix(name);
  const key = recipeKey(prefix, lease);
  const response = await server.txn(
    create(TxnRequestSchema, {
      compare: [createRevisionIs(key, 0n)],
      success: [putOp(key, new Uint8Array(0), lease), rangeOp(firstCreate(prefix))],
      failure: [rangeOp(singleKey(key)), rangeOp(firstCreate(prefix))],
    }),
  );
  let header = response.header as ResponseHeader;
  const createRevision = response.succeeded ? header.revision : (rangeKvs(response, 0)[0] as KeyValue).createRevision;
  const owner = rangeKvs(response, 1)[0];
  if (owner !== undefined && owner.createRevision !== createRevision) {
    try {
      header = await waitDeletes(server, prefix, createRevision - 1n, signal);
    } catch (error) {
      // Leave no stale waiter behind (clientv3 unlocks on a failed wait).
      await server.deleteRange(create(DeleteRangeRequestSchema, { key })).catch(() => undefined);
      throw error;
    }
  }
  const mine = (await server.range(singleKey(key))).kvs[0];
  const leaseEntry = server.lessor.lookup(lease);
  const leaseExpired = (leaseEntry === undefined || server.lessor.remainingMs(leaseEntry) <= 0) && !mutant("lock-after-lease-expired"); // MUTANT
  if (mine === undefined || mine.createRevision !== createRevision || leaseExpired) {
    throw new EtcdError(GrpcCode.Unknown, sessionExpiredMessage);
  }
  return { $typeName: "v3lockpb.LockResponse", header, key };
}

/** A lease for a request that names none, as clientv3's NewSession grants (and the server then orphans). */
export async function sessionLease(server: EtcdServer): Promise<bigint> {
  return (await server.leaseGrant(create(LeaseGrantRequestSchema, { TTL: BigInt(sessionTtlSecondsDefault) }))).ID;
}

/**
 * Waits until no key under `prefix` has a create revision at or below
 * `maxCreateRevision` (clientv3's waitDeletes): watch the newest such key
 * for its delete, then look again. Returns the header of the last look.
 */
export async function waitDeletes(
  server: EtcdServer,
  prefix: Uint8Array,
  maxCreateRevision: bigint,
  signal: AbortSignal,
): Promise<ResponseHeader> {
  for (;;) {
    const request = create(RangeRequestSchema, {
      key: prefix,
      rangeEnd: prefixEnd(prefix),
      sortTarget: RangeRequest_SortTarget.CREATE,
      sortOrder: RangeRequest_SortOrder.DESCEND,
      limit: 1n,
      maxCreateRevision,
    });
    const response = await server.range(request);
    const newest = response.kvs[0];
    const header = response.header as ResponseHeader;
    if (newest === undefined) return header;
    for await (const watched of watchResponses(server, newest.key, undefined, header.revision, signal)) {
      if (watched.events.some((event) => event.type === Event_EventType.DELETE)) break;
    }
  }
}

/**
 * The responses of one watcher from `startRevision`, until the caller stops
 * reading. Throws etcd's compacted error when the watcher is canceled for
 * compaction, and a cancellation when `signal` aborts.
 */
export async function* watchResponses(
  server: EtcdServer,
  key: Uint8Array,
  rangeEnd: Uint8Array | undefined,
  startRevision: bigint,
  signal: AbortSignal,
): AsyncGenerator<WatchResponse> {
  const session = new WatchSession(server, Number.MAX_SAFE_INTEGER);
  try {
    session.create(create(WatchCreateRequestSchema, { key, rangeEnd: rangeEnd ?? new Uint8Array(0), startRevision }));
    for await (const response of session.responses(signal)) {
      if (response.created) continue;
      if (response.canceled) throw response.compactRevision !== 0n ? etcdError("compacted") : etcdError("watchCanceled");
      yield response;
    }
    if (signal.aborted) throw new EtcdError(GrpcCode.Canceled, "context canceled");
    throw etcdError("stopped");
  } finally {
    session.close();
  }
}

// --- request builders (clientv3's op options) ---------------------------------

/** The prefix under which a lock's waiters or an election's candidates put their keys: `<name>/`. */
export function recipePrefix(name: Uint8Array): Uint8Array {
  return concat(name, encoder.encode("/"));
}

/** A waiter's or candidate's key: the prefix, then its lease id as Go's `%x` prints it (clientv3's session key). */
export function recipeKey(prefix: Uint8Array, lease: bigint): Uint8Array {
  return concat(prefix, encoder.encode(leaseIdHex(lease)));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}

/** clientv3's GetPrefixRangeEnd: the prefix with its last byte below 0xff incremented; "\0" (every key) if none. */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if ((prefix[i] as number) < 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i] = (end[i] as number) + 1;
      return end;
    }
  }
  return new Uint8Array([0]);
}

/** clientv3's WithFirstCreate on a prefix: the key created first. */
export function firstCreate(prefix: Uint8Array): RangeRequest {
  return create(RangeRequestSchema, {
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    sortTarget: RangeRequest_SortTarget.CREATE,
    sortOrder: RangeRequest_SortOrder.ASCEND,
    limit: 1n,
  });
}

export function singleKey(key: Uint8Array): RangeRequest {
  return create(RangeRequestSchema, { key });
}

export function createRevisionIs(key: Uint8Array, revision: bigint): Compare {
  return {
    $typeName: "etcdserverpb.Compare",
    result: Compare_CompareResult.EQUAL,
    target: Compare_CompareTarget.CREATE,
    key,
    rangeEnd: new Uint8Array(0),
    targetUnion: { case: "createRevision", value: revision },
  };
}

export function putOp(key: Uint8Array, value: Uint8Array, lease: bigint): RequestOp {
  return create(RequestOpSchema, { request: { case: "requestPut", value: { key, value, lease } } });
}

export function rangeOp(request: RangeRequest): RequestOp {
  return create(RequestOpSchema, { request: { case: "requestRange", value: request } });
}

export function deleteOp(key: Uint8Array): RequestOp {
  return create(RequestOpSchema, { request: { case: "requestDeleteRange", value: { key } } });
}

/** The kvs of the range response at `index` of a txn response. */
export function rangeKvs(response: TxnResponse, index: number): KeyValue[] {
  const op = response.responses[index]?.response;
  return op?.case === "responseRange" ? op.value.kvs : [];
}
