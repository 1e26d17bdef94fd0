// etcdserverpb.KV: checks each request as etcd's v3rpc layer does, then hands
// it to the server (writes through the log, reads from MVCC).
import type { ServiceImpl } from "@connectrpc/connect";
import type { KV } from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import {
  validateDeleteRangeRequest,
  validatePutRequest,
  validateRangeRequest,
  validateTxnRequest,
} from "../server/validate-kv.ts";
import { callerOf } from "./auth-context.ts";
import { guarded } from "./errors.ts";

export function kvService(server: EtcdServer): ServiceImpl<typeof KV> {
  const maxTxnOps = server.config.maxTxnOps;
  return {
    range: (request, context) =>
      guarded(() => {
        validateRangeRequest(request);
        return server.range(request, callerOf(context));
      }),
    put: (request, context) =>
      guarded(() => {
        validatePutRequest(request);
        return server.put(request, callerOf(context));
      }),
    deleteRange: (request, context) =>
      guarded(() => {
        validateDeleteRangeRequest(request);
        return server.deleteRange(request, callerOf(context));
      }),
    txn: (request, context) =>
      guarded(() => {
        validateTxnRequest(request, maxTxnOps);
        return server.txn(request, callerOf(context));
      }),
    compact: (request, context) => guarded(() => server.compact(request, callerOf(context))),
  };
}
