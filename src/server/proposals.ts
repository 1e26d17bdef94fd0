// Proposals and their replies. A request gets an id, goes into the log as an
// entry, and its caller waits for that entry to be applied on this member:
// apply hands the result to the waiter with the same id (take). A proposal
// made while there is no leader waits for one; one lost with a leader change
// is never applied and times out with etcd's error.
import type { Clock } from "../ports.ts";
import { EtcdError, etcdError, GrpcCode } from "../errors.ts";
import { encodeRequest, type InternalRequest } from "./request-codec.ts";

export interface Waiter {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface ProposalsOptions {
  memberId: number;
  clock: Clock;
  /** etcd's request timeout: how long a reply, or a leader, is waited for. */
  requestTimeoutMs: number;
  /** How often a proposal without a leader looks again. */
  pollMs: number;
  maxRequestBytes: number;
  /** The log: takes an entry's data (throws etcd's error when it cannot), and names the leader. */
  log: { propose(data: Uint8Array): void; readonly leader: number };
  /** A member whose removal this member has applied. */
  isRemoved: (id: number) => boolean;
  /** Throws etcd's error when the member no longer serves. */
  assertServing: () => void;
  /** Where the id counter starts (request ids must not repeat across restarts). */
  counterStart: number;
}

export class Proposals {
  private readonly waiters = new Map<number, Waiter>();
  private counter: number;
  /** Proposals that failed before they were applied (etcd_server_proposals_failed_total). */
  failedCount = 0;

  constructor(private readonly options: ProposalsOptions) {
    this.counter = options.counterStart % 2 ** 32;
  }

  /** Unique across members (the member's id prefix) and restarts (a counter started from the time): the waiter key on the proposer. */
  nextId(): number {
    this.counter = (this.counter + 1) % 2 ** 32;
    return (this.options.memberId % 2 ** 20) * 2 ** 32 + this.counter;
  }

  /** Proposals waiting for their entry to be applied here. */
  get pending(): number {
    return this.waiters.size;
  }

  /** Proposes `internal`; resolves with what applying it returned. */
  propose<T>(internal: InternalRequest): Promise<T> {
    this.options.assertServing();
    const data = encodeRequest(internal);
    if (data.length > this.options.maxRequestBytes) return Promise.reject(etcdError("requestTooLarge"));
    // Like etcd, a proposal made while there is no leader waits for one, for
    // up to the request timeout.
    if (this.leader() === 0) return this.waitForLeader().then(() => this.propose<T>(internal));
    const reply = this.waitFor<T>(internal.id);
    try {
      this.options.log.propose(data);
    } catch (error) {
      this.settle(internal.id, error);
    }
    return reply;
  }

  /**
   * The leader a proposal made here goes to, or 0 when there is none to send
   * it to. A leader whose removal this member has applied counts as none: it
   * stepped down when it applied its removal (or has stopped), so a proposal
   * forwarded to it would be dropped without an answer and its waiter would
   * wait out the request timeout. The remaining members elect a new leader
   * (at once when the removed leader's TimeoutNow arrives, otherwise within
   * an election timeout), and the proposal goes there.
   */
  leader(): number {
    const leader = this.options.log.leader;
    return leader !== 0 && leader !== this.options.memberId && this.options.isRemoved(leader) ? 0 : leader;
  }

  async waitForLeader(): Promise<void> {
    const { clock } = this.options;
    const deadline = clock.nowMs() + this.options.requestTimeoutMs;
    while (this.leader() === 0) {
      this.options.assertServing();
      // What etcd 3.4 answers when no leader appears in time.
      if (clock.nowMs() >= deadline) throw new EtcdError(GrpcCode.Unknown, "context deadline exceeded");
      await new Promise<void>((resolve) => clock.setTimer(this.options.pollMs, resolve));
    }
  }

  /** The reply to request `id`, delivered when its entry is applied here (take), or etcd's timeout. */
  waitFor<T>(id: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.options.clock.setTimer(this.options.requestTimeoutMs, () => {
        if (!this.waiters.delete(id)) return;
        this.failedCount++;
        reject(etcdError("timeout"));
      });
      this.waiters.set(id, {
        resolve: (value) => {
          timer.cancel();
          resolve(value as T);
        },
        reject: (error) => {
          timer.cancel();
          reject(error);
        },
      });
    });
  }

  /** The waiter of request `id`, removed: apply answers it. Undefined when the request was made on another member. */
  take(id: number): Waiter | undefined {
    const waiter = this.waiters.get(id);
    if (waiter !== undefined) this.waiters.delete(id);
    return waiter;
  }

  /** Fails a waiting request at once (its proposal was refused). */
  settle(id: number, error: unknown): void {
    const waiter = this.take(id);
    if (waiter === undefined) return;
    this.failedCount++;
    waiter.reject(error);
  }

  /** Fails every waiting request (the member stops). */
  failAll(error: unknown): void {
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const waiter of waiters) waiter.reject(error);
  }
}
