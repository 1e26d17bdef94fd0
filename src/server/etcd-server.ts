// The node, the facade the API talks to: reads (after the log's read barrier)
// and writes (proposals.ts: propose → Raft log, WAL + fdatasync, batched →
// apply here: data and consistent index in one backend transaction → reply),
// the apply of committed entries and of a leader's snapshot, snapshots of its
// own, status, and its lifecycle (fail, removal, stop). Its other halves:
// bootstrap.ts starts it, leases.ts, membership.ts, raft-log.ts.
import { create } from "@bufbuild/protobuf";
import {
  AlarmRequest_AlarmAction,
  AlarmRequestSchema,
  AlarmType,
  type AlarmRequest,
  type AlarmResponse,
  MemberSchema,
  ResponseHeaderSchema,
  type CompactionRequest,
  type CompactionResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type Member,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
  type TxnResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { EtcdError, etcdError } from "../errors.ts";
import { decodeConfChange } from "../raft/conf-change-codec.ts";
import {
  EntryType,
  MessageType,
  type Entry,
  type Message,
  type NodeId,
  type Snapshot,
} from "../raft/types.ts";
import { SnapshotFiles, type SnapshotExport } from "./snapshot-files.ts";
import type { Clock, Logger, PeerFetch, Runtime, Timer } from "../ports.ts";
import { Lessor, minLeaseTtlSeconds } from "../lease/lessor.ts";
import { PeerTransport } from "../peer/transport.ts";
import { Backend } from "../storage/backend.ts";
import { bboltPageBytes, writeBbolt } from "../storage/bbolt.ts";
import { etcdBucketsOf } from "./etcd-snapshot.ts";
import type { CorruptionCheck } from "./corruption.ts";
import type { CrashPoints } from "../storage/crash-points.ts";
import { Wal } from "../storage/wal/wal.ts";
import { MvccStore } from "../mvcc/store.ts";
import { WatchableStore } from "../mvcc/watchable-store.ts";
import { WatchScheduler } from "../mvcc/watch-scheduler.ts";
import { isTxnReadOnly, KvApplier } from "./apply-kv.ts";
import { requestTimeoutMs, type ServerConfig } from "./config.ts";
import { type MemberIdentity } from "./identity.ts";
import { MemberStore, type MemberRecord } from "./members.ts";
import { RaftFailure, RaftLog } from "./raft-log.ts";
import { Leases } from "./leases.ts";
import { Membership } from "./membership.ts";
import { RequestApplier } from "./apply.ts";
import { Proposals } from "./proposals.ts";
import { clusterVersion, serverVersion } from "../version.ts";
import type { MetricsView } from "./metrics.ts";
import { decodeRequest, RequestKind, type InternalRequest, type RequestOf } from "./request-codec.ts";
import { AuthStore, usernameBytesMax, type AuthInfo } from "../auth/store.ts";
import { AuthTokens } from "../auth/tokens.ts";
import { checkTxnPermitted } from "../auth/request-checks.ts";
import { AlarmStore } from "./alarms.ts";
import { leaseOverheadBytes, putCostBytes, quotaBytesOf, txnCostBytes } from "./quota.ts";
import type { PasswordHasher } from "../ports.ts";
import { concatenated } from "../bytes.ts";

/** Requests that change users, roles or the enabled flag, or log a user in. */
export type AuthRequestKind =
  | RequestKind.AuthEnable
  | RequestKind.AuthDisable
  | RequestKind.Authenticate
  | RequestKind.AuthUserAdd
  | RequestKind.AuthUserDelete
  | RequestKind.AuthUserChangePassword
  | RequestKind.AuthUserGrantRole
  | RequestKind.AuthUserRevokeRole
  | RequestKind.AuthRoleAdd
  | RequestKind.AuthRoleDelete
  | RequestKind.AuthRoleGrantPermission
  | RequestKind.AuthRoleRevokePermission;

export { clusterVersion, serverVersion } from "../version.ts";

/** How long /health waits for its linearizable read (etcd's QGET deadline). */
const healthReadTimeoutMs = 1000;

export class EtcdServer {
  readonly version = serverVersion;
  readonly clusterVersion = clusterVersion;
  private readonly proposals: Proposals;
  private appliedIndex = 0;
  private snapshotting = false;
  private backendTimer: Timer | undefined;
  private stoppedReason: string | undefined;
  /** Watchers over the store; the Watch services open streams on it. */
  readonly watchHub: WatchableStore;
  private readonly watchScheduler: WatchScheduler;
  /** The lease table; every member applies the same grants and revokes, the leader expires leases. */
  readonly lessor: Lessor;
  private readonly leases: Leases;
  private readonly membership: Membership;
  private readonly requests: RequestApplier;
  /** Carries renewals and time-to-live questions from this member to the leader (etcd's leasehttp). */
  /** Users, roles and permissions, as applied from the log. */
  readonly auth: AuthStore;
  /** NOSPACE and CORRUPT alarms, as applied from the log. */
  readonly alarms: AlarmStore;
  /** --quota-backend-bytes; undefined when the quota is off. */
  private readonly quotaBytes: number | undefined;
  /**
   * The backend's size as of its last commit (or defragmentation, or
   * snapshot), for the quota check: read on every write, so it is kept here
   * rather than asked of SQLite each time (etcd reads bbolt's size the same way).
   */
  private backendSizeBytes = 0;
  private markPublished: () => void = () => {};
  /** Counted here for etcd's metrics (src/server/metrics.ts): since this process started. */
  /** Counts reported on /metrics; the client port's gRPC path adds the bytes of the messages it reads and writes. */
  readonly stats = { leaderChanges: 0, healthChecksPassed: 0, healthChecksFailed: 0, clientGrpcReceivedBytes: 0, clientGrpcSentBytes: 0 };
  /**
   * Resolves once this member's name and client URLs are applied (through
   * Raft, as every change, a single member's too): etcd says "ready to serve client requests" only
   * then, and clients that list members on that word expect every listed
   * member to carry its client URLs.
   */
  readonly published: Promise<void> = new Promise<void>((resolve) => (this.markPublished = resolve));

  /** Built by startServer (bootstrap.ts), which opens and wires the pieces. */
  constructor(
    readonly config: ServerConfig,
    private readonly runtime: Runtime,
    private readonly logger: Logger,
    readonly identity: MemberIdentity,
    private readonly wal: Wal,
    private readonly backend: Backend,
    private readonly store: MvccStore,
    private readonly applier: KvApplier,
    private readonly log: RaftLog,
    private readonly memberStore: MemberStore,
    private readonly transport: PeerTransport | undefined,
    private readonly snapshotFiles: SnapshotFiles,
    private readonly crashPoints: CrashPoints | undefined,
    private readonly releaseLock: () => Promise<void>,
    /** One-off requests to peers (lease forwarding): TLS with the peer certificate when peer TLS is on. */
    peerFetch: PeerFetch,
    /** The tokens Authenticate hands out (--auth-token). */
    readonly tokens: AuthTokens,
  ) {
    this.proposals = new Proposals({
      memberId: identity.memberId,
      clock: runtime.clock,
      requestTimeoutMs: requestTimeoutMs(config),
      pollMs: config.heartbeatIntervalMs,
      maxRequestBytes: config.maxRequestBytes,
      log,
      isRemoved: (id) => memberStore.isRemoved(id),
      assertServing: () => this.assertServing(),
      // Request ids must not repeat across restarts: the WAL may still hold entries this member
      // proposed before it went down, and applying one would answer a new request with its old
      // result. Like etcd's idutil, the counter starts from the time (ms × 256).
      counterStart: Math.floor(runtime.clock.wallMs() * 256),
    });
    this.membership = new Membership({
      memberId: identity.memberId,
      log,
      members: memberStore,
      transport,
      proposals: this.proposals,
      clock: runtime.clock,
      digest: runtime.digest,
      logger,
      requestTimeoutMs: requestTimeoutMs(config),
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      assertServing: () => this.assertServing(),
      stopped: () => this.stoppedReason !== undefined,
      onRemovedSelf: () => this.removedFromCluster(),
    });
    this.auth = new AuthStore(backend, tokens);
    this.alarms = new AlarmStore(backend);
    this.quotaBytes = quotaBytesOf(config.quotaBackendBytes);
    this.backendSizeBytes = backend.sizeBytes();
    this.watchHub = new WatchableStore(store);
    this.watchScheduler = new WatchScheduler(this.watchHub, runtime.clock, {
      progressNotifyIntervalMs: config.watchProgressNotifyIntervalMs,
    });
    // The lessor exists before any entry is replayed: replayed puts attach keys to it.
    this.lessor = new Lessor({
      backend,
      clock: runtime.clock,
      minTtlSeconds: minLeaseTtlSeconds(config.heartbeatIntervalMs, config.electionTimeoutMs),
      expiredRetryMs: requestTimeoutMs(config),
      checkpointIntervalMs: config.leaseCheckpointIntervalMs,
    });
    this.lessor.attachRestored(store.restoredLeases);
    applier.leaseExists = (leaseId) => this.lessor.lookup(leaseId) !== undefined;
    this.requests = new RequestApplier({
      kv: applier,
      store,
      lessor: this.lessor,
      auth: this.auth,
      tokens,
      alarms: this.alarms,
      members: memberStore,
      logger,
      header: (revision) => this.header(revision),
    });
    const watchers = store.onCommitted;
    store.onCommitted = (events, revision) => {
      watchers?.(events, revision);
      this.lessor.observe(events);
    };
    this.leases = new Leases({
      memberId: identity.memberId,
      clusterId: identity.clusterId,
      lessor: this.lessor,
      proposals: this.proposals,
      clock: runtime.clock,
      random: runtime.random,
      logger,
      peerFetch,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      electionTimeoutMs: config.electionTimeoutMs,
      requestTimeoutMs: requestTimeoutMs(config),
      leader: () => this.log.leader,
      peerUrlsOf: (id) => memberStore.get(id)?.peerUrls ?? [],
      authRevision: () => this.auth.revision,
      checkQuota: (costBytes) => this.checkQuota(costBytes),
      grantCostBytes: leaseOverheadBytes,
      assertServing: () => this.assertServing(),
      header: () => this.header(),
    });
  }

  /**
   * Called once by the node's start (bootstrap.ts) when every piece is in
   * place: replay goes on from the backend's consistent index, a failure met
   * before the server existed fails it now, a voter alone leads at once, the
   * member publishes itself, and leases start expiring.
   */
  begin(start: { applied: number; onFatal: ((reason: string) => void) | undefined; failedBefore: unknown; campaign: boolean }): void {
    this.appliedIndex = start.applied;
    this.onFatal = start.onFatal;
    if (start.failedBefore !== undefined) this.fail(start.failedBefore);
    if (start.campaign) this.log.campaign();
    // Queued behind the campaign's first Ready (a microtask), which tells a
    // voter alone that it leads: it publishes at once instead of polling for
    // a leader a heartbeat later.
    queueMicrotask(() => void this.publishAttributes());
    this.backend.commit();
    this.leases.start();
  }

  /** The Raft log's calls into the node, wired by bootstrap.ts before the server exists. */
  readonly fromLog = {
    apply: (entries: Entry[], snapshot: Snapshot | undefined): Promise<void> => this.applyCommitted(entries, snapshot),
    send: (messages: Message[], transport: PeerTransport): void => this.sendMessages(messages, transport),
    leaderChanged: (): void => {
      this.stats.leaderChanges++;
    },
    fatal: (error: unknown): void => this.fail(error),
  };

  /** A current member told this one it was removed (the peer transport; bootstrap.ts checks who said it). */
  removedBy(by: NodeId): void {
    this.removedFromCluster(by);
  }

  // --- reads -------------------------------------------------------------

  async range(request: RangeRequest, auth?: AuthInfo): Promise<RangeResponse> {
    this.assertServing();
    if (!request.serializable) await this.log.readBarrier();
    this.auth.checkRange(auth, request.key, request.rangeEnd);
    const response = this.applier.range(request);
    this.auth.checkUnchangedSince(auth);
    response.header = this.header(response.header?.revision);
    return response;
  }

  /** Waits until this member has applied everything committed when it was called (a linearizable read's barrier). */
  readBarrier(): Promise<void> {
    this.assertServing();
    return this.log.readBarrier();
  }

  /** Proposes a user or role change (or a checked login); answers when it is applied. */
  proposeAuth<K extends AuthRequestKind>(kind: K, request: RequestOf<K>, auth: AuthInfo | undefined): Promise<unknown> {
    return this.proposals.propose({ kind, id: this.proposals.nextId(), auth, request } as InternalRequest);
  }

  /**
   * The user a call runs as: its token's, else (with --client-cert-auth) its
   * verified certificate's CommonName, else nobody. A token that is not valid
   * is refused even with auth off, as etcd refuses it.
   */
  async authInfoFrom(token: string | undefined, commonName: string | undefined): Promise<AuthInfo | undefined> {
    if (token !== undefined) {
      const info = await this.tokens.info(token, this.auth.revision);
      if (info === undefined) throw etcdError("invalidAuthToken");
      return info;
    }
    // A name longer than any user can have (usernameBytesMax; a UTF-16 unit is at most 3 UTF-8 bytes) names nobody.
    if (commonName !== undefined && commonName !== "" && commonName.length <= usernameBytesMax / 3 && this.config.clientCertAuth) {
      return { username: commonName, revision: this.auth.revision };
    }
    return undefined;
  }

  /** bcrypt off the event loop. */
  get passwords(): PasswordHasher {
    return this.runtime.passwords;
  }

  // --- writes ------------------------------------------------------------

  async put(request: PutRequest, auth?: AuthInfo): Promise<PutResponse> {
    await this.checkQuota(putCostBytes(request));
    return this.proposals.propose({ kind: RequestKind.Put, id: this.proposals.nextId(), auth, request });
  }

  deleteRange(request: DeleteRangeRequest, auth?: AuthInfo): Promise<DeleteRangeResponse> {
    return this.proposals.propose({ kind: RequestKind.DeleteRange, id: this.proposals.nextId(), auth, request });
  }

  txn(request: TxnRequest, auth?: AuthInfo): Promise<TxnResponse> {
    // A read-only txn needs no log entry (etcd serves it like a range).
    if (isTxnReadOnly(request)) {
      this.assertServing();
      return this.log.readBarrier().then(() => {
        checkTxnPermitted(this.auth, auth, request);
        const response = this.applier.txn(request);
        this.auth.checkUnchangedSince(auth);
        response.header = this.header(response.header?.revision);
        return response;
      });
    }
    return this.checkQuota(txnCostBytes(request)).then(() => this.proposals.propose({ kind: RequestKind.Txn, id: this.proposals.nextId(), auth, request }));
  }

  /**
   * etcd's quota check before proposing: a write that would take the backend
   * past --quota-backend-bytes raises the NOSPACE alarm (through the log, for
   * every member) and fails with "database space exceeded".
   */
  private async checkQuota(costBytes: number): Promise<void> {
    if (this.quotaBytes === undefined || costBytes === 0) return;
    if (this.backendSizeBytes + costBytes < this.quotaBytes) return;
    const raise = create(AlarmRequestSchema, { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: BigInt(this.identity.memberId), alarm: AlarmType.NOSPACE });
    if (!this.alarms.has(AlarmType.NOSPACE)) {
      this.logger.warn("backend quota exceeded: raising the NOSPACE alarm", { "quota-bytes": this.quotaBytes, "db-size-bytes": this.backendSizeBytes });
      await this.alarm(raise).catch(() => undefined);
    }
    throw etcdError("noSpace");
  }

  /** Lists, raises or clears alarms, through the log as etcd does. */
  alarm(request: AlarmRequest): Promise<AlarmResponse> {
    return this.proposals.propose({ kind: RequestKind.Alarm, id: this.proposals.nextId(), request });
  }

  compact(request: CompactionRequest, auth?: AuthInfo): Promise<CompactionResponse> {
    return this.proposals.propose({ kind: RequestKind.Compact, id: this.proposals.nextId(), auth, request });
  }

  // --- leases ------------------------------------------------------------

  get isLeader(): boolean {
    return this.log.leader === this.identity.memberId;
  }

  /** The runtime's clock, for services that pace themselves (keep-alive streams). */
  get clock(): Clock {
    return this.runtime.clock;
  }

  // Leases: src/server/leases.ts.
  leaseGrant(request: LeaseGrantRequest, auth?: AuthInfo): Promise<LeaseGrantResponse> {
    return this.leases.grant(request, auth);
  }

  leaseRevoke(request: LeaseRevokeRequest, auth?: AuthInfo): Promise<LeaseRevokeResponse> {
    return this.leases.revoke(request, auth);
  }

  /** The cluster id, for the peer lease routes. */
  get clusterId(): bigint {
    return this.identity.clusterId;
  }

  leaseRenew(id: bigint): Promise<bigint> {
    return this.leases.renew(id);
  }

  /** A renewal forwarded by another member (the peer lease routes). */
  renewHere(id: bigint): Promise<bigint> {
    return this.leases.renewHere(id);
  }

  leaseTimeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.leases.timeToLive(request);
  }

  /** A time-to-live forwarded by another member (the peer lease routes). */
  timeToLiveHere(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.leases.timeToLiveHere(request);
  }

  leaseLeases(): LeaseLeasesResponse {
    return this.leases.leases();
  }


  // --- apply -------------------------------------------------------------

  /**
   * Sends raft messages; a snapshot message gets the backend's current data
   * (etcd's merged snapshot message): the backend may be ahead of the
   * snapshot's index, and the receiver skips the entries it already holds by
   * its consistent index.
   */
  private sendMessages(messages: Message[], transport: PeerTransport): void {
    if (!messages.some((message) => message.type === MessageType.Snap)) return transport.send(messages);
    transport.send(messages.filter((message) => message.type !== MessageType.Snap));
    for (const message of messages) {
      if (message.type !== MessageType.Snap || message.snapshot === undefined) continue;
      const snapshot = message.snapshot;
      this.snapshotFiles
        .readCopy(this.backend)
        .then((data) => {
          this.logger.info("sending database snapshot", {
            "remote-peer-id": message.to.toString(16),
            "snapshot-index": snapshot.metadata.index,
            bytes: data.length,
          });
          transport.send([{ ...message, snapshot: { ...snapshot, data } }]);
        })
        .catch((error: unknown) => {
          this.logger.warn("failed to copy the backend for a snapshot", { error: String(error) });
          this.log.reportSnapshot(message.to, false);
        });
    }
  }

  /** Committed entries from Raft, after the snapshot it hands over (if any). */
  private async applyCommitted(entries: Entry[], snapshot: Snapshot | undefined): Promise<void> {
    if (snapshot !== undefined) await this.installSnapshot(snapshot);
    this.applyEntries(entries);
  }

  /**
   * Replaces this member's state with the leader's snapshot: the backend file,
   * then everything held in memory over it (key index, watchers, leases,
   * members, peers). Entries the new backend already holds are skipped by the
   * consistent index.
   */
  private async installSnapshot(snapshot: Snapshot): Promise<void> {
    if (this.backendTimer !== undefined) {
      this.backendTimer.cancel();
      this.backendTimer = undefined;
    }
    this.crashPoints?.hit("snapshot-before-apply");
    await this.snapshotFiles.swapIn(this.backend);
    this.crashPoints?.hit("snapshot-after-apply");
    this.store.reload();
    this.auth.reload();
    this.alarms.reload();
    this.backendSizeBytes = this.backend.sizeBytes();
    this.watchHub.storeReplaced();
    this.lessor.reload(this.store.restoredLeases);
    this.memberStore.reload();
    this.transport?.setPeers(this.memberStore.all());
    this.appliedIndex = Math.max(this.backend.consistentIndex(), snapshot.metadata.index);
    this.log.markApplied(this.appliedIndex);
    this.logger.info("applied snapshot from the leader", {
      "snapshot-index": snapshot.metadata.index,
      "consistent-index": this.backend.consistentIndex(),
      revision: this.store.currentRevision,
    });
  }

  /**
   * etcd's snapshot trigger: more than --snapshot-count entries applied since
   * the last snapshot. The backend is made durable first, then the log
   * records the snapshot and lets go of what precedes it.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.appliedIndex - this.log.snapshotIndex <= this.config.snapshotCount) return;
    this.snapshotting = true;
    const run = async () => {
      this.crashPoints?.hit("snapshot-before-save");
      this.backend.checkpoint();
      await this.log.snapshot(this.config.snapshotCatchUpEntries);
      this.logger.info("saved snapshot", { "snapshot-index": this.log.snapshotIndex });
    };
    run()
      .catch((error: unknown) => this.fail(error))
      .finally(() => {
        this.snapshotting = false;
      });
  }

  /** Applies durable entries in order; idempotent below the consistent index. */
  private applyEntries(entries: Entry[]): void {
    for (const entry of entries) {
      if (entry.index <= this.appliedIndex) {
        // Only after a snapshot whose backend was ahead of its index: the data
        // is there already, but Raft's configuration must still take the change.
        if (entry.type === EntryType.ConfChange) this.log.applyConfChange(decodeConfChange(entry.data));
        continue;
      }
      let result: unknown;
      let failure: unknown;
      if (entry.type === EntryType.ConfChange) {
        this.membership.apply(entry);
        this.backend.setConsistentIndex(entry.index, entry.term);
      } else if (entry.data.length > 0) {
        let internal: InternalRequest;
        try {
          internal = decodeRequest(entry.data);
        } catch (error) {
          throw new ApplyFailure(entry.index, error);
        }
        try {
          result = this.requests.apply(internal, entry.index);
        } catch (error) {
          // etcd's own errors go to the client; anything else is a bug, and
          // the member stops (as etcd panics) before this entry counts as
          // applied: a restart applies it again, from the WAL.
          if (!(error instanceof EtcdError)) throw new ApplyFailure(entry.index, error);
          failure = error;
        }
        this.backend.setConsistentIndex(entry.index, entry.term);
        const waiter = this.proposals.take(internal.id);
        if (waiter !== undefined) {
          if (failure !== undefined) waiter.reject(failure);
          else waiter.resolve(result);
        }
      } else {
        this.backend.setConsistentIndex(entry.index, entry.term);
        // A term's first (empty) entry applied on its leader: take over lease
        // expiry, every lease extended by an election timeout (etcd's promote).
        if (this.isLeader) this.lessor.promote(this.config.electionTimeoutMs);
      }
      this.appliedIndex = entry.index;
    }
    this.log.markApplied(this.appliedIndex);
    this.scheduleBackendCommit();
    this.maybeSnapshot();
  }

  // --- membership ----------------------------------------------------------

  // Membership: src/server/membership.ts.
  memberAdd(peerUrls: string[], isLearner: boolean): Promise<MemberRecord> {
    return this.membership.add(peerUrls, isLearner);
  }

  memberRemove(id: number): Promise<void> {
    return this.membership.remove(id);
  }

  memberUpdate(id: number, peerUrls: string[]): Promise<void> {
    return this.membership.update(id, peerUrls);
  }

  memberPromote(id: number): Promise<void> {
    return this.membership.promote(id);
  }

  moveLeader(target: number): Promise<void> {
    return this.membership.moveLeader(target);
  }

  /** etcd's TransferLeadership when a leader is told to stop (never throws). */
  transferLeadershipForStop(): Promise<void> {
    return this.membership.transferLeadershipForStop();
  }

  /**
   * Waits (at most a request timeout, as etcd waits for its gRPC servers to
   * stop) until every proposal this member is waiting on has been answered:
   * writes accepted before the stop are acknowledged or failed, not cut off.
   */
  async waitForInFlight(): Promise<void> {
    const deadline = this.runtime.clock.nowMs() + requestTimeoutMs(this.config);
    while (this.proposals.pending > 0 && this.stoppedReason === undefined && this.runtime.clock.nowMs() < deadline) {
      await new Promise<void>((resolve) => this.runtime.clock.setTimer(this.config.heartbeatIntervalMs, resolve));
    }
  }

  /** Proposes this member's name and client URLs until they are applied (etcd's publish). */
  private async publishAttributes(): Promise<void> {
    while (!this.failed) {
      try {
        await this.proposals.propose({
          kind: RequestKind.MemberAttributes,
          id: this.proposals.nextId(),
          request: create(MemberSchema, {
            ID: BigInt(this.identity.memberId),
            name: this.config.name,
            clientURLs: this.config.advertiseClientUrls,
          }),
        });
        this.logger.info("published local member to cluster through raft", { name: this.config.name });
        this.markPublished();
        return;
      } catch {
        await new Promise<void>((resolve) => this.runtime.clock.setTimer(this.config.heartbeatIntervalMs * 5, resolve));
      }
    }
  }

  private scheduleBackendCommit(): void {
    if (this.backend.pendingWrites >= this.config.backendBatchLimit) {
      this.commitBackend();
      return;
    }
    if (this.backendTimer === undefined && this.backend.pendingWrites > 0) {
      this.backendTimer = this.runtime.clock.setTimer(this.config.backendBatchIntervalMs, () => {
        // A commit that fails on a timer has no caller to throw to.
        try {
          this.commitBackend();
        } catch (error) {
          this.fail(error);
        }
      });
    }
  }

  private commitBackend(): void {
    this.backendTimer?.cancel();
    this.backendTimer = undefined;
    this.backend.commit();
    this.backendSizeBytes = this.backend.sizeBytes();
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

  /** Whether this member is a learner (it then serves only Status and serializable ranges). */
  get isLearnerMember(): boolean {
    return this.memberStore.get(this.identity.memberId)?.isLearner ?? false;
  }

  /** For `GET /members` on the peer port (a member joining asks for it). */
  get clusterIdHex(): string {
    return this.identity.clusterId.toString(16);
  }

  membersForPeers(): MemberRecord[] {
    return this.memberStore.all();
  }

  members(): Member[] {
    return this.memberStore.all().map((member) =>
      create(MemberSchema, {
        ID: BigInt(member.id),
        name: member.name,
        peerURLs: member.peerUrls,
        clientURLs: member.id === this.identity.memberId ? this.config.advertiseClientUrls : member.clientUrls,
        isLearner: member.isLearner,
      }),
    );
  }

  status() {
    return {
      version: this.version,
      dbSizeBytes: this.backend.sizeBytes(),
      dbSizeInUseBytes: this.backend.sizeInUseBytes(),
      leader: BigInt(this.log.leader),
      raftIndex: this.log.lastIndex,
      raftTerm: this.log.term,
      raftAppliedIndex: this.appliedIndex,
      isLearner: this.memberStore.get(this.identity.memberId)?.isLearner ?? false,
      // etcd lists each alarm up, in protobuf text form.
      errors: this.alarms.get().map((alarm) => `memberID:${alarm.memberID} alarm:${AlarmType[alarm.alarm]} `),
    };
  }

  /** What etcd's metrics report, read at each scrape (src/server/metrics.ts). */
  metricsView(): MetricsView {
    return {
      memberId: this.identity.memberId,
      leader: this.log.leader,
      isLeader: this.isLeader,
      isLearner: this.isLearnerMember,
      committedIndex: this.log.commitIndex,
      appliedIndex: this.appliedIndex,
      pendingProposals: this.proposals.pending,
      // What etcd reports: the quota in force, or the negative flag that turned it off.
      quotaBytes: this.quotaBytes ?? this.config.quotaBackendBytes,
      dbSizeBytes: this.backendSizeBytes,
      dbSizeInUseBytes: this.failed ? 0 : this.backend.sizeInUseBytes(),
      liveKeys: this.store.index.liveKeyCount,
      currentRevision: this.store.currentRevision,
      compactRevision: Math.max(0, this.store.compactRevision),
      mvcc: this.applier.counts,
      stats: { ...this.stats, proposalsFailed: this.proposals.failedCount, leasesExpired: this.leases.expiredCount },
      peerTraffic: this.transport?.traffic(),
    };
  }

  /**
   * HashKV at `revision` (0: current), yielding to the event loop between
   * chunks of rows. Each scan reads the whole history; clients (Maintenance)
   * and peers (the corruption checks) may run `hashKvScansMax` at once, more
   * are refused ("too many requests") rather than piled up.
   */
  async hashKV(revision: number): Promise<{ hash: number; compactRevision: number; revision: number }> {
    if (this.hashKvScans >= hashKvScansMax) throw etcdError("tooManyRequests");
    this.hashKvScans++;
    try {
      return await this.store.hashKV(revision, this.yieldTurn);
    } finally {
      this.hashKvScans--;
    }
  }

  private hashKvScans = 0;

  /** A macrotask's wait: long work awaits it between chunks so heartbeats and clients go on. */
  private readonly yieldTurn = (): Promise<void> => new Promise((resolve) => this.runtime.clock.setTimer(0, () => resolve()));

  /** Maintenance.Hash: a hash of the backend's whole content, after committing what is pending. */
  hash(): number {
    this.assertServing();
    this.backend.commit();
    return this.backend.hashContents();
  }

  /** Maintenance.Defragment: rebuilds the backend file without free pages. */
  defragment(): void {
    this.assertServing();
    this.backend.defragment();
    this.backendSizeBytes = this.backend.sizeBytes();
    this.logger.info("finished defragmenting the backend", { "db-size": this.backendSizeBytes });
  }

  /**
   * The committed backend as etcd's own bbolt file (etcd-snapshot.ts), for
   * Maintenance.Snapshot: `etcdctl snapshot status` and `restore` read it as
   * they read etcd's. Written to a file beside the backend, a few pages at a
   * time while other work goes on, then streamed from disk with its SHA-256.
   */
  async backendSnapshot(): Promise<SnapshotExport> {
    this.assertServing();
    return await this.snapshotFiles.exportFile(
      this.backend,
      (path) => Backend.open(this.runtime.sqlite, path),
      async (copy, out) => {
        // The metas and freelist come last (they name the root): room is kept for them.
        let offset = 3 * bboltPageBytes;
        const head = await writeBbolt(etcdBucketsOf(copy), {
          pause: this.yieldTurn,
          sink: async (pages) => {
            const batch = concatenated(pages);
            await out.writeAt(batch, offset);
            offset += batch.length;
          },
        });
        await out.writeAt(concatenated(head), 0);
      },
      this.runtime.digest,
    );
  }

  /** Why the member is not healthy, or undefined when it is. */
  /**
   * etcd's health check (etcdhttp's checkHealth): unhealthy while stopped,
   * while an alarm other than the `excludedAlarms` (by name, NOSPACE or
   * CORRUPT) is up, without a leader, or when a linearizable read does not
   * get through within a second (etcd's QGET through Raft). The reason, or
   * undefined when healthy; counted for etcd_server_health_success/failures.
   */
  async healthProblem(excludedAlarms: ReadonlySet<string> = new Set()): Promise<string | undefined> {
    const problem = await this.readinessProblem(excludedAlarms);
    if (problem === undefined) this.stats.healthChecksPassed++;
    else this.stats.healthChecksFailed++;
    return problem;
  }

  /** The same check, not counted: /readyz (etcd 3.5's), which etcd's health counters do not see. */
  async readinessProblem(excludedAlarms: ReadonlySet<string> = new Set()): Promise<string | undefined> {
    if (this.stoppedReason !== undefined) return this.stoppedReason;
    for (const alarm of this.alarms.get()) {
      const name = AlarmType[alarm.alarm];
      if (!excludedAlarms.has(name)) return `ALARM ${name}`;
    }
    if (this.log.leader === 0) return "no leader";
    let timer: Timer | undefined;
    const timedOut = new Promise<string>((resolve) => {
      timer = this.runtime.clock.setTimer(healthReadTimeoutMs, () => resolve("linearizable read timed out"));
    });
    try {
      return await Promise.race([this.readBarrier().then(() => undefined), timedOut]);
    } catch (error) {
      return `linearizable read failed: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      timer?.cancel();
    }
  }

  // --- lifecycle ---------------------------------------------------------

  private assertServing(): void {
    if (this.stoppedReason !== undefined) throw etcdError("stopped");
  }

  /**
   * A failed fdatasync, WAL save, backend commit or snapshot, or a bug met
   * while applying an entry: stop serving at once; nothing more is
   * acknowledged. In a process, onFatal exits it here (exit 1, like etcd's
   * fatal log and panic): what is on disk is all there is, and a supervisor
   * restarts it. Without a host (in-process tests) the member stops and says
   * so through onHalt.
   */
  private fail(error: unknown): void {
    if (this.stoppedReason !== undefined) return;
    const detail = error instanceof Error ? error.message : String(error);
    if (error instanceof ApplyFailure) {
      // The backend's open batch holds entries applied since its last commit,
      // this one perhaps in part: rolled back, as a crash would, they are
      // applied again from the WAL at restart.
      this.backend.crash();
      this.stoppedReason = `apply failed: ${detail}`;
      this.logger.error("apply failed; exiting", { error: this.stoppedReason, stack: errorStack(error.cause) });
    } else if (error instanceof RaftFailure) {
      this.stoppedReason = detail;
      this.logger.error("raft failed; exiting", { error: detail, stack: errorStack(error.cause) });
    } else {
      this.stoppedReason = `storage failure: ${detail}`;
      this.logger.error("storage failure; exiting", { error: this.stoppedReason });
    }
    this.onFatal?.(this.stoppedReason);
    this.proposals.failAll(etcdError("stopped"));
    this.onHalt?.(this.stoppedReason, 1);
  }

  /**
   * Called once when the member stops by itself: a storage failure (exit 1,
   * nothing unsaved was acknowledged) or its own removal from the cluster
   * (exit 0, as etcd exits). The process host closes listeners and exits.
   */
  onHalt: ((reason: string, exitCode: number) => void) | undefined;

  /** Set by begin() from startServer's options: ends the process on a storage failure. */
  private onFatal: ((reason: string) => void) | undefined;
  /** The corruption checks (corruption.ts), set by bootstrap when the member has peers to ask; stopped with the member. */
  corruptionCheck: CorruptionCheck | undefined;

  /**
   * This member applied its own removal, or a current member refused it as
   * removed (410, `by`): it stops serving and goes away, like etcd.
   */
  private removedFromCluster(by?: NodeId): void {
    if (this.stoppedReason !== undefined) return;
    this.stoppedReason = "the member has been permanently removed from the cluster";
    this.logger.warn("the member has been permanently removed from the cluster; stopping", {
      "member-id": this.identity.memberId.toString(16),
      ...(by === undefined ? {} : { "told-by": by.toString(16) }),
    });
    // Let the apply (and the reply to the request that removed us) finish first.
    this.runtime.clock.setTimer(this.config.heartbeatIntervalMs * 2, () => {
      this.proposals.failAll(etcdError("stopped"));
      this.onHalt?.(this.stoppedReason ?? "removed", 0);
    });
  }

  get failed(): boolean {
    return this.stoppedReason !== undefined;
  }

  async stop(): Promise<void> {
    this.stoppedReason ??= "server stopped";
    this.backendTimer?.cancel();
    this.corruptionCheck?.stop();
    this.watchScheduler.stop();
    this.leases.stop();
    this.log.stop();
    this.tokens.stop();
    await this.runtime.passwords.close();
    await this.transport?.stop();
    this.proposals.failAll(etcdError("stopped"));
    this.backend.commit();
    this.backend.close();
    await this.wal.close();
    await this.releaseLock();
  }
}

/** An unexpected error (not one of etcd's) while applying a committed entry: a bug, fatal. */
class ApplyFailure extends Error {
  constructor(
    readonly index: number,
    override readonly cause: unknown,
  ) {
    super(`entry ${index}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

function errorStack(error: unknown): string | undefined {
  return error instanceof Error ? error.stack : undefined;
}

/** HashKV scans at once (hashKV): a small cluster's members checking at the same start, and a client. */
const hashKvScansMax = 4;

