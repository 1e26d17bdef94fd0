// Applies a user or role change, enable/disable, or a checked login to the
// auth store: root only (etcd's needAdminPermission), except the login, whose
// password the proposer checked. Runs on every member in log order.
import { assert, etcdError } from "../errors.ts";
import type { AuthStore } from "../auth/store.ts";
import type { AuthTokens } from "../auth/tokens.ts";
import { RequestKind, type InternalRequest } from "./request-codec.ts";

/** What an applied login answers its proposer: the user, the revision, and the simple token (undefined for jwt). */
export interface AppliedLogin {
  username: string;
  revision: number;
  token: string | undefined;
}

/** Returns the login for an Authenticate entry, undefined for a change (its answer is only a header). */
export function applyAuthChange(store: AuthStore, tokens: AuthTokens, internal: InternalRequest, index: number): AppliedLogin | undefined {
  if (internal.kind !== RequestKind.Authenticate) store.checkAdmin(internal.auth);
  switch (internal.kind) {
    case RequestKind.AuthEnable:
      store.enable();
      return undefined;
    case RequestKind.AuthDisable:
      store.disable();
      return undefined;
    case RequestKind.Authenticate: {
      const { name, simpleTokenPrefix } = internal.request;
      const revision = store.authenticate(name);
      return { username: name, revision, token: tokens.assigned(simpleTokenPrefix, index, name) };
    }
    case RequestKind.AuthUserAdd: {
      const { name, hashedPassword, options } = internal.request;
      store.userAdd(name, hashedPassword, options?.noPassword === true);
      return undefined;
    }
    case RequestKind.AuthUserDelete:
      store.userDelete(internal.request.name);
      return undefined;
    case RequestKind.AuthUserChangePassword:
      store.userChangePassword(internal.request.name, internal.request.hashedPassword);
      return undefined;
    case RequestKind.AuthUserGrantRole:
      store.userGrantRole(internal.request.user, internal.request.role);
      return undefined;
    case RequestKind.AuthUserRevokeRole:
      store.userRevokeRole(internal.request.name, internal.request.role);
      return undefined;
    case RequestKind.AuthRoleAdd:
      store.roleAdd(internal.request.name);
      return undefined;
    case RequestKind.AuthRoleDelete:
      store.roleDelete(internal.request.role);
      return undefined;
    case RequestKind.AuthRoleGrantPermission: {
      const { name, perm } = internal.request;
      if (perm === undefined) throw etcdError("permissionNotGiven");
      store.roleGrantPermission(name, perm);
      return undefined;
    }
    case RequestKind.AuthRoleRevokePermission: {
      const { role, key, rangeEnd } = internal.request;
      store.roleRevokePermission(role, key, rangeEnd);
      return undefined;
    }
    default:
      assert(false, `request kind ${internal.kind} is an auth change`);
  }
}
