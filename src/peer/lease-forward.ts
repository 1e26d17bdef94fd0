// Lease renewals and time-to-live questions carried from a follower to the
// leader over the peer port (etcd's lease/leasehttp). Renewals do not go
// through Raft: only the leader's lessor knows when a lease expires, so a
// member that is not the leader asks the leader directly.
//
// Wire, as etcd's: `POST /leases` with a LeaseKeepAliveRequest body answers a
// LeaseKeepAliveResponse; `POST /leases/internal` with a LeaseInternalRequest
// (a LeaseTimeToLiveRequest in field 1) answers a LeaseInternalResponse (a
// LeaseTimeToLiveResponse in field 1). 404 means the lease is not found. The
// leader answers 503 while it is not (or not yet) the primary lessor and 408
// when an expired lease's revoke did not land in time; the follower retries
// both until its request timeout.
//
// edgetcd adds `POST /leases/batch`: renewals waiting for the same leader go
// together, as a sequence of LeaseKeepAliveRequest messages in field 1,
// answered by LeaseKeepAliveResponse messages in field 1, in the same order
// (TTL -1: not found, TTL -2: retry). A peer request costs the leader a few
// milliseconds, so a thousand leases kept alive through one follower would
// not keep up one request each.
import type { PeerRoute } from "./routes.ts";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  LeaseKeepAliveRequestSchema,
  LeaseKeepAliveResponseSchema,
  LeaseTimeToLiveRequestSchema,
  LeaseTimeToLiveResponseSchema,
  type LeaseKeepAliveResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { EtcdError, etcdError } from "../errors.ts";
import type { PeerFetch, PeerIncomingRequest } from "../ports.ts";
import type { NodeId } from "../raft/types.ts";
import { admitPeerRequest, type PeerAdmission } from "./admission.ts";
import { peerRequestHeaders } from "./headers.ts";
import { concatenated } from "../bytes.ts";

export const leasePaths = { renew: "/leases", timeToLive: "/leases/internal", renewBatch: "/leases/batch" } as const;

/** Renewals per batch request at most. */
export const renewBatchMax = 1000;
/** A lease request body is a few varints per lease; anything longer is refused unread. */
export const leaseRequestBytesMax = 32 * renewBatchMax;
/** Batch answers for a lease not found, and for one to retry. */
const batchTtlNotFound = -1n;
const batchTtlRetry = -2n;

const leaseNotFoundMessage = etcdError("leaseNotFound").message;
const notLeaderMessage = etcdError("notLeader").message;

export function isLeasePath(path: string): boolean {
  return path === leasePaths.renew || path === leasePaths.timeToLive || path === leasePaths.renewBatch;
}

// --- the leader's side -----------------------------------------------------

/** What the peer lease routes need from the member serving them. */
export interface LeaseRouteHost {
  clusterId: bigint;
  /** Renews on this member's primary lessor; throws notLeader when it is not primary, timeout when an expired lease stays. */
  renewHere(id: bigint): Promise<bigint>;
  /** Answers from this member's primary lessor (TTL -1 for an unknown lease); throws notLeader when it is not primary. */
  timeToLiveHere(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse>;
}

/** Serves POST /leases and /leases/internal. */
export async function serveLeaseRequest(request: PeerIncomingRequest, host: LeaseRouteHost): Promise<void> {
  if (request.method !== "POST") return answer(request, 405, "Method Not Allowed\n");
  let body: Uint8Array;
  try {
    body = await readBody(request.body, leaseRequestBytesMax);
  } catch {
    return answer(request, 400, "error reading body\n");
  }
  try {
    if (request.path === leasePaths.renew) {
      const renew = fromBinary(LeaseKeepAliveRequestSchema, body);
      const ttl = await host.renewHere(renew.ID);
      return answerProto(request, toBinary(LeaseKeepAliveResponseSchema, create(LeaseKeepAliveResponseSchema, { ID: renew.ID, TTL: ttl })));
    }
    if (request.path === leasePaths.renewBatch) return answerProto(request, await renewBatchHere(host, body));
    const inner = readField1(body);
    const question = fromBinary(LeaseTimeToLiveRequestSchema, inner);
    const response = await host.timeToLiveHere(question);
    if (response.TTL < 0n) return answer(request, 404, `${leaseNotFoundMessage}\n`);
    return answerProto(request, writeField1(toBinary(LeaseTimeToLiveResponseSchema, response)));
  } catch (error) {
    if (!(error instanceof EtcdError)) return answer(request, 400, "error unmarshalling request\n");
    if (error.message === leaseNotFoundMessage) return answer(request, 404, `${error.message}\n`);
    if (error.message === notLeaderMessage) return answer(request, 503, `${error.message}\n`);
    return answer(request, 408, `${error.message}\n`);
  }
}

/** Renews every lease of a batch; throws notLeader (the whole batch is retried) when this member is not primary. */
async function renewBatchHere(host: LeaseRouteHost, body: Uint8Array): Promise<Uint8Array> {
  const ids = readRepeatedField1(body).map((item) => fromBinary(LeaseKeepAliveRequestSchema, item).ID);
  if (ids.length > renewBatchMax) throw new Error(`lease batch over ${renewBatchMax}`);
  const ttls = await Promise.all(
    ids.map((id) =>
      host.renewHere(id).catch((error: unknown) => {
        if (error instanceof EtcdError && error.message === leaseNotFoundMessage) return batchTtlNotFound;
        if (error instanceof EtcdError && error.message === notLeaderMessage) throw error;
        return batchTtlRetry;
      }),
    ),
  );
  const writer = new BinaryWriter();
  ids.forEach((ID, index) => {
    const TTL = ttls[index] as bigint;
    writer.tag(1, WireType.LengthDelimited).bytes(toBinary(LeaseKeepAliveResponseSchema, create(LeaseKeepAliveResponseSchema, { ID, TTL })));
  });
  return writer.finish();
}

export function answer(request: PeerIncomingRequest, status: number, text: string): void {
  request.respond(status, { "content-type": "text/plain" });
  request.end(new TextEncoder().encode(text));
}

export function answerProto(request: PeerIncomingRequest, body: Uint8Array): void {
  request.respond(200, { "content-type": "application/protobuf" });
  request.end(body);
}

export async function readBody(body: AsyncIterable<Uint8Array>, bytesMax: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > bytesMax) throw new Error(`peer message over ${bytesMax} bytes`);
    chunks.push(chunk);
  }
  return concatenated(chunks);
}

