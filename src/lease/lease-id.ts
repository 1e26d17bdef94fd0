// Lease ids: signed 64-bit integers on the wire (etcd's LeaseID is int64), 0
// meaning "no lease". The server picks positive ones when a client lets it.
import type { Random } from "../ports.ts";

/** etcd's lease.NoLease. */
export const noLease = 0n;

const int64Max = (1n << 63n) - 1n;

/** A random positive int64 (etcd masks its generated ids to 63 bits, so they are never negative). */
export function randomLeaseId(random: Random): bigint {
  for (;;) {
    const bytes = random.bytes(8);
    let id = 0n;
    for (const byte of bytes) id = (id << 8n) | BigInt(byte);
    id &= int64Max;
    if (id !== noLease) return id;
  }
}

/**
 * The id as Go's `%x` prints an int64: lower-case hex, no padding, a minus
 * sign for negative ids. clientv3's lock and election recipes name their keys
 * `<prefix>/<%x of the lease id>`, so ours must match to interoperate.
 */
export function leaseIdHex(id: bigint): string {
  return id < 0n ? `-${(-id).toString(16)}` : id.toString(16);
}

/** The 8-byte big-endian key of a lease in the backend's lease bucket (etcd's int64ToBytes). */
export function leaseBucketKey(id: bigint): Uint8Array {
  const key = new Uint8Array(8);
  new DataView(key.buffer).setBigInt64(0, id);
  return key;
}
