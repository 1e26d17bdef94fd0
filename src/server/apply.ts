// What a committed request does when applied, on every member alike: the
// user's rights checked again against the auth state at this entry (etcd's
// authApplierV3), alarms that refuse writes (NOSPACE, CORRUPT), then the
// change itself in MVCC, the lessor, the alarm store, the member store or the
// auth store. Throws etcd's errors for the client; any other throw is a bug
// the node stops on (etcd-server.ts applyEntries).
import { create } from "@bufbuild/protobuf";
import { AlarmResponseSchema, LeaseGrantResponseSchema, LeaseRevokeResponseSchema, type ResponseHeader } from "../gen/etcdserverpb/rpc_pb.ts";
import type { Logger } from "../ports.ts";
import { checkTxnPermitted } from "../auth/request-checks.ts";
import type { AuthInfo, AuthStore } from "../auth/store.ts";
import type { AuthTokens } from "../auth/tokens.ts";
import type { Lessor } from "../lease/lessor.ts";
import type { MvccStore } from "../mvcc/store.ts";
import type { AlarmStore } from "./alarms.ts";
import { applyAuthChange } from "./apply-auth.ts";
import type { KvApplier } from "./apply-kv.ts";
import type { MemberStore } from "./members.ts";
import { RequestKind, type InternalRequest } from "./request-codec.ts";

export interface RequestApplierOptions {
  kv: KvApplier;
  store: MvccStore;
  lessor: Lessor;
  auth: AuthStore;
  tokens: AuthTokens;
  alarms: AlarmStore;
  members: MemberStore;
  logger: Logger;
  /** A response header at `revision` (the store's current one when undefined). */
  header: (revision?: bigint) => ResponseHeader;
}

export class RequestApplier {
  constructor(private readonly options: RequestApplierOptions) {}

  /** Applies the request of the entry at `index`; returns its response. */
  apply(internal: InternalRequest, index: number): unknown {
    const { auth: authStore, kv, lessor, alarms, members, header } = this.options;
    let response: { header?: ResponseHeader | undefined };
    // The user's rights are checked again here, on every member, against the
    // auth state this entry is applied on (etcd's authApplierV3).
    const auth = internal.auth;
    alarms.checkAllows(internal);
    switch (internal.kind) {
      case RequestKind.Put: {
        const request = internal.request;
        authStore.checkPut(auth, request.key);
        this.checkLeaseKeysWritable(auth, request.lease);
        if (request.prevKv) authStore.checkRange(auth, request.key, new Uint8Array(0));
        response = kv.put(request);
        break;
      }
      case RequestKind.DeleteRange: {
        const request = internal.request;
        authStore.checkDeleteRange(auth, request.key, request.rangeEnd);
        if (request.prevKv) authStore.checkRange(auth, request.key, request.rangeEnd);
        response = kv.deleteRange(request);
        break;
      }
      case RequestKind.Txn:
        checkTxnPermitted(authStore, auth, internal.request);
        response = kv.txn(internal.request);
        break;
      case RequestKind.Compact:
        response = kv.compact(internal.request);
        break;
      case RequestKind.LeaseGrant: {
        const lease = lessor.grant(internal.request.ID, Number(internal.request.TTL));
        response = create(LeaseGrantResponseSchema, { ID: lease.id, TTL: BigInt(lease.ttlSeconds) });
        break;
      }
      case RequestKind.LeaseRevoke:
        this.checkLeaseKeysWritable(auth, internal.request.ID);
        this.revokeLease(internal.request.ID);
        response = create(LeaseRevokeResponseSchema, {});
        break;
      case RequestKind.LeaseCheckpoint:
        for (const checkpoint of internal.request.checkpoints) {
          lessor.checkpoint(checkpoint.ID, Number(checkpoint.remainingTTL));
        }
        return {};
      case RequestKind.Alarm:
        return create(AlarmResponseSchema, { header: header(), alarms: alarms.apply(internal.request, this.options.logger) });
      case RequestKind.MemberAttributes: {
        const member = members.get(Number(internal.request.ID));
        if (member !== undefined) {
          members.put({ ...member, name: internal.request.name, clientUrls: internal.request.clientURLs });
        }
        return {};
      }
      default: {
        const login = applyAuthChange(authStore, this.options.tokens, internal, index);
        return login ?? { header: header() };
      }
    }
    response.header = header(response.header?.revision);
    return response;
  }

  /** A revoke: the lease goes and its keys are deleted, all in one revision. */
  private revokeLease(id: bigint): void {
    const keys = this.options.lessor.revoke(id);
    this.options.store.write().run((txn) => {
      for (const key of keys) txn.deleteRange(key, undefined);
    });
  }

  /**
   * A lease's keys must all be writable by the user who revokes it or
   * attaches another key to it: revoking deletes them (etcd's checkLeasePuts).
   */
  private checkLeaseKeysWritable(auth: AuthInfo | undefined, leaseId: bigint): void {
    const { auth: authStore, lessor } = this.options;
    if (!authStore.enabled || leaseId === 0n) return;
    const lease = lessor.lookup(leaseId);
    if (lease === undefined) return;
    for (const key of lease.keys.values()) authStore.checkPut(auth, key);
  }
}
