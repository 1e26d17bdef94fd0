// etcdserverpb.Watch: the bidirectional watch stream (etcd's v3rpc
// serverWatchStream). A WatchSession owns one mvcc WatchStream and one bounded
// queue of responses in the order they were produced: created, events,
// progress and canceled responses never overtake each other. When the client
// reads slowly the queue fills and the store holds further responses for the
// watchers concerned (victims) until there is room again.
import type { ServiceImpl } from "@connectrpc/connect";
import { toBinary } from "@bufbuild/protobuf";
import {
  WatchCreateRequest_FilterType,
  WatchResponseSchema,
  type Watch,
  type WatchCreateRequest,
  type WatchRequest,
  type WatchResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { EventSchema, type Event } from "../gen/mvccpb/kv_pb.ts";
import { eventPut, invalidWatchId, keyString, unbounded, type WatchableStore, type WatchDelivery, type WatchStream } from "../server/facade.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import type { AuthInfo, AuthStore } from "../server/facade.ts";
import { callerOf } from "./auth-context.ts";

/** Responses a stream buffers before its watchers become victims (etcd's chanBufLen). */
export const watchStreamResponsesMax = 128;

/** What a session needs from the server. */
export interface WatchBackend {
  watchHub: WatchableStore;
  header: EtcdServer["header"];
  auth?: AuthStore;
}

/**
 * The caller must be allowed to read the whole watched range, as for a range
 * request (etcd's isWatchPermitted): a watch from a key to the end of the
 * keyspace needs a grant that is open-ended too.
 */
export function watchRefusal(server: WatchBackend, caller: AuthInfo | undefined): (request: WatchCreateRequest) => string | undefined {
  return (request) => {
    const auth = server.auth;
    if (auth === undefined || !auth.enabled) return undefined;
    try {
      auth.checkRange(caller, request.key, request.rangeEnd);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  };
}

export class WatchSession {
  private readonly stream: WatchStream;
  private readonly queue: WatchResponse[] = [];
  private wake: (() => void) | undefined;
  private readonly prevKvIds = new Set<bigint>();
  private readonly fragmentIds = new Set<bigint>();
  private closed = false;

  constructor(
    private readonly server: WatchBackend,
    /** Responses of fragmenting watchers are split above this size (etcd: max request bytes + gRPC overhead). */
    private readonly fragmentBytes: number,
    /** Why the caller may not watch a range (etcd's message), or undefined when it may; checked at each create. */
    private readonly refusal: (request: WatchCreateRequest) => string | undefined = () => undefined,
  ) {
    this.stream = server.watchHub.newStream({ send: (delivery, force) => this.deliver(delivery, force) });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Whether the queue is over its bound, so the request reader should wait before the next request. */
  get full(): boolean {
    return this.queue.length >= watchStreamResponsesMax;
  }

  handle(request: WatchRequest): void {
    const union = request.requestUnion;
    switch (union.case) {
      case "createRequest":
        this.create(union.value);
        return;
      case "cancelRequest":
        this.cancel(union.value.watchId);
        return;
      case "progressRequest":
        this.stream.requestProgress();
        return;
      default:
        // etcd ignores a request it does not know rather than ending the stream.
        return;
    }
  }

  /** Creates a watcher and queues its created (or failed) response; returns that response. */
  create(request: WatchCreateRequest): WatchResponse {
    const refused = this.refusal(request);
    if (refused !== undefined) {
      const response = this.response(this.stream.revision);
      response.created = true;
      response.canceled = true;
      response.watchId = invalidWatchId;
      response.cancelReason = refused;
      this.push(response);
      return response;
    }
    // etcd: an empty key is the smallest key "\0"; range_end "\0" means every key >= key.
    const key = request.key.length === 0 ? "\u0000" : keyString(request.key);
    let end: string | undefined;
    if (request.rangeEnd.length === 1 && request.rangeEnd[0] === 0) end = unbounded;
    else if (request.rangeEnd.length > 0) end = keyString(request.rangeEnd);
    const revision = this.stream.revision;
    const start = Number(request.startRevision);
    const result = this.stream.watch({
      id: request.watchId,
      key,
      end,
      startRevision: start === 0 ? revision + 1 : start,
      filters: {
        noPut: request.filters.includes(WatchCreateRequest_FilterType.NOPUT),
        noDelete: request.filters.includes(WatchCreateRequest_FilterType.NODELETE),
      },
      progressNotify: request.progressNotify,
    });
    const response = this.response(revision);
    response.created = true;
    if ("error" in result) {
      response.watchId = invalidWatchId;
      response.canceled = true;
      response.cancelReason = result.error;
    } else {
      response.watchId = result.id;
      if (request.prevKv) this.prevKvIds.add(result.id);
      if (request.fragment) this.fragmentIds.add(result.id);
    }
    // Queued before anything the new watcher can produce: the store sends nothing synchronously on create.
    this.push(response);
    return response;
  }

  cancel(watchId: bigint): void {
    if (!this.stream.cancel(watchId)) return;
    this.prevKvIds.delete(watchId);
    this.fragmentIds.delete(watchId);
    const response = this.response(this.stream.revision);
    response.watchId = watchId;
    response.canceled = true;
    this.push(response);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.close();
    this.queue.length = 0;
    this.wake?.();
  }

  /** Resolves once the queue is below its bound again (or the session closed). */
  async roomAvailable(): Promise<void> {
    while (this.full && !this.closed) await new Promise<void>((resolve) => (this.wake = chain(this.wake, resolve)));
  }

  /** The responses in order, until the session closes or `signal` aborts. */
  async *responses(signal: AbortSignal): AsyncGenerator<WatchResponse> {
    const onAbort = () => this.close();
    signal.addEventListener("abort", onAbort);
    try {
      while (!this.closed) {
        const next = this.queue.shift();
        if (next === undefined) {
          // Drained: give victims held for this stream their chance now.
          this.server.watchHub.kick();
          await new Promise<void>((resolve) => (this.wake = chain(this.wake, resolve)));
          continue;
        }
        if (this.queue.length < watchStreamResponsesMax) this.wakeAll();
        // Half drained: held victims can be retried before the queue runs dry.
        if (this.queue.length === watchStreamResponsesMax >> 1) this.server.watchHub.kick();
        yield next;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.close();
    }
  }

  // --- from the store --------------------------------------------------------

  private deliver(delivery: WatchDelivery, force: boolean): boolean {
    if (this.closed) return true;
    if (!force && this.full) return false;
    const response = this.response(delivery.revision);
    response.watchId = delivery.watchId;
    response.events = this.prevKvIds.has(delivery.watchId) ? this.withPrevKvs(delivery.events) : delivery.events;
    if (delivery.compactRevision !== 0) {
      response.compactRevision = BigInt(delivery.compactRevision);
      response.canceled = true;
      this.prevKvIds.delete(delivery.watchId);
      this.fragmentIds.delete(delivery.watchId);
    }
    if (this.fragmentIds.has(delivery.watchId)) this.pushFragments(response);
    else this.push(response);
    return true;
  }

  /** etcd attaches prev_kv at send time: the key at mod_revision-1, except on a create. */
  private withPrevKvs(events: Event[]): Event[] {
    const store = this.server.watchHub.store;
    return events.map((event) => {
      const kv = event.kv;
      if (kv === undefined || (event.type === eventPut && kv.createRevision === kv.modRevision)) return event;
      const before = Number(kv.modRevision) - 1;
      if (before < 1 || before < store.compactRevision) return event;
      const found = store.range(kv.key, undefined, { revision: before }).kvs[0];
      if (found === undefined) return event;
      return { $typeName: "mvccpb.Event", type: event.type, kv, prevKv: found };
    });
  }

  /** etcd's sendFragments: split only a response of 2+ events at or above the limit. */
  private pushFragments(response: WatchResponse): void {
    const events = response.events;
    if (events.length < 2 || toBinary(WatchResponseSchema, response).length < this.fragmentBytes) {
      this.push(response);
      return;
    }
    const emptySize = toBinary(WatchResponseSchema, { ...response, events: [], fragment: true }).length;
    let index = 0;
    while (index < events.length) {
      const part: Event[] = [];
      let size = emptySize;
      while (index < events.length) {
        const eventSize = embeddedSize(toBinary(EventSchema, events[index] as Event).length);
        if (part.length > 0 && size + eventSize >= this.fragmentBytes) break;
        part.push(events[index] as Event);
        size += eventSize;
        index++;
      }
      this.push({ ...response, events: part, fragment: index < events.length });
    }
  }

  private response(revision: number): WatchResponse {
    return {
      $typeName: "etcdserverpb.WatchResponse",
      header: this.server.header(BigInt(revision)),
      watchId: 0n,
      created: false,
      canceled: false,
      compactRevision: 0n,
      cancelReason: "",
      fragment: false,
      events: [],
    };
  }

  private push(response: WatchResponse): void {
    if (this.closed) return;
    this.queue.push(response);
    this.wakeAll();
  }

  private wakeAll(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

function chain(first: (() => void) | undefined, second: () => void): () => void {
  return first === undefined
    ? second
    : () => {
        first();
        second();
      };
}

/** Bytes a length-delimited field of `length` bytes takes: tag, varint length, payload. */
function embeddedSize(length: number): number {
  let varint = 1;
  for (let rest = length >>> 7; rest > 0; rest >>>= 7) varint++;
  return 1 + varint + length;
}

export function watchService(server: WatchBackend, fragmentBytes: number): ServiceImpl<typeof Watch> {
  return {
    watch(requests, context) {
      const session = new WatchSession(server, fragmentBytes, watchRefusal(server, callerOf(context)));
      // Requests are read concurrently with responses being written. After the
      // client half-closes, etcd keeps the stream (and its watchers) open.
      void (async () => {
        try {
          for await (const request of requests) {
            if (session.isClosed) return;
            session.handle(request);
            await session.roomAvailable();
          }
        } catch {
          session.close();
        }
      })();
      return session.responses(context.signal);
    },
  };
}
