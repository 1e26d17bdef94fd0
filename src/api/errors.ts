// Turns operating errors into gRPC statuses with etcd's code and exact message.
import { Code, ConnectError } from "@connectrpc/connect";
import { EtcdError } from "../errors.ts";

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
