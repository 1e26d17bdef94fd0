// Records a history of real client operations for the checker: call and return
// times from one monotonic clock (performance.now), one request at a time per
// client, and a client whose write failed continues under a new client id (its
// failed write stays pending forever, so its next requests must not look
// sequential after it). Requests go through the generated Connect clients (KV,
// Lease) over gRPC on HTTP/2, against edgetcd or etcd alike.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Compare_CompareResult, Compare_CompareTarget, KV, Lease,
  type CompareSchema, type RequestOpSchema, type ResponseOp,
} from "../../src/gen/etcdserverpb/rpc_pb.ts";
import type { KeyValue as KeyValueMessage } from "../../src/gen/mvccpb/kv_pb.ts";
import type { Operation } from "./porcupine.ts";
import type { Compare, EtcdErrorName, EtcdRequest, EtcdResponse, KeyValue, TxnOp, TxnOpResult } from "./models.ts";
import { isReadOnly } from "./models.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** etcd's messages for the errors that mean "no effect" and that the model checks. */
const definiteErrors: [string, EtcdErrorName][] = [
  ["required revision has been compacted", "compacted"],
  ["required revision is a future revision", "futureRevision"],
  ["requested lease not found", "leaseNotFound"],
  ["lease already exists", "leaseExists"],
];

export function definiteError(error: unknown): EtcdErrorName | undefined {
  const message = error instanceof ConnectError ? error.rawMessage : String(error);
  return definiteErrors.find(([text]) => message.includes(text))?.[1];
}