/** leasepb's LeaseInternalRequest/Response hold one message, in field 1. */
function writeField1(message: Uint8Array): Uint8Array {
  return new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(message).finish();
}

function readRepeatedField1(body: Uint8Array): Uint8Array[] {
  const reader = new BinaryReader(body);
  const items: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) items.push(reader.bytes());
    else reader.skip(wireType);
  }
  return items;
}

function readField1(body: Uint8Array): Uint8Array {
  const reader = new BinaryReader(body);
  let inner: Uint8Array = new Uint8Array(0);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) inner = reader.bytes();
    else reader.skip(wireType);
  }
  return inner;
}

// --- the follower's side ---------------------------------------------------

/** One HTTP POST to a peer URL; the runtime-neutral default is the web-standard fetch. */
export type PeerPost = (
  url: string,
  body: Uint8Array,
  headers: Record<string, string>,
  timeoutMs: number,
) => Promise<{ status: number; body: Uint8Array }>;

/** A peer's answer to a lease or hash request is a few messages; a longer one is refused unread. */
export const peerAnswerBytesMax = 1024 * 1024;

/** A PeerPost over the peer network's fetch (TLS with this member's certificate for https peers). */
export function peerPostVia(fetchFn: PeerFetch): PeerPost {
  return async (url, body, headers, timeoutMs) => {
    const response = await fetchFn(url, {
      method: "POST",
      body: body as Uint8Array<ArrayBuffer>,
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const answer = response.body === null ? new Uint8Array(0) : await readBody(response.body, peerAnswerBytesMax);
    return { status: response.status, body: answer };
  };
}

export interface LeaseForwarderOptions {
  localId: NodeId;
  clusterId: bigint;
  post: PeerPost;
}

interface PendingRenewal {
  id: bigint;
  timeoutMs: number;
  resolve(ttl: bigint): void;
  reject(error: unknown): void;
}

/** Thrown for an answer worth retrying (no leader there, timeout, unreachable). */
export class LeaseForwardRetry extends Error {}

/**
 * Asks a leader over its peer URLs, in order, until one answers. Returns the
 * answer, throws leaseNotFound for a 404, and LeaseForwardRetry when no URL
 * gave a usable answer.
 */
export class LeaseForwarder {
  /** Renewals waiting for the batch in flight to their leader to finish. */
  private readonly pending = new Map<NodeId, PendingRenewal[]>();
  private readonly sending = new Set<NodeId>();

  constructor(private readonly options: LeaseForwarderOptions) {}

  /**
   * Renews through the leader. Renewals made while a batch to the same leader
   * is in flight go together in the next one.
   */
  renew(leader: NodeId, peerUrls: readonly string[], id: bigint, timeoutMs: number): Promise<bigint> {
    return new Promise((resolve, reject) => {
      const queue = this.pending.get(leader) ?? [];
      queue.push({ id, timeoutMs, resolve, reject });
      this.pending.set(leader, queue);
      if (!this.sending.has(leader)) void this.sendBatches(leader, peerUrls);
    });
  }

  private async sendBatches(leader: NodeId, peerUrls: readonly string[]): Promise<void> {
    this.sending.add(leader);
    // Let the renewals of this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      for (let queue = this.pending.get(leader); queue !== undefined && queue.length > 0; queue = this.pending.get(leader)) {
        const batch = queue.splice(0, renewBatchMax);
        if (queue.length === 0) this.pending.delete(leader);
        await this.sendBatch(leader, peerUrls, batch);
      }
    } finally {
      this.sending.delete(leader);
    }
  }

  private async sendBatch(leader: NodeId, peerUrls: readonly string[], batch: PendingRenewal[]): Promise<void> {
    const timeoutMs = Math.min(...batch.map((renewal) => renewal.timeoutMs));
    if (batch.length === 1) {
      const only = batch[0] as PendingRenewal;
      await this.renewOne(leader, peerUrls, only.id, timeoutMs).then(only.resolve, only.reject);
      return;
    }
    const writer = new BinaryWriter();
    for (const renewal of batch) {
      writer.tag(1, WireType.LengthDelimited).bytes(toBinary(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: renewal.id })));
    }
    let answers: LeaseKeepAliveResponse[];
    try {
      const body = await this.ask(leader, peerUrls, leasePaths.renewBatch, writer.finish(), timeoutMs);
      answers = readRepeatedField1(body).map((item) => fromBinary(LeaseKeepAliveResponseSchema, item));
    } catch (error) {
      const retry = error instanceof LeaseForwardRetry ? error : new LeaseForwardRetry(String(error));
      for (const renewal of batch) renewal.reject(retry);
      return;
    }
    batch.forEach((renewal, index) => {
      const answer = answers[index];
      if (answer === undefined || answer.ID !== renewal.id || answer.TTL === batchTtlRetry) renewal.reject(new LeaseForwardRetry("lease: renew not answered"));
      else if (answer.TTL === batchTtlNotFound) renewal.reject(etcdError("leaseNotFound"));
      else renewal.resolve(answer.TTL);
    });
  }

  private async renewOne(leader: NodeId, peerUrls: readonly string[], id: bigint, timeoutMs: number): Promise<bigint> {
    const body = toBinary(LeaseKeepAliveRequestSchema, create(LeaseKeepAliveRequestSchema, { ID: id }));
    const answer = await this.ask(leader, peerUrls, leasePaths.renew, body, timeoutMs);
    const response = fromBinary(LeaseKeepAliveResponseSchema, answer);
    if (response.ID !== id) throw new LeaseForwardRetry("lease: renew id mismatch");
    return response.TTL;
  }

  async timeToLive(
    leader: NodeId,
    peerUrls: readonly string[],
    request: LeaseTimeToLiveRequest,
    timeoutMs: number,
  ): Promise<LeaseTimeToLiveResponse> {
    const question = create(LeaseTimeToLiveRequestSchema, { ID: request.ID, keys: request.keys });
    const body = writeField1(toBinary(LeaseTimeToLiveRequestSchema, question));
    const answer = await this.ask(leader, peerUrls, leasePaths.timeToLive, body, timeoutMs);
    const response = fromBinary(LeaseTimeToLiveResponseSchema, readField1(answer));
    if (response.ID !== request.ID) throw new LeaseForwardRetry("lease: renew id mismatch");
    return response;
  }

  private async ask(leader: NodeId, peerUrls: readonly string[], path: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const headers = { ...peerRequestHeaders(this.options.localId, leader, this.options.clusterId), "content-type": "application/protobuf" };
    let failure = "no peer URL";
    for (const url of peerUrls) {
      try {
        const answer = await this.options.post(url.replace(/\/$/, "") + path, body, headers, timeoutMs);
        if (answer.status === 200) return answer.body;
        if (answer.status === 404) throw etcdError("leaseNotFound");
        failure = `lease: unknown error(${new TextDecoder().decode(answer.body).trim()})`;
      } catch (error) {
        if (error instanceof EtcdError) throw error;
        failure = error instanceof Error ? error.message : String(error);
      }
    }
    throw new LeaseForwardRetry(failure);
  }
}

/**
 * The lease routes of the peer port (src/peer/routes.ts). `host` is undefined
 * until the member is ready; until then they answer 503 (retried). A renewal
 * keeps a lease alive, so only a current member may ask (`admission`, as for
 * the Raft routes).
 */
export function leaseRoute(host: () => LeaseRouteHost | undefined, admission: PeerAdmission): PeerRoute {
  return {
    name: "lease renewals and time-to-live forwarded to the leader",
    matches: (request) => isLeasePath(request.path),
    handle(request) {
      if (admitPeerRequest(request, admission) === undefined) return;
      const serving = host();
      if (serving === undefined) return answer(request, 503, `${notLeaderMessage}\n`);
      void serveLeaseRequest(request, serving);
    },
  };
}
