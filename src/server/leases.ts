// The lease half of the node. Grants and revokes go through the log like any
// write; renewals and time-to-live are answered by the leader's primary lessor
// only, so any other member forwards them to the leader over the peer port
// (etcd's LeaseRenew and LeaseTimeToLive), retrying while there is no leader
// until the request timeout. The expiry loop revokes expired leases, and
// checkpoints remaining TTLs, from the leader.
import { create } from "@bufbuild/protobuf";
import {
  LeaseCheckpointRequestSchema,
  LeaseLeasesResponseSchema,
  LeaseRevokeRequestSchema,
  LeaseStatusSchema,
  LeaseTimeToLiveResponseSchema,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type ResponseHeader,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { Logger, PeerFetch, Random, Clock } from "../ports.ts";
import { EtcdError, etcdError } from "../errors.ts";
import { rootUser, type AuthInfo } from "../auth/store.ts";
import { LeaseExpiryLoop } from "../lease/expiry-loop.ts";
import { randomLeaseId } from "../lease/lease-id.ts";
import { leaseTtlMaxSeconds, type Lessor } from "../lease/lessor.ts";
import { LeaseForwarder, LeaseForwardRetry, peerPostVia } from "../peer/lease-forward.ts";
import type { Proposals } from "./proposals.ts";
import { RequestKind } from "./request-codec.ts";

export interface LeasesOptions {
  memberId: number;
  clusterId: bigint;
  lessor: Lessor;
  proposals: Proposals;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** The peer network's fetch: renewals and TTLs forwarded to the leader. */
  peerFetch: PeerFetch;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  requestTimeoutMs: number;
  /** The current leader (0: none). */
  leader: () => number;
  /** A member's peer URLs (empty when unknown). */
  peerUrlsOf: (id: number) => string[];
  /** The auth store's revision, for the root user's revokes of expired leases. */
  authRevision: () => number;
  /** etcd's quota check for a grant's cost. */
  checkQuota: (costBytes: number) => Promise<void>;
  grantCostBytes: number;
  assertServing: () => void;
  header: () => ResponseHeader;
}

export class Leases {
  private readonly forwarder: LeaseForwarder;
  private readonly expiry: LeaseExpiryLoop;
  /** Leases this member revoked as expired (etcd_server_lease_expired_total). */
  expiredCount = 0;

  constructor(private readonly options: LeasesOptions) {
    const { lessor, proposals } = options;
    this.forwarder = new LeaseForwarder({ localId: options.memberId, clusterId: options.clusterId, post: peerPostVia(options.peerFetch) });
    this.expiry = new LeaseExpiryLoop(
      lessor,
      options.clock,
      {
        isLeader: () => this.isLeader,
        // As root, as etcd revokes expired leases (authStore.WithRoot): with
        // auth on, the revoke is checked like any other.
        revoke: (id) => {
          this.expiredCount++;
          return this.revoke(create(LeaseRevokeRequestSchema, { ID: id }), { username: rootUser, revision: options.authRevision() });
        },
        checkpoint: (due) => {
          const checkpoints = due.map((checkpoint) => ({ ID: checkpoint.id, remainingTTL: BigInt(checkpoint.remainingTtlSeconds) }));
          const request = create(LeaseCheckpointRequestSchema, { checkpoints });
          return proposals.propose({ kind: RequestKind.LeaseCheckpoint, id: proposals.nextId(), request });
        },
      },
      options.logger,
    );
  }

  private get isLeader(): boolean {
    return this.options.leader() === this.options.memberId;
  }

  /** Starts the expiry loop (once the member serves). */
  start(): void {
    this.expiry.start();
  }

  stop(): void {
    this.expiry.stop();
  }

  grant(request: LeaseGrantRequest, auth?: AuthInfo): Promise<LeaseGrantResponse> {
    const { proposals } = this.options;
    // The proposer picks the id, so every member applies the same one.
    const ID = request.ID === 0n ? randomLeaseId(this.options.random) : request.ID;
    if (request.TTL > BigInt(leaseTtlMaxSeconds)) return Promise.reject(etcdError("leaseTtlTooLarge"));
    return this.options
      .checkQuota(this.options.grantCostBytes)
      .then(() => proposals.propose({ kind: RequestKind.LeaseGrant, id: proposals.nextId(), auth, request: { ...request, ID } }));
  }

  revoke(request: LeaseRevokeRequest, auth?: AuthInfo): Promise<LeaseRevokeResponse> {
    const { proposals } = this.options;
    return proposals.propose({ kind: RequestKind.LeaseRevoke, id: proposals.nextId(), auth, request });
  }

  /**
   * Renews a lease; returns its TTL. The leader renews in its lessor; any
   * other member forwards to the leader over the peer port, retrying while
   * there is no leader (or it is not yet primary) until the request timeout
   * (etcd's LeaseRenew). An expired lease waits for its revoke and then
   * answers "not found", as etcd does.
   */
  async renew(id: bigint): Promise<bigint> {
    const deadline = this.options.clock.nowMs() + this.options.requestTimeoutMs;
    for (;;) {
      this.options.assertServing();
      if (this.isLeader && this.options.lessor.isPrimary) {
        const ttl = this.renewOnPrimary(id);
        if (ttl !== undefined) return ttl;
      } else {
        const leader = this.leaderPeerUrls();
        if (leader !== undefined) {
          try {
            return await this.forwarder.renew(leader.id, leader.peerUrls, id, this.forwardTimeoutMs(deadline));
          } catch (error) {
            if (!(error instanceof LeaseForwardRetry)) throw error;
          }
        }
      }
      if (this.options.clock.nowMs() >= deadline) throw etcdError("timeout");
      await this.pause(this.options.heartbeatIntervalMs);
    }
  }

  /**
   * A renewal forwarded by another member: only this member's primary lessor
   * answers it; an expired lease is waited on for a second (etcd's leasehttp
   * apply timeout), then the forwarder retries.
   */
  async renewHere(id: bigint): Promise<bigint> {
    const deadline = this.options.clock.nowMs() + 1000;
    for (;;) {
      this.options.assertServing();
      if (!this.isLeader || !this.options.lessor.isPrimary) throw etcdError("notLeader");
      const ttl = this.renewOnPrimary(id);
      if (ttl !== undefined) return ttl;
      if (this.options.clock.nowMs() >= deadline) throw etcdError("timeout");
      await this.pause(this.options.heartbeatIntervalMs);
    }
  }

  /** Renews in the primary lessor; undefined while the lease is expired but not yet revoked. */
  private renewOnPrimary(id: bigint): bigint | undefined {
    const result = this.options.lessor.renew(id);
    if ("expired" in result) return undefined;
    if (result.checkpointCleared) {
      // Members forget the checkpointed TTL too, so a later promote grants the full TTL (etcd).
      const { proposals } = this.options;
      const request = create(LeaseCheckpointRequestSchema, { checkpoints: [{ ID: id, remainingTTL: 0n }] });
      proposals.propose({ kind: RequestKind.LeaseCheckpoint, id: proposals.nextId(), request }).catch(() => undefined);
    }
    return BigInt(result.ttlSeconds);
  }

  /** Time to live from the leader's lessor, forwarded there from any other member (etcd's LeaseTimeToLive). */
  async timeToLive(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    const deadline = this.options.clock.nowMs() + this.options.requestTimeoutMs;
    for (;;) {
      this.options.assertServing();
      if (this.isLeader && this.options.lessor.isPrimary) return this.timeToLiveHere(request);
      const leader = this.leaderPeerUrls();
      if (leader !== undefined) {
        try {
          const response = await this.forwarder.timeToLive(leader.id, leader.peerUrls, request, this.forwardTimeoutMs(deadline));
          response.header = this.options.header();
          return response;
        } catch (error) {
          if (error instanceof EtcdError && error.message === etcdError("leaseNotFound").message) {
            return create(LeaseTimeToLiveResponseSchema, { header: this.options.header(), ID: request.ID, TTL: -1n });
          }
          if (!(error instanceof LeaseForwardRetry)) throw error;
        }
      }
      if (this.options.clock.nowMs() >= deadline) throw etcdError("timeout");
      await this.pause(this.options.heartbeatIntervalMs);
    }
  }

  /** Time to live from this member's primary lessor; notLeader when it is not primary. */
  async timeToLiveHere(request: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    this.options.assertServing();
    const { lessor } = this.options;
    if (!this.isLeader || !lessor.isPrimary) throw etcdError("notLeader");
    const lease = lessor.lookup(request.ID);
    // etcd answers an unknown lease with TTL -1 rather than an error.
    if (lease === undefined) return create(LeaseTimeToLiveResponseSchema, { header: this.options.header(), ID: request.ID, TTL: -1n });
    const remainingMs = lessor.remainingMs(lease);
    return create(LeaseTimeToLiveResponseSchema, {
      header: this.options.header(),
      ID: request.ID,
      // Go's int64(Remaining().Seconds()): truncated; a lease with no expiry shows MaxInt64 nanoseconds.
      TTL: Number.isFinite(remainingMs) ? BigInt(Math.trunc(remainingMs / 1000)) : 9_223_372_036n,
      grantedTTL: BigInt(lease.ttlSeconds),
      keys: request.keys ? [...lease.keys.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, key]) => key) : [],
    });
  }

  leases(): LeaseLeasesResponse {
    this.options.assertServing();
    return create(LeaseLeasesResponseSchema, {
      header: this.options.header(),
      leases: this.options.lessor.leasesByExpiry().map((lease) => create(LeaseStatusSchema, { ID: lease.id })),
    });
  }

  /** The current leader, when it is another member with known peer URLs. */
  private leaderPeerUrls(): { id: number; peerUrls: string[] } | undefined {
    const leader = this.options.leader();
    if (leader === 0 || leader === this.options.memberId) return undefined;
    const peerUrls = this.options.peerUrlsOf(leader);
    return peerUrls.length > 0 ? { id: leader, peerUrls } : undefined;
  }

  /** One forwarding attempt may take what is left of the request, but no more than two election timeouts and a second. */
  private forwardTimeoutMs(deadline: number): number {
    return Math.max(1, Math.min(deadline - this.options.clock.nowMs(), 1000 + 2 * this.options.electionTimeoutMs));
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.options.clock.setTimer(ms, resolve));
  }
}
