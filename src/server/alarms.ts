// etcd's alarms (etcdserver/api/v3alarm): per member, NOSPACE when the
// backend passed --quota-backend-bytes, CORRUPT when a member's data differs.
// Raised and cleared through the log, so every member holds the same set,
// kept in the backend's "alarm" bucket in the apply's transaction. While
// NOSPACE is up, writes that add data fail with "database space exceeded"
// (deletes, compaction and defragmentation still run, to make room); while
// CORRUPT is up, every KV request fails with "corrupt cluster".
import { create } from "@bufbuild/protobuf";
import { AlarmMemberSchema, AlarmRequest_AlarmAction, AlarmType, type AlarmMember, type AlarmRequest } from "../gen/etcdserverpb/rpc_pb.ts";
import { etcdError } from "../errors.ts";
import type { Logger } from "../ports.ts";
import { txnCostBytes } from "./quota.ts";
import { RequestKind, type InternalRequest } from "./request-codec.ts";

/** What the alarm store needs from the backend. */
export interface AlarmBackend {
  bucketPut(name: string, key: Uint8Array, value: Uint8Array): void;
  bucketDelete(name: string, key: Uint8Array): void;
  bucketEntries(name: string): [Uint8Array, Uint8Array][];
}

const bucket = "alarm";

function keyOf(memberId: bigint, alarm: AlarmType): Uint8Array {
  const key = new Uint8Array(9);
  const view = new DataView(key.buffer);
  view.setBigUint64(0, memberId);
  key[8] = alarm;
  return key;
}

export class AlarmStore {
  /** "<member id>/<alarm>" → alarm, in the order raised. */
  private readonly alarms = new Map<string, AlarmMember>();

  constructor(private readonly backend: AlarmBackend) {
    this.reload();
  }

  reload(): void {
    this.alarms.clear();
    for (const [key] of this.backend.bucketEntries(bucket)) {
      if (key.length !== 9) continue;
      const memberId = new DataView(key.buffer, key.byteOffset, 9).getBigUint64(0);
      this.remember(create(AlarmMemberSchema, { memberID: memberId, alarm: key[8] as AlarmType }));
    }
  }

  /** Raises `alarm` for a member; undefined when it was up already (etcd answers nothing new then). */
  activate(memberId: bigint, alarm: AlarmType): AlarmMember | undefined {
    if (alarm === AlarmType.NONE || this.alarms.has(nameOf(memberId, alarm))) return undefined;
    const member = create(AlarmMemberSchema, { memberID: memberId, alarm });
    this.remember(member);
    this.backend.bucketPut(bucket, keyOf(memberId, alarm), new Uint8Array(0));
    return member;
  }

  /** Clears `alarm` for a member; undefined when it was not up. */
  deactivate(memberId: bigint, alarm: AlarmType): AlarmMember | undefined {
    const member = this.alarms.get(nameOf(memberId, alarm));
    if (member === undefined) return undefined;
    this.alarms.delete(nameOf(memberId, alarm));
    this.backend.bucketDelete(bucket, keyOf(memberId, alarm));
    return member;
  }

  /** Every alarm up of that type (NONE: every alarm). */
  get(alarm: AlarmType = AlarmType.NONE): AlarmMember[] {
    return [...this.alarms.values()].filter((member) => alarm === AlarmType.NONE || member.alarm === alarm);
  }

  /** Asked on every apply: no allocation. */
  has(alarm: AlarmType): boolean {
    if (this.alarms.size === 0) return false;
    for (const member of this.alarms.values()) if (member.alarm === alarm) return true;
    return false;
  }

  /**
   * Refuses what the alarms up forbid: while NOSPACE is up, writes that add
   * data (etcd's applierV3Capped); while CORRUPT is up, every KV write
   * (applierV3Corrupt).
   */
  checkAllows(internal: InternalRequest): void {
    const kind = internal.kind;
    const kvWrite = kind === RequestKind.Put || kind === RequestKind.DeleteRange || kind === RequestKind.Txn || kind === RequestKind.Compact;
    if (kvWrite && this.has(AlarmType.CORRUPT)) throw etcdError("corrupt");
    if (!this.has(AlarmType.NOSPACE)) return;
    const adds = kind === RequestKind.Put || kind === RequestKind.LeaseGrant || (kind === RequestKind.Txn && txnCostBytes(internal.request) > 0);
    if (adds) throw etcdError("noSpace");
  }

  /** An applied Alarm request: the alarms listed, or the one raised or cleared (none when nothing changed). */
  apply(request: AlarmRequest, logger: Logger): AlarmMember[] {
    switch (request.action) {
      case AlarmRequest_AlarmAction.GET:
        return this.get(request.alarm);
      case AlarmRequest_AlarmAction.ACTIVATE: {
        const raised = this.activate(request.memberID, request.alarm);
        if (raised === undefined) return [];
        logger.warn("alarm raised", { "member-id": request.memberID.toString(16), alarm: AlarmType[request.alarm] });
        return [raised];
      }
      case AlarmRequest_AlarmAction.DEACTIVATE: {
        const cleared = this.deactivate(request.memberID, request.alarm);
        if (cleared === undefined) return [];
        logger.info("alarm cleared", { "member-id": request.memberID.toString(16), alarm: AlarmType[request.alarm] });
        return [cleared];
      }
      default:
        return [];
    }
  }

  private remember(member: AlarmMember): void {
    this.alarms.set(nameOf(member.memberID, member.alarm), member);
  }
}

function nameOf(memberId: bigint, alarm: AlarmType): string {
  return `${memberId}/${alarm}`;
}
