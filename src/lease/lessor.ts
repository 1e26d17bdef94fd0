// The lessor (etcd's lease/lessor.go): the table of leases, the keys attached
// to each, and, on the primary (the Raft leader), when each one expires.
//
// Every member applies the same grants, revokes and checkpoints from the log,
// so every member holds the same table; only the primary tracks expiry times
// and hands out expired leases, which the server then revokes through the log.
// A member that becomes primary first extends every lease (promote), so no
// lease expires merely because leadership moved.
//
// Synchronous and deterministic: time comes from the injected clock, the
// table is persisted in the backend's "lease" bucket inside whatever backend
// transaction the apply has open.
import type { Event } from "../gen/mvccpb/kv_pb.ts";
import { assert, etcdError } from "../errors.ts";
import { eventPut } from "../mvcc/kv.ts";
import { keyString } from "../mvcc/key-bytes.ts";
import { ExpiryQueue } from "./expiry-queue.ts";
import { leaseBucketKey, noLease } from "./lease-id.ts";

/** etcd's MaxLeaseTTL, in seconds. */
export const leaseTtlMaxSeconds = 9_000_000_000;
/** Leases revoked per second at most (etcd's leaseRevokeRate). */
export const leaseRevokeRatePerSecond = 1000;
/** How often the primary looks for expired leases (etcd's runLoop period). */
export const expiryCheckIntervalMs = 500;
/** Checkpoints per LeaseCheckpoint proposal at most (etcd's maxLeaseCheckpointBatchSize). */
export const checkpointBatchMax = 1000;
/** etcd's default checkpoint interval (5 minutes). */
export const checkpointIntervalDefaultMs = 5 * 60 * 1000;
/** The backend bucket holding the lease table. */
export const leaseBucketName = "lease";

/** What the lessor needs from the backend. */
export interface LeaseBackend {
  bucketPut(name: string, key: Uint8Array, value: Uint8Array): void;
  bucketDelete(name: string, key: Uint8Array): void;
  bucketEntries(name: string): [Uint8Array, Uint8Array][];
}

export interface LessorOptions {
  backend: LeaseBackend;
  clock: { nowMs(): number };
  /** Shorter TTLs are raised to this (see minLeaseTtlSeconds). */
  minTtlSeconds: number;
  /** After handing out an expired lease, wait this long before handing it out again (its revoke may have failed). */
  expiredRetryMs: number;
  /**
   * With --experimental-enable-lease-checkpoint: how often the primary
   * checkpoints a lease's remaining TTL through the log, so a new leader
   * continues from it instead of the full TTL. Undefined: never.
   */
  checkpointIntervalMs?: number | undefined;
}

/** A lease's remaining TTL for the primary to propose (etcd's LeaseCheckpoint). */
export interface LeaseCheckpoint {
  id: bigint;
  remainingTtlSeconds: number;
}

/**
 * etcd's minimum TTL: 1.5 election timeouts counted in whole heartbeat ticks
 * (`(3 * electionTicks / 2) * heartbeat`, integer division), rounded up to a
 * second, so a lease outlives the election that may follow a leader's loss.
 */
export function minLeaseTtlSeconds(heartbeatIntervalMs: number, electionTimeoutMs: number): number {
  const electionTicks = Math.floor(electionTimeoutMs / heartbeatIntervalMs);
  return Math.ceil((Math.floor((3 * electionTicks) / 2) * heartbeatIntervalMs) / 1000);
}

export class Lease {
  /** When the lease expires on the primary (clock ms); Infinity on a member that is not primary. */
  expiryMs = Number.POSITIVE_INFINITY;
  /** The last checkpointed remaining TTL in seconds; 0 = none, the full TTL applies. */
  remainingTtlSeconds = 0;
  /** Attached keys, by binary key string (see keyString). */
  readonly keys = new Map<string, Uint8Array>();

  constructor(
    readonly id: bigint,
    readonly ttlSeconds: number,
  ) {}

  /** Seconds a refresh grants: the checkpointed remaining TTL when there is one (etcd's RemainingTTL). */
  get refreshTtlSeconds(): number {
    return this.remainingTtlSeconds > 0 ? this.remainingTtlSeconds : this.ttlSeconds;
  }
}

export type RenewResult = { ttlSeconds: number; checkpointCleared: boolean } | { expired: true };

export class Lessor {
  private readonly table = new Map<bigint, Lease>();
  /** Which lease each attached key belongs to (etcd's itemMap). */
  private readonly owners = new Map<string, bigint>();
  private readonly expiries = new ExpiryQueue();
  /** When each lease is next checkpointed, on the primary with checkpoints enabled. */
  private readonly checkpoints = new ExpiryQueue();
  private primary = false;

