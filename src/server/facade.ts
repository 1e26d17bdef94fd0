// What the API layer (src/api) may use of the layers under the node, besides
// EtcdServer itself: watch streams and their deliveries, key and event
// helpers, lease ids as etcd prints them, who a caller is. The API reaches
// MVCC, leases and auth only through here (test/tidy.test.ts), so what it
// depends on below the node is this list.
export { equalBytes, keyString } from "../mvcc/key-bytes.ts";
export { eventPut } from "../mvcc/kv.ts";
export { unbounded } from "../mvcc/watch-group.ts";
export { invalidWatchId, type WatchDelivery, type WatchStream } from "../mvcc/watch-stream.ts";
export type { WatchableStore } from "../mvcc/watchable-store.ts";
export { leaseIdHex } from "../lease/lease-id.ts";
export type { AuthInfo, AuthStore } from "../auth/store.ts";
