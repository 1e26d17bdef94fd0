// The node: owns the WAL, the log, the backend and MVCC, and carries a write
// from proposal to reply: propose → log (WAL + fdatasync, batched) → apply to
// MVCC (data and consistent index in one backend transaction) → reply.
// Reads are served from applied state.
import { create } from "@bufbuild/protobuf";
import {
  MemberSchema,
  ResponseHeaderSchema,
  type CompactionRequest,
  type CompactionResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type Member,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
  type TxnResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { etcdError } from "../errors.ts";
import type { Entry } from "../raft/types.ts";
import type { Logger, Runtime, Timer } from "../ports.ts";
import { Backend } from "../storage/backend.ts";
import { Wal } from "../storage/wal/wal.ts";
import { MvccStore } from "../mvcc/store.ts";
import { WatchableStore } from "../mvcc/watchable-store.ts";
import { WatchScheduler } from "../mvcc/watch-scheduler.ts";
import { isTxnReadOnly, KvApplier } from "./apply-kv.ts";
import type { ServerConfig } from "./config.ts";
import { clusterIdOf, decodeMemberMetadata, encodeMemberMetadata, memberIdOf, type MemberIdentity } from "./identity.ts";
import { LocalLog } from "./local-log.ts";
import { decodeRequest, encodeRequest, RequestKind, type InternalRequest } from "./request-codec.ts";

/** The etcd API version we speak; clients gate features on it. */
export const serverVersion = "3.5.0";
export const clusterVersion = "3.5.0";

type Waiter = { resolve: (value: unknown) => void; reject: (error: unknown) => void };

export class EtcdServer {
  readonly version = serverVersion;
  readonly clusterVersion = clusterVersion;
  private readonly waiters = new Map<number, Waiter>();
  private nextRequestId = 1;
  private appliedIndex = 0;
  private backendTimer: Timer | undefined;
  private stoppedReason: string | undefined;
  /** Watchers over the store; the Watch services open streams on it. */
  readonly watchHub: WatchableStore;
  private readonly watchScheduler: WatchScheduler;

  private constructor(
    readonly config: ServerConfig,
    private readonly runtime: Runtime,
    private readonly logger: Logger,
    readonly identity: MemberIdentity,
    private readonly wal: Wal,
    private readonly backend: Backend,
    private readonly store: MvccStore,
    private readonly applier: KvApplier,
    private readonly log: LocalLog,
    private readonly releaseLock: () => Promise<void>,
  ) {
    this.watchHub = new WatchableStore(store);
    this.watchScheduler = new WatchScheduler(this.watchHub, runtime.clock, {
      progressNotifyIntervalMs: config.watchProgressNotifyIntervalMs,
    });
  }

  static async start(runtime: Runtime, config: ServerConfig, logger: Logger): Promise<EtcdServer> {
    const { fs } = runtime;
    const memberDir = fs.join(config.dataDir, "member");
    const walDir = fs.join(memberDir, "wal");
    const snapDir = fs.join(memberDir, "snap");
    await fs.mkdirp(snapDir);
    const lock = await fs.lock(fs.join(memberDir, "lock"));
    try {
      let identity: MemberIdentity;
      let wal: Wal;
      let entries: Entry[] = [];
      let term: number;
      if (await fs.exists(walDir)) {
        const opened = await Wal.open(fs, walDir);
        wal = opened.wal;
        identity = decodeMemberMetadata(opened.metadata);
        entries = opened.entries;
        // Each restart of a single member is a new election: a new term.
        term = (opened.hardState?.term ?? 0) + 1;
        logger.info("recovered WAL", { entries: entries.length, "member-id": identity.memberId.toString(16) });
      } else {
        const memberId = await memberIdOf(config.initialAdvertisePeerUrls, config.initialClusterToken);
        identity = {
          name: config.name,
          memberId,
          clusterId: await clusterIdOf([memberId]),
          peerUrls: config.initialAdvertisePeerUrls,
        };
        wal = await Wal.create(fs, walDir, encodeMemberMetadata(identity));
        term = 1;
        logger.info("created new WAL", { "member-id": identity.memberId.toString(16) });
      }

      const backend = Backend.open(runtime.sqlite, fs.join(snapDir, "db"));
      const store = new MvccStore(backend, { compactionBatchLimit: config.compactionBatchLimit });
      const applier = new KvApplier(store);
      const lastIndex = entries.length > 0 ? (entries[entries.length - 1] as Entry).index : backend.consistentIndex();
      let server: EtcdServer | undefined;
      const log = new LocalLog({
        wal,
        memberId: identity.memberId,
        term,
        lastIndex,
        apply: (committed) => server?.applyEntries(committed),
        fatal: (error) => server?.fail(error),
      });
      server = new EtcdServer(config, runtime, logger, identity, wal, backend, store, applier, log, () => lock.release());
      // Replay what the WAL has past the backend's consistent index.
      server.appliedIndex = backend.consistentIndex();
      server.applyEntries(entries);
      backend.commit();
      server.log.proposeEmpty();
      return server;
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  // --- reads -------------------------------------------------------------

  async range(request: RangeRequest): Promise<RangeResponse> {
    this.assertServing();
    const response = this.applier.range(request);
    response.header = this.header(response.header?.revision);
    return response;
  }

  // --- writes ------------------------------------------------------------

  put(request: PutRequest): Promise<PutResponse> {
    return this.propose({ kind: RequestKind.Put, id: this.nextRequestId++, request });
  }

  deleteRange(request: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.propose({ kind: RequestKind.DeleteRange, id: this.nextRequestId++, request });
  }

  txn(request: TxnRequest): Promise<TxnResponse> {
    // A read-only txn needs no log entry (etcd serves it like a range).
    if (isTxnReadOnly(request)) {
      this.assertServing();
      const response = this.applier.txn(request);
      response.header = this.header(response.header?.revision);
      return Promise.resolve(response);
    }
    return this.propose({ kind: RequestKind.Txn, id: this.nextRequestId++, request });
  }

  compact(request: CompactionRequest): Promise<CompactionResponse> {
    return this.propose({ kind: RequestKind.Compact, id: this.nextRequestId++, request });
  }

  private propose<T>(internal: InternalRequest): Promise<T> {
    this.assertServing();
    const data = encodeRequest(internal);
    if (data.length > this.config.maxRequestBytes) return Promise.reject(etcdError("requestTooLarge"));
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(internal.id, { resolve: resolve as (value: unknown) => void, reject });
      try {
        this.log.propose(data);
      } catch (error) {
        this.waiters.delete(internal.id);
        reject(error);
      }
    });
  }

  // --- apply -------------------------------------------------------------

  /** Applies durable entries in order; idempotent below the consistent index. */
  private applyEntries(entries: Entry[]): void {
    for (const entry of entries) {
      if (entry.index <= this.appliedIndex) continue;
      let result: unknown;
      let failure: unknown;
      if (entry.data.length > 0) {
        const internal = decodeRequest(entry.data);
        try {
          result = this.applyRequest(internal);
        } catch (error) {
          failure = error;
        }
        this.backend.setConsistentIndex(entry.index, entry.term);
        const waiter = this.waiters.get(internal.id);
        if (waiter !== undefined) {
          this.waiters.delete(internal.id);
          if (failure !== undefined) waiter.reject(failure);
          else waiter.resolve(result);
        }
      } else {
        this.backend.setConsistentIndex(entry.index, entry.term);
      }
      this.appliedIndex = entry.index;
    }
    this.scheduleBackendCommit();
  }

  private applyRequest(internal: InternalRequest): unknown {
    let response: { header?: ResponseHeader | undefined };
    switch (internal.kind) {
      case RequestKind.Put:
        response = this.applier.put(internal.request);
        break;
      case RequestKind.DeleteRange:
        response = this.applier.deleteRange(internal.request);
        break;
      case RequestKind.Txn:
        response = this.applier.txn(internal.request);
        break;
      case RequestKind.Compact:
        response = this.applier.compact(internal.request);
        break;
    }
    response.header = this.header(response.header?.revision);
    return response;
  }

  private scheduleBackendCommit(): void {
    if (this.backend.pendingWrites >= this.config.backendBatchLimit) {
      this.commitBackend();
      return;
    }
    if (this.backendTimer === undefined && this.backend.pendingWrites > 0) {
      this.backendTimer = this.runtime.clock.setTimer(this.config.backendBatchIntervalMs, () => this.commitBackend());
    }
  }

  private commitBackend(): void {
    this.backendTimer?.cancel();
    this.backendTimer = undefined;
    this.backend.commit();
  }

  // --- status ------------------------------------------------------------

  header(revision?: bigint): ResponseHeader {
    return create(ResponseHeaderSchema, {
      clusterId: this.identity.clusterId,
      memberId: BigInt(this.identity.memberId),
      revision: revision ?? BigInt(this.store.currentRevision),
      raftTerm: BigInt(this.log.term),
    });
  }

  members(): Member[] {
    return [
      create(MemberSchema, {
        ID: BigInt(this.identity.memberId),
        name: this.identity.name,
        peerURLs: this.identity.peerUrls,
        clientURLs: this.config.advertiseClientUrls,
        isLearner: false,
      }),
    ];
  }

  status() {
    return {
      version: this.version,
      dbSizeBytes: this.backend.sizeBytes(),
      dbSizeInUseBytes: this.backend.sizeInUseBytes(),
      leader: BigInt(this.identity.memberId),
      raftIndex: this.log.lastIndex,
      raftTerm: this.log.term,
      raftAppliedIndex: this.appliedIndex,
      isLearner: false,
      errors: [] as string[],
    };
  }

  hashKV(revision: number): { hash: number; compactRevision: number } {
    return this.store.hashKV(revision);
  }

  /** Why the member is not healthy, or undefined when it is. */
  healthProblem(): string | undefined {
    return this.stoppedReason;
  }

  // --- lifecycle ---------------------------------------------------------

  private assertServing(): void {
    if (this.stoppedReason !== undefined) throw etcdError("stopped");
  }

  /** A failed save: stop serving at once; nothing more is acknowledged. */
  private fail(error: unknown): void {
    this.stoppedReason = `storage failure: ${error instanceof Error ? error.message : String(error)}`;
    this.logger.error("failed to save WAL entries; stopping", { error: this.stoppedReason });
    for (const waiter of this.waiters.values()) waiter.reject(etcdError("stopped"));
    this.waiters.clear();
  }

  get failed(): boolean {
    return this.stoppedReason !== undefined;
  }

  async stop(): Promise<void> {
    this.stoppedReason ??= "server stopped";
    this.backendTimer?.cancel();
    this.watchScheduler.stop();
    for (const waiter of this.waiters.values()) waiter.reject(etcdError("stopped"));
    this.waiters.clear();
    this.backend.commit();
    this.backend.close();
    await this.wal.close();
    await this.releaseLock();
  }
}