  constructor(private readonly options: LessorOptions) {
    this.recover();
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  get size(): number {
    return this.table.size;
  }

  lookup(id: bigint): Lease | undefined {
    return this.table.get(id);
  }

  /** Milliseconds until the lease expires; Infinity when this member tracks no expiry. */
  remainingMs(lease: Lease): number {
    return lease.expiryMs - this.options.clock.nowMs();
  }

  // --- applied from the log ------------------------------------------------

  /** Applies a grant. TTLs under the minimum are raised to it (etcd). */
  grant(id: bigint, ttlSeconds: number): Lease {
    if (id === noLease) throw etcdError("leaseNotFound");
    if (ttlSeconds > leaseTtlMaxSeconds) throw etcdError("leaseTtlTooLarge");
    if (this.table.has(id)) throw etcdError("leaseExists");
    const lease = new Lease(id, Math.max(ttlSeconds, this.options.minTtlSeconds));
    this.table.set(id, lease);
    this.persist(lease);
    if (this.primary) {
      this.refresh(lease, 0);
      this.scheduleCheckpoint(lease);
    }
    return lease;
  }

  /**
   * Applies a revoke: forgets the lease (in the backend transaction the apply
   * has open) and returns its keys in byte order, for the caller to delete in
   * that same transaction, as one revision. Sorted so every member writes the
   * deletes in the same order and their backends hash equal.
   */
  revoke(id: bigint): Uint8Array[] {
    const lease = this.table.get(id);
    if (lease === undefined) throw etcdError("leaseNotFound");
    const names = [...lease.keys.keys()].sort();
    const keys = names.map((name) => lease.keys.get(name) as Uint8Array);
    for (const name of names) this.owners.delete(name);
    this.table.delete(id);
    this.expiries.delete(id);
    this.checkpoints.delete(id);
    this.options.backend.bucketDelete(leaseBucketName, leaseBucketKey(id));
    return keys;
  }

  /**
   * Applies a checkpoint of a lease's remaining TTL, used when it is next
   * refreshed (promote). Like etcd 3.4 without checkpoint persistence it is
   * kept in memory only: a restart gives every lease its full TTL again.
   */
  checkpoint(id: bigint, remainingTtlSeconds: number): void {
    const lease = this.table.get(id);
    if (lease === undefined) return;
    lease.remainingTtlSeconds = remainingTtlSeconds;
    if (this.primary) this.scheduleCheckpoint(lease);
  }

  /** Attaches and detaches keys as committed puts and deletes change them (etcd does this inside mvcc). */
  observe(events: readonly Event[]): void {
    for (const event of events) {
      const kv = event.kv;
      if (kv === undefined) continue;
      const name = keyString(kv.key);
      const leaseId = event.type === eventPut ? kv.lease : noLease;
      const previous = this.owners.get(name);
      if (previous === leaseId) continue;
      if (previous !== undefined) {
        this.table.get(previous)?.keys.delete(name);
        this.owners.delete(name);
      }
      if (leaseId !== noLease) this.attach(leaseId, name, kv.key);
    }
  }

  /**
   * Forgets every lease and loads the table again from the backend, whose file
   * was replaced by a snapshot, re-attaching the keys the reloaded store found.
   * Only a follower installs a snapshot, so no expiry is tracked afterwards.
   */
  reload(restored: readonly { key: Uint8Array; lease: bigint }[]): void {
    this.table.clear();
    this.owners.clear();
    this.demote();
    this.recover();
    this.attachRestored(restored);
  }

  /** Re-attaches keys found attached to leases when the store was opened. */
  attachRestored(restored: readonly { key: Uint8Array; lease: bigint }[]): void {
    for (const { key, lease } of restored) this.attach(lease, keyString(key), key);
  }

  private attach(leaseId: bigint, name: string, key: Uint8Array): void {
    const lease = this.table.get(leaseId);
    // The applier refuses puts naming a missing lease, so only keys restored
    // next to a lost lease table can get here; etcd logs and skips those too.
    if (lease === undefined) return;
    lease.keys.set(name, key);
    this.owners.set(name, leaseId);
  }

  // --- primary only --------------------------------------------------------

  /**
   * Renews a lease on the primary. An expired lease that is not yet revoked
   * cannot be renewed: the caller waits for its revoke (etcd does the same).
   */
  renew(id: bigint): RenewResult {
    assert(this.primary, "renew on a lessor that is not primary");
    const lease = this.table.get(id);
    if (lease === undefined) throw etcdError("leaseNotFound");
    if (this.remainingMs(lease) <= 0) return { expired: true };
    const checkpointCleared = lease.remainingTtlSeconds > 0;
    lease.remainingTtlSeconds = 0;
    this.refresh(lease, 0);
    this.scheduleCheckpoint(lease);
    return { ttlSeconds: lease.ttlSeconds, checkpointCleared };
  }

  /**
   * Makes this lessor the primary: every lease gets its (remaining) TTL plus
   * `extendMs` from now. With many leases, expiries that would pile up in the
   * same second are spread so revokes stay under the revoke rate (etcd).
   */
  promote(extendMs: number): void {
    this.primary = true;
    for (const lease of this.table.values()) {
      this.refresh(lease, extendMs);
      this.scheduleCheckpoint(lease);
    }
    if (this.table.size < leaseRevokeRatePerSecond) return;
    const leases = this.leasesByExpiry();
    const targetPerSecond = Math.floor((3 * leaseRevokeRatePerSecond) / 4);
    let baseWindowMs = this.remainingMs(leases[0] as Lease);
    let nextWindowMs = baseWindowMs + 1000;
    let expires = 0;
    for (const lease of leases) {
      const remaining = this.remainingMs(lease);
      if (remaining > nextWindowMs) {
        baseWindowMs = remaining;
        nextWindowMs = baseWindowMs + 1000;
        expires = 1;
        continue;
      }
      expires++;
      if (expires <= targetPerSecond) continue;
      const delayMs = 1000 * (expires / targetPerSecond) - (remaining - baseWindowMs);
      nextWindowMs = baseWindowMs + delayMs;
      this.refresh(lease, delayMs + extendMs);
    }
  }

  /** Stops being primary: no lease expires here until the next promote. */
  demote(): void {
    this.primary = false;
    for (const lease of this.table.values()) lease.expiryMs = Number.POSITIVE_INFINITY;
    this.expiries.clear();
    this.checkpoints.clear();
  }

  /**
   * Up to `limit` expired leases for the caller to revoke. Each is due again
   * after the retry interval, in case its revoke does not make it.
   */
  takeExpired(limit: number): bigint[] {
    const expired: bigint[] = [];
    const now = this.options.clock.nowMs();
    while (expired.length < limit) {
      const id = this.expiries.popDue(now);
      if (id === undefined) break;
      const lease = this.table.get(id);
      if (lease === undefined) continue;
      this.expiries.set(id, now + this.options.expiredRetryMs);
      if (lease.expiryMs <= now) expired.push(id);
    }
    return expired;
  }

  /**
   * Up to `limit` due checkpoints of remaining TTLs (rounded up to a second)
   * for the caller to propose. A lease with its full TTL or more left is not
   * checkpointed (etcd); the next one is scheduled when this one is applied.
   */
  takeDueCheckpoints(limit: number): LeaseCheckpoint[] {
    const due: LeaseCheckpoint[] = [];
    const now = this.options.clock.nowMs();
    while (due.length < limit) {
      const id = this.checkpoints.popDue(now);
      if (id === undefined) break;
      const lease = this.table.get(id);
      if (lease === undefined || lease.expiryMs <= now) continue;
      const remainingTtlSeconds = Math.ceil((lease.expiryMs - now) / 1000);
      if (remainingTtlSeconds >= lease.ttlSeconds) continue;
      due.push({ id: lease.id, remainingTtlSeconds });
    }
    return due;
  }

  /** Every lease, soonest expiry first (etcd's Leases order). */
  leasesByExpiry(): Lease[] {
    return [...this.table.values()].sort((a, b) =>
      a.expiryMs !== b.expiryMs ? (a.expiryMs < b.expiryMs ? -1 : 1) : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
  }

  /** Only leases whose (checkpointed) TTL outlasts the interval are checkpointed (etcd). */
  private scheduleCheckpoint(lease: Lease): void {
    const intervalMs = this.options.checkpointIntervalMs;
    if (intervalMs === undefined || !this.primary) return;
    if (lease.refreshTtlSeconds * 1000 <= intervalMs) return;
    this.checkpoints.set(lease.id, this.options.clock.nowMs() + intervalMs);
  }

  private refresh(lease: Lease, extendMs: number): void {
    lease.expiryMs = this.options.clock.nowMs() + extendMs + lease.refreshTtlSeconds * 1000;
    this.expiries.set(lease.id, lease.expiryMs);
  }

  // --- persistence ---------------------------------------------------------

  private persist(lease: Lease): void {
    this.options.backend.bucketPut(leaseBucketName, leaseBucketKey(lease.id), encodeLeaseRecord(lease.ttlSeconds));
  }

  /** Loads the table; expiries stay unset until a promote. */
  private recover(): void {
    for (const [key, value] of this.options.backend.bucketEntries(leaseBucketName)) {
      assert(key.length === 8, "lease bucket key is 8 bytes");
      const id = new DataView(key.buffer, key.byteOffset, 8).getBigInt64(0);
      const record = decodeLeaseRecord(value);
      const lease = new Lease(id, Math.max(record.ttlSeconds, this.options.minTtlSeconds));
      this.table.set(id, lease);
    }
  }
}

// A lease record: format version (1 byte), then the TTL in seconds as a
// big-endian int64. (etcd stores a leasepb.Lease; only the TTL survives a
// restart there too.)
const recordVersion = 1;

/** The lease bucket's value for a lease of `ttlSeconds`. */
export function encodeLeaseRecord(ttlSeconds: number): Uint8Array {
  const record = new Uint8Array(9);
  record[0] = recordVersion;
  new DataView(record.buffer).setBigInt64(1, BigInt(ttlSeconds));
  return record;
}

export function decodeLeaseRecord(record: Uint8Array): { ttlSeconds: number } {
  assert(record.length === 9 && record[0] === recordVersion, "lease record has a known format");
  return { ttlSeconds: Number(new DataView(record.buffer, record.byteOffset, record.byteLength).getBigInt64(1)) };
}
