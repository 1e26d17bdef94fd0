// A learner serves only what cannot observe a stale or uncommitted state:
// Maintenance.Status and serializable ranges. Everything else, streams
// included, gets etcd's "rpc not supported for learner" (Unavailable), so
// clients move on to a voting member.
import type { Interceptor } from "@connectrpc/connect";
import { etcdError } from "../errors.ts";
import { toConnectError } from "./errors.ts";

export function learnerGate(isLearner: () => boolean): Interceptor {
  return (next) => async (request) => {
    if (isLearner() && !allowedOnLearner(request)) throw toConnectError(etcdError("notSupportedForLearner"));
    return next(request);
  };
}

function allowedOnLearner(request: { stream: boolean; service: { typeName: string }; method: { name: string }; message?: unknown }): boolean {
  if (request.stream) return false;
  const name = `${request.service.typeName}/${request.method.name}`;
  if (name === "etcdserverpb.Maintenance/Status") return true;
  if (name === "etcdserverpb.KV/Range") return (request.message as { serializable?: boolean }).serializable === true;
  return false;
}
