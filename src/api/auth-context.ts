// Who a call runs as. An interceptor reads the token (gRPC metadata `token`,
// or `authorization` as the gateway and browsers send it) or, with
// --client-cert-auth and no token, the verified client certificate's
// CommonName, and leaves the result in the call's context values for the
// services. A token that is not valid fails the call with etcd's
// "invalid auth token" (clients log in again on it); no token and no
// certificate runs the call as nobody, which auth (when on) refuses per RPC.
import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { AuthInfo } from "../server/facade.ts";
import type { EtcdServer } from "../server/etcd-server.ts";
import { toConnectError } from "./errors.ts";

export const authInfoKey = createContextKey<AuthInfo | undefined>(undefined, { description: "edgetcd: the caller's user" });

/**
 * The CommonName of the client certificate the TLS handshake verified, set
 * by the runtime's listener; never set for gateway calls (etcd ignores the
 * certificate there: it would be the server's own).
 */
export const clientCommonNameKey = createContextKey<string | undefined>(undefined, { description: "edgetcd: verified client certificate CN" });

/** The caller's user, as the interceptor resolved it. */
export function callerOf(context: HandlerContext): AuthInfo | undefined {
  return context.values.get(authInfoKey);
}

export function tokenOf(header: Headers): string | undefined {
  return header.get("token") ?? header.get("authorization") ?? undefined;
}

export function authInterceptor(server: EtcdServer): Interceptor {
  return (next) => async (request) => {
    // A login carries no token of its own (a stale one must not stop it).
    if (request.service.typeName === "etcdserverpb.Auth" && request.method.name === "Authenticate") return next(request);
    const token = tokenOf(request.header);
    const commonName = request.contextValues.get(clientCommonNameKey);
    if (token !== undefined || commonName !== undefined) {
      let info: AuthInfo | undefined;
      try {
        info = await server.authInfoFrom(token, commonName);
      } catch (error) {
        throw toConnectError(error);
      }
      request.contextValues.set(authInfoKey, info);
    }
    return next(request);
  };
}

/** The server methods that take the caller's user as their last argument. */
const callerMethods = new Set<PropertyKey>(["range", "put", "deleteRange", "txn", "compact", "leaseGrant", "leaseRevoke"]);

/**
 * The server as seen by one caller: its KV and lease calls run as `auth`.
 * For the lock and election recipes, which etcd runs through an in-process
 * client carrying the caller's credentials, so a lock needs the same rights
 * on its keys as the puts and deletes it makes.
 */
export function serverAs(server: EtcdServer, auth: AuthInfo | undefined): EtcdServer {
  if (auth === undefined) return server;
  return new Proxy(server, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      if (callerMethods.has(property)) return (request: unknown) => method.call(target, request, auth);
      return method.bind(target);
    },
  });
}