/** The connection was refused: the request never left the client, so it had no effect. */
export function neverSent(error: unknown): boolean {
  for (let cause: unknown = error, depth = 0; cause !== undefined && cause !== null && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (code === "ECONNREFUSED") return true;
    if (cause instanceof ConnectError && cause.rawMessage.includes("ECONNREFUSED")) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

/** One history shared by every client of a run, on one clock. */
export class HistoryRecorder<I, O> {
  readonly operations: Operation<I, O>[] = [];
  private readonly origin = performance.now();
  private lastClientId = 0;

  now(): number {
    return performance.now() - this.origin;
  }

  newClientId(): number {
    return ++this.lastClientId;
  }

  record(operation: Operation<I, O>): void {
    this.operations.push(operation);
  }
}

export type EtcdHistory = HistoryRecorder<EtcdRequest, EtcdResponse>;

export interface Connection {
  kv: Client<typeof KV>;
  lease: Client<typeof Lease>;
}

export function connect(endpoint: string): Connection {
  const transport = createGrpcTransport({ baseUrl: `http://${endpoint}` });
  return { kv: createClient(KV, transport), lease: createClient(Lease, transport) };
}

export interface RecordingClientOptions {
  /** Per-request deadline; a write that misses it has an unknown outcome. */
  timeoutMs: number;
}

/**
 * One logical client: one request at a time, recorded with call and return
 * times. Failed reads and requests whose connection was refused are dropped
 * (no effect); other failed writes are recorded with output unknown and
 * return +Infinity, and the client takes a new id.
 */
export class RecordingEtcdClient {
  clientId: number;
  private busy = false;

  constructor(
    readonly history: EtcdHistory,
    private connection: Connection,
    private readonly options: RecordingClientOptions = { timeoutMs: 2000 },
  ) {
    this.clientId = history.newClientId();
  }

  /** Points the client at another member (after its member died, for example). */
  reconnect(connection: Connection): void {
    this.connection = connection;
  }

  async do(request: EtcdRequest): Promise<EtcdResponse> {
    if (this.busy) throw new Error(`client ${this.clientId} issued a request while one was in flight`);
    this.busy = true;
    const call = this.history.now();
    try {
      const response = await execute(this.connection, request, this.options.timeoutMs);
      this.history.record({ clientId: this.clientId, input: request, call, output: response, return: this.history.now() });
      return response;
    } catch (error) {
      const returned = this.history.now();
      const name = definiteError(error);
      if (name !== undefined) {
        const response: EtcdResponse = { type: "error", error: name };
        this.history.record({ clientId: this.clientId, input: request, call, output: response, return: returned });
        return response;
      }
      if (!isReadOnly(request) && !neverSent(error)) {
        this.history.record({ clientId: this.clientId, input: request, call, output: { type: "unknown" }, return: Infinity });
        this.clientId = this.history.newClientId();
      }
      return { type: "unknown" };
    } finally {
      this.busy = false;
    }
  }
}

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

function rangeEndBytes(rangeEnd: string | undefined): Uint8Array {
  return rangeEnd === undefined ? new Uint8Array() : bytes(rangeEnd);
}

function keyValue(kv: KeyValueMessage): KeyValue {
  return {
    key: decoder.decode(kv.key),
    value: decoder.decode(kv.value),
    createRevision: Number(kv.createRevision),
    modRevision: Number(kv.modRevision),
    version: Number(kv.version),
    lease: Number(kv.lease),
  };
}

const compareResults: Record<Compare["result"], Compare_CompareResult> = {
  "=": Compare_CompareResult.EQUAL,
  "!=": Compare_CompareResult.NOT_EQUAL,
  ">": Compare_CompareResult.GREATER,
  "<": Compare_CompareResult.LESS,
};

function compareMessage(compare: Compare): MessageInitShape<typeof CompareSchema> {
  const base = { key: bytes(compare.key), result: compareResults[compare.result] };
  switch (compare.target) {
    case "value":
      return { ...base, target: Compare_CompareTarget.VALUE, targetUnion: { case: "value", value: bytes(String(compare.operand)) } };
    case "version":
      return { ...base, target: Compare_CompareTarget.VERSION, targetUnion: { case: "version", value: BigInt(compare.operand) } };
    case "create":
      return { ...base, target: Compare_CompareTarget.CREATE, targetUnion: { case: "createRevision", value: BigInt(compare.operand) } };
    case "mod":
      return { ...base, target: Compare_CompareTarget.MOD, targetUnion: { case: "modRevision", value: BigInt(compare.operand) } };
  }
}

function requestOp(op: TxnOp): MessageInitShape<typeof RequestOpSchema> {
  switch (op.type) {
    case "range":
      return { request: { case: "requestRange", value: { key: bytes(op.key), rangeEnd: rangeEndBytes(op.rangeEnd) } } };
    case "put":
      return { request: { case: "requestPut", value: { key: bytes(op.key), value: bytes(op.value), lease: BigInt(op.lease ?? 0) } } };
    case "delete":
      return { request: { case: "requestDeleteRange", value: { key: bytes(op.key), rangeEnd: rangeEndBytes(op.rangeEnd) } } };
  }
}

function txnResult(op: ResponseOp): TxnOpResult {
  switch (op.response.case) {
    case "responseRange":
      return { type: "range", kvs: op.response.value.kvs.map(keyValue), count: Number(op.response.value.count) };
    case "responsePut":
      return { type: "put" };
    case "responseDeleteRange":
      return { type: "delete", deleted: Number(op.response.value.deleted) };
    default:
      throw new Error(`unexpected txn response ${op.response.case}`);
  }
}

async function execute(connection: Connection, request: EtcdRequest, timeoutMs: number): Promise<EtcdResponse> {
  const options = { timeoutMs };
  const { kv, lease } = connection;
  switch (request.type) {
    case "range": {
      const response = await kv.range(
        { key: bytes(request.key), rangeEnd: rangeEndBytes(request.rangeEnd), revision: BigInt(request.revision ?? 0) },
        options,
      );
      return { type: "range", revision: Number(response.header?.revision), kvs: response.kvs.map(keyValue), count: Number(response.count) };
    }
    case "put": {
      const response = await kv.put({ key: bytes(request.key), value: bytes(request.value), lease: BigInt(request.lease ?? 0) }, options);
      return { type: "put", revision: Number(response.header?.revision) };
    }
    case "delete": {
      const response = await kv.deleteRange({ key: bytes(request.key), rangeEnd: rangeEndBytes(request.rangeEnd) }, options);
      return { type: "delete", revision: Number(response.header?.revision), deleted: Number(response.deleted) };
    }
    case "txn": {
      const response = await kv.txn(
        {
          compare: request.compares.map(compareMessage),
          success: request.success.map(requestOp),
          failure: request.failure.map(requestOp),
        },
        options,
      );
      return {
        type: "txn",
        revision: Number(response.header?.revision),
        succeeded: response.succeeded,
        results: response.responses.map(txnResult),
      };
    }
    case "leaseGrant": {
      const response = await lease.leaseGrant({ ID: BigInt(request.lease), TTL: BigInt(request.ttl) }, options);
      if (response.error !== "") throw new Error(response.error);
      return { type: "leaseGrant" };
    }
    case "leaseRevoke": {
      const response = await lease.leaseRevoke({ ID: BigInt(request.lease) }, options);
      return { type: "leaseRevoke", revision: Number(response.header?.revision) };
    }
    case "compact": {
      await kv.compact({ revision: BigInt(request.revision) }, options);
      return { type: "compact" };
    }
  }
}
