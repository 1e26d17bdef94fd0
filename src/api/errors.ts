// Turns operating errors into gRPC statuses with etcd's code and exact message.
import { Code, ConnectError } from "@connectrpc/connect";
import { EtcdError, GrpcCode } from "../errors.ts";

export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof EtcdError) return new ConnectError(error.message, error.code as number as Code);
  // Anything else is a bug: report it as etcd reports unexpected failures.
  const message = error instanceof Error ? error.message : String(error);
  return new ConnectError(message, Code.Unknown);
}

/** Runs a handler body and maps whatever it throws. */
export async function guarded<T>(body: () => T | Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw toConnectError(error);
  }
}

/**
 * guarded for etcd's Lock and Election services, which etcd runs as clientv3
 * recipes inside the server: an etcd error from their KV and lease calls
 * reaches them as clientv3's rpctypes.EtcdError, which carries no gRPC status,
 * so grpc-go answers it Unknown with the same text. etcd 3.4: a lock on a
 * lease that does not exist is `code = Unknown desc = etcdserver: requested
 * lease not found`, a lock or campaign outside the caller's permissions
 * Unknown "etcdserver: permission denied" (HTTP 500 code 2 on the gateway).
 */
export async function guardedAsRecipe<T>(body: () => T | Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw toConnectError(error instanceof EtcdError ? new EtcdError(GrpcCode.Unknown, error.message) : error);
  }
}
