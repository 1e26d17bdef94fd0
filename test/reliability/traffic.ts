// Robustness-style request mix for the etcd model: gets, ranges, reads at a
// past revision, puts (some under a lease), deletes, txns with compares, lease
// grant and revoke, compaction. Every written value is unique; deletes and
// revokes (the writes that are not unique) are limited in flight, which keeps
// the checker's search small, as etcd's robustness traffic does.
import type { Prng } from "../../runtime/sim/prng.ts";
import type { Compare, EtcdRequest, EtcdResponse } from "./models.ts";

export interface TrafficOptions {
  keys: number;
  /** Include lease grant/revoke and puts with a lease. */
  leases: boolean;
  /** Include compaction and reads at a past revision. */
  compaction: boolean;
  /** At most this many deletes and revokes at once. */
  nonUniqueInFlightMax: number;
}

export const defaultTrafficOptions: TrafficOptions = { keys: 8, leases: true, compaction: true, nonUniqueInFlightMax: 3 };

/** What the clients of one run share: keys, granted leases, the highest revision seen. */
export class Traffic {
  readonly keys: string[];
  lastRevision = 1;
  leasesGranted: number[] = [];
  nonUniqueInFlight = 0;
  private valueSequence = 0;
  private leaseSequence = 0;

  constructor(readonly random: Prng, readonly options: TrafficOptions = defaultTrafficOptions, prefix = "key") {
    this.keys = Array.from({ length: options.keys }, (_, i) => `${prefix}${i}`);
  }

  uniqueValue(clientId: number): string {
    return `v${clientId}-${++this.valueSequence}`;
  }

  /** The next request, and whether it counts as a non-unique write while in flight. */
  next(clientId: number): { request: EtcdRequest; nonUnique: boolean } {
    const random = this.random;
    const key = random.pick(this.keys);
    const roll = random.int(100);
    const canNonUnique = this.nonUniqueInFlight < this.options.nonUniqueInFlightMax;
    if (roll < 25) return plain({ type: "range", key });
    if (roll < 33) return plain({ type: "range", key: this.keys[0] as string, rangeEnd: "\0" });
    if (roll < 38 && this.options.compaction) {
      const revision = Math.max(1, this.lastRevision - random.int(12));
      return plain({ type: "range", key: this.keys[0] as string, rangeEnd: "\0", revision });
    }
    if (roll < 62) return plain({ type: "put", key, value: this.uniqueValue(clientId) });
    if (roll < 68 && canNonUnique) return { request: { type: "delete", key }, nonUnique: true };
    if (roll < 80) return plain(this.txn(clientId, key));
    if (this.options.leases) {
      if (roll < 84) return plain({ type: "leaseGrant", lease: this.newLease(clientId), ttl: 3600 });
      if (roll < 90 && this.leasesGranted.length > 0) {
        return plain({ type: "put", key, value: this.uniqueValue(clientId), lease: random.pick(this.leasesGranted) });
      }
      if (roll < 94 && this.leasesGranted.length > 0 && canNonUnique) {
        const lease = random.pick(this.leasesGranted);
        this.leasesGranted = this.leasesGranted.filter((id) => id !== lease);
        return { request: { type: "leaseRevoke", lease }, nonUnique: true };
      }
    }
    if (roll < 96 && this.options.compaction) {
      return plain({ type: "compact", revision: Math.max(1, this.lastRevision - 20 - random.int(10)) });
    }
    return plain({ type: "put", key, value: this.uniqueValue(clientId) });
  }

  /** Notes what a response reveals (revision, granted lease). */
  observe(request: EtcdRequest, response: EtcdResponse): void {
    if ("revision" in response && response.revision > this.lastRevision) this.lastRevision = response.revision;
    if (request.type === "leaseGrant" && response.type === "leaseGrant") this.leasesGranted.push(request.lease);
  }

  private newLease(clientId: number): number {
    return clientId * 100_000 + ++this.leaseSequence;
  }

  private txn(clientId: number, key: string): EtcdRequest {
    const random = this.random;
    const other = random.pick(this.keys);
    const compares: Compare[] =
      random.int(3) === 0
        ? [{ key, target: "version", result: ">", operand: random.int(3) }]
        : [{ key, target: "mod", result: "<", operand: Math.max(0, this.lastRevision - random.int(6)) }];
    if (random.chance(0.3)) compares.push({ key: other, target: "create", result: "=", operand: 0 });
    return {
      type: "txn",
      compares,
      success: [
        { type: "put", key, value: this.uniqueValue(clientId) },
        { type: "range", key: other },
      ],
      failure: random.chance(0.5) ? [{ type: "range", key }] : [{ type: "put", key: other, value: this.uniqueValue(clientId) }],
    };
  }
}

function plain(request: EtcdRequest): { request: EtcdRequest; nonUnique: boolean } {
  return { request, nonUnique: false };
}
