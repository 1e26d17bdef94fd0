// etcdserverpb.Auth: users, roles, permissions, enable/disable and login.
// Changes go through the log and are checked again (root only) when applied;
// questions (get, list, status) are linearizable reads of the applied state.
// Passwords are hashed and checked with bcrypt off the event loop, before
// anything is proposed, so no password (plain or hashed at apply) is spent
// on the apply path; only the hash reaches the log.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InternalAuthenticateRequestSchema } from "../gen/edgetcd/v1/internal_pb.ts";
import {
  AuthDisableRequestSchema,
  AuthDisableResponseSchema,
  AuthEnableRequestSchema,
  AuthEnableResponseSchema,
  AuthenticateResponseSchema,
  AuthRoleAddResponseSchema,
  AuthRoleDeleteResponseSchema,
  AuthRoleGetResponseSchema,
  AuthRoleGrantPermissionResponseSchema,
  AuthRoleListResponseSchema,
  AuthRoleRevokePermissionResponseSchema,
  AuthStatusResponseSchema,
  AuthUserAddRequestSchema,
  AuthUserAddResponseSchema,
  AuthUserChangePasswordRequestSchema,
  AuthUserChangePasswordResponseSchema,
  AuthUserDeleteResponseSchema,
  AuthUserGetResponseSchema,
  AuthUserGrantRoleResponseSchema,
  AuthUserListResponseSchema,
  AuthUserRevokeRoleResponseSchema,
  type Auth,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { etcdError } from "../errors.ts";
import { RequestKind, type RequestOf } from "../server/request-codec.ts";
import type { AuthRequestKind, EtcdServer } from "../server/etcd-server.ts";
import type { AppliedLogin } from "../server/apply-auth.ts";
import { callerOf } from "./auth-context.ts";
import { guarded } from "./errors.ts";

/**
 * Logins retried when users or roles changed between the password check and
 * the applied login (etcd retries without bound); past this the client gets
 * "revision of auth store is old" and tries again itself.
 */
const loginAttemptsMax = 8;

export function authService(server: EtcdServer): ServiceImpl<typeof Auth> {
  const auth = server.auth;
  const header = () => server.header();
  /** Proposes a change as the caller; its answer is only the header. */
  const change = async <K extends AuthRequestKind>(kind: K, request: RequestOf<K>, context: HandlerContext) => {
    await server.proposeAuth(kind, request, callerOf(context));
  };
  const hash = (password: string) => server.passwords.hash(password, server.config.bcryptCost);
  return {
    authEnable: (_request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthEnable, create(AuthEnableRequestSchema), context);
        return create(AuthEnableResponseSchema, { header: header() });
      }),
    authDisable: (_request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthDisable, create(AuthDisableRequestSchema), context);
        return create(AuthDisableResponseSchema, { header: header() });
      }),
    authStatus: (_request, context) =>
      guarded(async () => {
        await server.readBarrier();
        auth.checkAdmin(callerOf(context));
        return create(AuthStatusResponseSchema, { header: header(), enabled: auth.enabled, authRevision: BigInt(auth.revision) });
      }),
    authenticate: (request) =>
      guarded(async () => {
        await server.readBarrier();
        for (let attempt = 1; ; attempt++) {
          const { hash: stored, revision } = auth.passwordOf(request.name);
          if (!(await server.passwords.verify(request.password, stored))) throw etcdError("authFailed");
          const login = (await server.proposeAuth(
            RequestKind.Authenticate,
            create(InternalAuthenticateRequestSchema, { name: request.name, simpleTokenPrefix: server.tokens.newPrefix() }),
            undefined,
          )) as AppliedLogin;
          // The password checked may have changed before the login was applied.
          if (login.revision === revision) {
            const token = await server.tokens.issue(login.token, login.username, login.revision);
            return create(AuthenticateResponseSchema, { header: header(), token });
          }
          if (attempt >= loginAttemptsMax) throw etcdError("authOldRevision");
        }
      }),
    userAdd: (request, context) =>
      guarded(async () => {
        if (request.name.length === 0) throw etcdError("userEmpty");
        // Refused before spending a hash on a caller who may not add users.
        auth.checkAdmin(callerOf(context));
        const noPassword = request.options?.noPassword === true;
        const hashedPassword = noPassword ? "" : await hash(request.password);
        const logged = create(AuthUserAddRequestSchema, { name: request.name, options: request.options, hashedPassword });
        await change(RequestKind.AuthUserAdd, logged, context);
        return create(AuthUserAddResponseSchema, { header: header() });
      }),
    userGet: (request, context) =>
      guarded(async () => {
        await server.readBarrier();
        const caller = callerOf(context);
        // A user may read its own roles (etcd's authApplierV3.UserGet).
        if (caller?.username !== request.name) auth.checkAdmin(caller);
        return create(AuthUserGetResponseSchema, { header: header(), roles: auth.userGet(request.name) });
      }),
    userList: (_request, context) =>
      guarded(async () => {
        await server.readBarrier();
        auth.checkAdmin(callerOf(context));
        return create(AuthUserListResponseSchema, { header: header(), users: auth.userList() });
      }),
    userDelete: (request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthUserDelete, request, context);
        return create(AuthUserDeleteResponseSchema, { header: header() });
      }),
    userChangePassword: (request, context) =>
      guarded(async () => {
        auth.checkAdmin(callerOf(context));
        const hashedPassword = await hash(request.password);
        await change(RequestKind.AuthUserChangePassword, create(AuthUserChangePasswordRequestSchema, { name: request.name, hashedPassword }), context);
        return create(AuthUserChangePasswordResponseSchema, { header: header() });
      }),
    userGrantRole: (request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthUserGrantRole, request, context);
        return create(AuthUserGrantRoleResponseSchema, { header: header() });
      }),
    userRevokeRole: (request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthUserRevokeRole, request, context);
        return create(AuthUserRevokeRoleResponseSchema, { header: header() });
      }),
    roleAdd: (request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthRoleAdd, request, context);
        return create(AuthRoleAddResponseSchema, { header: header() });
      }),
    roleGet: (request, context) =>
      guarded(async () => {
        await server.readBarrier();
        const caller = callerOf(context);
        // A user may read a role it has (etcd's authApplierV3.RoleGet).
        if (caller === undefined || !auth.hasRole(caller.username, request.role)) auth.checkAdmin(caller);
        return create(AuthRoleGetResponseSchema, { header: header(), perm: auth.roleGet(request.role) });
      }),
    roleList: (_request, context) =>
      guarded(async () => {
        await server.readBarrier();
        auth.checkAdmin(callerOf(context));
        return create(AuthRoleListResponseSchema, { header: header(), roles: auth.roleList() });
      }),
    roleDelete: (request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthRoleDelete, request, context);
        return create(AuthRoleDeleteResponseSchema, { header: header() });
      }),
    roleGrantPermission: (request, context) =>
      guarded(async () => {
        if (request.perm === undefined) throw etcdError("permissionNotGiven");
        await change(RequestKind.AuthRoleGrantPermission, request, context);
        return create(AuthRoleGrantPermissionResponseSchema, { header: header() });
      }),
    roleRevokePermission: (request, context) =>
      guarded(async () => {
        await change(RequestKind.AuthRoleRevokePermission, request, context);
        return create(AuthRoleRevokePermissionResponseSchema, { header: header() });
      }),
  };
}
