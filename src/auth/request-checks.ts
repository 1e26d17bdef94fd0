// Which rights a KV request needs, as etcd's authApplierV3 checks them. A txn
// needs read rights on every compared key and the rights of each operation in
// both branches, whichever runs; a nested txn is checked the same way, all
// the way down (etcd 3.4 skipped nested txns).
import type { RequestOp, TxnRequest } from "../gen/etcdserverpb/rpc_pb.ts";
import type { AuthInfo, AuthStore } from "./store.ts";

const noRangeEnd = new Uint8Array(0);

export function checkTxnPermitted(store: AuthStore, auth: AuthInfo | undefined, request: TxnRequest): void {
  if (!store.enabled) return;
  for (const compare of request.compare) store.checkRange(auth, compare.key, compare.rangeEnd);
  checkOpsPermitted(store, auth, request.success);
  checkOpsPermitted(store, auth, request.failure);
}

function checkOpsPermitted(store: AuthStore, auth: AuthInfo | undefined, ops: RequestOp[]): void {
  for (const op of ops) {
    const request = op.request;
    switch (request.case) {
      case "requestRange":
        store.checkRange(auth, request.value.key, request.value.rangeEnd);
        break;
      case "requestPut":
        store.checkPut(auth, request.value.key);
        if (request.value.prevKv) store.checkRange(auth, request.value.key, noRangeEnd);
        break;
      case "requestDeleteRange":
        if (request.value.prevKv) store.checkRange(auth, request.value.key, request.value.rangeEnd);
        store.checkDeleteRange(auth, request.value.key, request.value.rangeEnd);
        break;
      case "requestTxn":
        checkTxnPermitted(store, auth, request.value);
        break;
    }
  }
}
