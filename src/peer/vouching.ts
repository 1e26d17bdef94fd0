// Senders this member does not know yet, admitted on the word of a member it
// does know. A member that missed the addition of a new member (it was down
// or partitioned while the addition was applied) refuses that member as
// "error sender not found" until its own log applies the addition; but when
// the new member leads, that log can only come from the new member, and with
// pre-vote and check-quorum nobody else may ever lead: the lagging member
// would never catch up. etcd 3.4 escapes because its pipeline route takes any
// sender; edgetcd keeps refusing unknown senders, and instead asks the members
// it knows (GET /members on their peer port) whether the sender is one of
// theirs. If one lists it, the sender is admitted ("vouched") for a bounded
// time, and this member can answer it.
//
// A flood of forged ids must not become a flood of lookups: each id is looked
// up at most once per `lookupIntervalMs`, at most `lookupsPerIntervalMax`
// lookups start per interval in all, and at most `sendersTrackedMax` ids are
// remembered. While a lookup is out the sender is refused; it retries.
import type { Clock, Logger } from "../ports.ts";
import type { NodeId } from "../raft/types.ts";
import type { Membership, MembershipOf } from "./admission.ts";

export interface VouchingLimits {
  /** An id is looked up at most this often. */
  lookupIntervalMs: number;
  /** Lookups started per `lookupIntervalMs`, all ids together. */
  lookupsPerIntervalMax: number;
  /** Ids remembered (vouched, refused or being looked up); the oldest settled one makes room. */
  sendersTrackedMax: number;
  /** How long a vouch admits its sender; re-asked in its second half while the sender keeps talking. */
  vouchedForMs: number;
}

export const defaultVouchingLimits: VouchingLimits = {
  lookupIntervalMs: 1000,
  lookupsPerIntervalMax: 4,
  sendersTrackedMax: 64,
  vouchedForMs: 30_000,
};

/**
 * Asks the members this member knows whether `id` is a current member; its
 * peer URLs if one of them lists it, undefined if none does (or none answers).
 */
export type MemberLookup = (id: NodeId) => Promise<string[] | undefined>;

export interface VouchingOptions {
  clock: Clock;
  logger: Logger;
  lookup: MemberLookup;
  limits?: Partial<VouchingLimits>;
  /** A sender was vouched for: dial it, so this member's answers reach it. */
  onVouched(id: NodeId, peerUrls: string[]): void;
  /** A vouch ended (refused on re-asking, expired or forgotten): undo what onVouched did, unless the id became a member meanwhile. */
  onLapsed(id: NodeId): void;
}

interface TrackedSender {
  state: "looking-up" | "vouched" | "refused";
  /** When the last lookup of this id started. */
  lookedUpAtMs: number;
  /** When the vouch was given (state "vouched"). */
  vouchedAtMs: number;
  /** A re-asking of a vouched sender is out. */
  refreshing: boolean;
}

export class SenderVouching {
  private readonly limits: VouchingLimits;
  /** In insertion order, oldest first: the order in which entries are forgotten. */
  private readonly senders = new Map<NodeId, TrackedSender>();
  private intervalStartMs = Number.NEGATIVE_INFINITY;
  private lookupsThisInterval = 0;

  constructor(private readonly options: VouchingOptions) {
    this.limits = { ...defaultVouchingLimits, ...options.limits };
  }

  /**
   * Whether `id` (unknown to this member's own member set) is vouched for now.
   * Starts a lookup when none is out and the limits allow; until it answers,
   * false.
   */
  vouches(id: NodeId): boolean {
    const nowMs = this.options.clock.nowMs();
    const sender = this.senders.get(id);
    if (sender?.state === "vouched") {
      const ageMs = nowMs - sender.vouchedAtMs;
      if (ageMs < this.limits.vouchedForMs) {
        if (ageMs >= this.limits.vouchedForMs / 2 && !sender.refreshing && this.mayLookUp(sender, nowMs)) this.lookUp(id, sender, nowMs);
        return true;
      }
      this.lapse(id, sender, "expired");
    }
    if (sender === undefined) {
      if (!this.makeRoom()) return false;
      const tracked: TrackedSender = { state: "refused", lookedUpAtMs: Number.NEGATIVE_INFINITY, vouchedAtMs: 0, refreshing: false };
      this.senders.set(id, tracked);
      if (this.mayLookUp(tracked, nowMs)) this.lookUp(id, tracked, nowMs);
      else this.senders.delete(id); // not tracked unless a lookup is out for it
      return false;
    }
    if (sender.state === "refused" && this.mayLookUp(sender, nowMs)) this.lookUp(id, sender, nowMs);
    return false;
  }

  private mayLookUp(sender: TrackedSender, nowMs: number): boolean {
    if (sender.state === "looking-up" || nowMs - sender.lookedUpAtMs < this.limits.lookupIntervalMs) return false;
    if (nowMs - this.intervalStartMs >= this.limits.lookupIntervalMs) {
      this.intervalStartMs = nowMs;
      this.lookupsThisInterval = 0;
    }
    return this.lookupsThisInterval < this.limits.lookupsPerIntervalMax;
  }

  private lookUp(id: NodeId, sender: TrackedSender, nowMs: number): void {
    this.lookupsThisInterval++;
    sender.lookedUpAtMs = nowMs;
    const wasVouched = sender.state === "vouched";
    if (wasVouched) sender.refreshing = true;
    else sender.state = "looking-up";
    const settle = (peerUrls: string[] | undefined) => {
      if (this.senders.get(id) !== sender) return; // forgotten meanwhile
      sender.refreshing = false;
      if (peerUrls === undefined) {
        if (sender.state === "vouched") return this.lapse(id, sender, "no known member lists it any more");
        sender.state = "refused";
        return;
      }
      sender.vouchedAtMs = this.options.clock.nowMs();
      if (sender.state === "vouched") return;
      sender.state = "vouched";
      this.options.logger.info("admitting a sender this member does not know yet: a known member vouched for it", {
        "remote-peer-id": id.toString(16),
        "remote-peer-urls": peerUrls,
      });
      this.options.onVouched(id, peerUrls);
    };
    this.options.lookup(id).then(settle, () => settle(undefined));
  }

  private lapse(id: NodeId, sender: TrackedSender, reason: string): void {
    sender.state = "refused";
    sender.refreshing = false;
    this.options.logger.info("no longer admitting a vouched sender", { "remote-peer-id": id.toString(16), reason });
    this.options.onLapsed(id);
  }

  /** Makes room for one more id by forgetting the oldest settled one; false when every tracked id has a lookup out. */
  private makeRoom(): boolean {
    if (this.senders.size < this.limits.sendersTrackedMax) return true;
    for (const [id, sender] of this.senders) {
      if (sender.state === "looking-up" || sender.refreshing) continue;
      this.senders.delete(id);
      if (sender.state === "vouched") this.options.onLapsed(id);
      return true;
    }
    return false;
  }
}

/**
 * The member set with vouching: a sender this member's own member set does
 * not know is a member while a known member vouches for it. A removed id is
 * never vouched for.
 */
export function withVouching(membershipOf: MembershipOf, vouching: SenderVouching): MembershipOf {
  return (id): Membership => {
    const membership = membershipOf(id);
    if (membership !== "unknown") return membership;
    return vouching.vouches(id) ? "member" : "unknown";
  };
}
