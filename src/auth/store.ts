// etcd's auth store (auth/store.go): users, roles and their key permissions,
// the enabled flag and the auth revision, changed only by applying committed
// log entries, so every member holds the same state. Kept in the backend's
// "auth", "authUsers" and "authRoles" buckets (etcd's names and its authpb
// records) in the same transaction as the entry that changed them.
//
// The auth revision counts changes: every request carries the revision its
// user was checked at, and a request checked before a change is refused with
// "revision of auth store is old" rather than run with rights since revoked
// (the time-of-check/time-of-use guard). Synchronous and deterministic: this
// runs on the apply path; password hashing happens before proposing.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PermissionSchema, RoleSchema, UserAddOptionsSchema, UserSchema, type Permission, type Role, type User } from "../gen/authpb/auth_pb.ts";
import { etcdError } from "../errors.ts";
import { compareBytes } from "../mvcc/key-bytes.ts";
import { MergedPermissions, permissionRead, permissionWrite } from "./permissions.ts";

/**
 * Longest user name, in UTF-8 bytes. Every request of a user carries its name
 * in the log entry's header (a 16-bit length, src/server/request-codec.ts);
 * etcd has no limit, but a longer name could never be logged with a request.
 */
export const usernameBytesMax = 65_535;

export const rootUser = "root";
export const rootRole = "root";

const authBucket = "auth";
const usersBucket = "authUsers";
const rolesBucket = "authRoles";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const enabledKey = encoder.encode("authEnabled");
const revisionKey = encoder.encode("authRevision");

/** Who a request runs as, and the auth revision it was checked at (0: no user). */
export interface AuthInfo {
  username: string;
  revision: number;
}

/** What the auth store needs from the backend. */
export interface AuthBackend {
  bucketPut(name: string, key: Uint8Array, value: Uint8Array): void;
  bucketGet(name: string, key: Uint8Array): Uint8Array | undefined;
  bucketDelete(name: string, key: Uint8Array): void;
  bucketEntries(name: string): [Uint8Array, Uint8Array][];
}

/** Told when tokens must stop working (a user deleted or its password changed, auth disabled). */
export interface TokenInvalidation {
  invalidateUser(username: string): void;
  enable(): void;
  disable(): void;
}

export class AuthStore {
  private enabledFlag = false;
  private revisionNumber = 0;
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();
  /** Each user's merged permissions, rebuilt after every change (etcd's rangePermCache). */
  private permissions = new Map<string, MergedPermissions>();
  /** Called after each applied change (watchers re-check their users). */
  onChanged: (() => void) | undefined;

  constructor(
    private readonly backend: AuthBackend,
    private readonly tokens: TokenInvalidation,
  ) {
    this.reload();
  }

  /** Reads everything from the backend again (at start, or after a snapshot replaced its file). */
  reload(): void {
    const enabled = this.backend.bucketGet(authBucket, enabledKey);
    this.enabledFlag = enabled !== undefined && enabled[0] === 1;
    const revision = this.backend.bucketGet(authBucket, revisionKey);
    this.revisionNumber = revision === undefined || revision.length !== 8 ? 0 : Number(new DataView(revision.buffer, revision.byteOffset, 8).getBigUint64(0));
    this.users.clear();
    for (const [key, value] of this.backend.bucketEntries(usersBucket)) this.users.set(decoder.decode(key), fromBinary(UserSchema, value));
    this.roles.clear();
    for (const [key, value] of this.backend.bucketEntries(rolesBucket)) this.roles.set(decoder.decode(key), fromBinary(RoleSchema, value));
    this.refreshPermissions();
    if (this.enabledFlag) this.tokens.enable();
    else this.tokens.disable();
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  get revision(): number {
    return this.revisionNumber;
  }

  // --- changes (applied from the log) ------------------------------------

  enable(): void {
    if (this.enabledFlag) return;
    const root = this.users.get(rootUser);
    if (root === undefined) throw etcdError("rootUserNotExist");
    if (!root.roles.includes(rootRole)) throw etcdError("rootRoleNotExist");
    this.backend.bucketPut(authBucket, enabledKey, new Uint8Array([1]));
    this.enabledFlag = true;
    this.tokens.enable();
    // etcd does not count enabling as a change of the revision.
    this.onChanged?.();
  }

  disable(): void {
    if (!this.enabledFlag) return;
    this.backend.bucketPut(authBucket, enabledKey, new Uint8Array([0]));
    this.enabledFlag = false;
    this.commitRevision();
    this.tokens.disable();
  }

  /** `hashedPassword` is bcrypt's, made by the proposer; empty for a user without a password. */
  userAdd(name: string, hashedPassword: string, noPassword: boolean): void {
    if (name.length === 0) throw etcdError("userEmpty");
    if (encoder.encode(name).length > usernameBytesMax) throw etcdError("requestTooLarge");
    if (this.users.has(name)) throw etcdError("userAlreadyExist");
    const user = create(UserSchema, {
      name: encoder.encode(name),
      password: noPassword ? new Uint8Array(0) : encoder.encode(hashedPassword),
      options: create(UserAddOptionsSchema, { noPassword }),
    });
    this.putUser(name, user);
    this.commitRevision();
  }

  userDelete(name: string): void {
    if (this.enabledFlag && name === rootUser) throw etcdError("invalidAuthMgmt");
    if (!this.users.has(name)) throw etcdError("userNotFound");
    this.users.delete(name);
    this.backend.bucketDelete(usersBucket, encoder.encode(name));
    this.commitRevision();
    this.tokens.invalidateUser(name);
  }

  userChangePassword(name: string, hashedPassword: string): void {
    const user = this.users.get(name);
    if (user === undefined) throw etcdError("userNotFound");
    this.putUser(name, create(UserSchema, { ...user, password: encoder.encode(hashedPassword) }));
    this.commitRevision();
    this.tokens.invalidateUser(name);
  }

  userGrantRole(name: string, role: string): void {
    const user = this.users.get(name);
    if (user === undefined) throw etcdError("userNotFound");
    // The root role need not exist as a role record.
    if (role !== rootRole && !this.roles.has(role)) throw etcdError("roleNotFound");
    if (user.roles.includes(role)) return;
    const roles = [...user.roles, role].sort();
    this.putUser(name, create(UserSchema, { ...user, roles }));
    this.commitRevision();
  }

  userRevokeRole(name: string, role: string): void {
    if (this.enabledFlag && name === rootUser && role === rootRole) throw etcdError("invalidAuthMgmt");
    const user = this.users.get(name);
    if (user === undefined) throw etcdError("userNotFound");
    const roles = user.roles.filter((granted) => granted !== role);
    if (roles.length === user.roles.length) throw etcdError("roleNotGranted");
    this.putUser(name, create(UserSchema, { ...user, roles }));
    this.commitRevision();
  }

  roleAdd(name: string): void {
    if (name.length === 0) throw etcdError("roleEmpty");
    if (this.roles.has(name)) throw etcdError("roleAlreadyExist");
    this.putRole(name, create(RoleSchema, { name: encoder.encode(name) }));
    this.commitRevision();
  }

  roleDelete(name: string): void {
    if (this.enabledFlag && name === rootRole) throw etcdError("invalidAuthMgmt");
    if (!this.roles.has(name)) throw etcdError("roleNotFound");
    this.roles.delete(name);
    this.backend.bucketDelete(rolesBucket, encoder.encode(name));
    for (const [userName, user] of this.users) {
      if (user.roles.includes(name)) this.putUser(userName, create(UserSchema, { ...user, roles: user.roles.filter((role) => role !== name) }));
    }
    this.commitRevision();
  }

  /** Adds a permission, or changes the type of the one with the same key and range end; kept sorted by key. */
  roleGrantPermission(name: string, permission: Permission): void {
    const role = this.roles.get(name);
    if (role === undefined) throw etcdError("roleNotFound");
    const same = role.keyPermission.find((p) => bytesEqual(p.key, permission.key) && bytesEqual(p.rangeEnd, permission.rangeEnd));
    const next = create(PermissionSchema, { key: permission.key, rangeEnd: permission.rangeEnd, permType: permission.permType });
    const keyPermission =
      same === undefined
        ? [...role.keyPermission, next].sort((a, b) => compareBytes(a.key, b.key))
        : role.keyPermission.map((p) => (p === same ? next : p));
    this.putRole(name, create(RoleSchema, { ...role, keyPermission }));
    this.commitRevision();
  }

  roleRevokePermission(name: string, key: Uint8Array, rangeEnd: Uint8Array): void {
    const role = this.roles.get(name);
    if (role === undefined) throw etcdError("roleNotFound");
    const keyPermission = role.keyPermission.filter((p) => !bytesEqual(p.key, key) || !bytesEqual(p.rangeEnd, rangeEnd));
    if (keyPermission.length === role.keyPermission.length) throw etcdError("permissionNotGranted");
    this.putRole(name, create(RoleSchema, { ...role, keyPermission }));
    this.commitRevision();
  }

  /**
   * An Authenticate entry applied: the user may have a token. The password
   * was checked before proposing (checkPassword); this re-checks what may
   * have changed since. Returns the revision the token carries.
   */
  authenticate(name: string): number {
    if (!this.enabledFlag) throw etcdError("authNotEnabled");
    const user = this.users.get(name);
    if (user === undefined || user.options?.noPassword === true) throw etcdError("authFailed");
    return this.revisionNumber;
  }

  // --- questions ----------------------------------------------------------

  /** The bcrypt hash to check a login against, and the revision it was read at. */
  passwordOf(name: string): { hash: string; revision: number } {
    if (!this.enabledFlag) throw etcdError("authNotEnabled");
    const user = this.users.get(name);
    if (user === undefined || user.options?.noPassword === true) throw etcdError("authFailed");
    return { hash: decoder.decode(user.password), revision: this.revisionNumber };
  }

  userGet(name: string): string[] {
    const user = this.users.get(name);
    if (user === undefined) throw etcdError("userNotFound");
    return [...user.roles];
  }

  userList(): string[] {
    return [...this.users.keys()].sort();
  }

  roleGet(name: string): Permission[] {
    const role = this.roles.get(name);
    if (role === undefined) throw etcdError("roleNotFound");
    return role.keyPermission;
  }

  roleList(): string[] {
    return [...this.roles.keys()].sort();
  }

  hasRole(username: string, role: string): boolean {
    return this.users.get(username)?.roles.includes(role) ?? false;
  }

  userExists(username: string): boolean {
    return this.users.has(username);
  }

  // --- permission checks (etcd's Is*Permitted) ------------------------------

  checkRange(info: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.checkOp(info, key, rangeEnd, permissionRead);
  }

  checkPut(info: AuthInfo | undefined, key: Uint8Array): void {
    this.checkOp(info, key, new Uint8Array(0), permissionWrite);
  }

  checkDeleteRange(info: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.checkOp(info, key, rangeEnd, permissionWrite);
  }

  /** Root users only (user and role management, defragment, snapshot, hash, membership). */
  checkAdmin(info: AuthInfo | undefined): void {
    if (!this.enabledFlag) return;
    if (info === undefined || info.username === "") throw etcdError("userEmpty");
    const user = this.users.get(info.username);
    if (user === undefined) throw etcdError("userNotFound");
    if (!user.roles.includes(rootRole)) throw etcdError("permissionDenied");
  }

  /** A read served from local state: refused when the auth store changed while it ran (etcd's doSerialize). */
  checkUnchangedSince(info: AuthInfo | undefined): void {
    if (info !== undefined && info.revision !== 0 && info.revision !== this.revisionNumber) throw etcdError("authOldRevision");
  }

  private checkOp(info: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array, permType: number): void {
    if (!this.enabledFlag) return;
    if (info === undefined || info.revision === 0) throw etcdError("userEmpty");
    if (info.revision < this.revisionNumber) throw etcdError("authOldRevision");
    const user = this.users.get(info.username);
    if (user === undefined) throw etcdError("permissionDenied");
    if (user.roles.includes(rootRole)) return;
    const merged = this.permissions.get(info.username);
    if (merged === undefined || !merged.allows(permType, key, rangeEnd)) throw etcdError("permissionDenied");
  }

  // --- storage ------------------------------------------------------------

  private putUser(name: string, user: User): void {
    this.users.set(name, user);
    this.backend.bucketPut(usersBucket, encoder.encode(name), toBinary(UserSchema, user));
  }

  private putRole(name: string, role: Role): void {
    this.roles.set(name, role);
    this.backend.bucketPut(rolesBucket, encoder.encode(name), toBinary(RoleSchema, role));
  }

  private commitRevision(): void {
    this.revisionNumber += 1;
    const value = new Uint8Array(8);
    new DataView(value.buffer).setBigUint64(0, BigInt(this.revisionNumber));
    this.backend.bucketPut(authBucket, revisionKey, value);
    this.refreshPermissions();
    this.onChanged?.();
  }

  private refreshPermissions(): void {
    const permissions = new Map<string, MergedPermissions>();
    for (const [name, user] of this.users) {
      const granted: Permission[] = [];
      for (const roleName of user.roles) granted.push(...(this.roles.get(roleName)?.keyPermission ?? []));
      permissions.set(name, new MergedPermissions(granted));
    }
    this.permissions = permissions;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return compareBytes(a, b) === 0;
}
