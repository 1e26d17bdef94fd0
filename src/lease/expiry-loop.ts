// The primary's expiry loop (etcd's lessor runLoop plus the server's
// revokeExpiredLeases): every half second, while this member leads, take the
// expired leases, at most half the per-second revoke rate at a time, and
// propose a revoke for each through the log. A member that stopped leading
// demotes its lessor here, so it neither expires nor renews anything. With
// checkpoints enabled it also proposes the due remaining-TTL checkpoints, in
// batches of up to a thousand (etcd's checkpointScheduledLeases).
import type { Clock, Logger, Timer } from "../ports.ts";
import { leaseIdHex } from "./lease-id.ts";
import { checkpointBatchMax, expiryCheckIntervalMs, leaseRevokeRatePerSecond, type LeaseCheckpoint, type Lessor } from "./lessor.ts";

export interface ExpiryLoopHost {
  /** Whether this member is the Raft leader now. */
  isLeader(): boolean;
  /** Proposes a revoke of `id` and resolves once it is applied. */
  revoke(id: bigint): Promise<unknown>;
  /** Proposes remaining-TTL checkpoints (one LeaseCheckpoint request). */
  checkpoint(checkpoints: LeaseCheckpoint[]): Promise<unknown>;
}

/** Leases handed to revoke per check: half the per-second rate, at two checks a second. */
export const revokesPerCheckMax = leaseRevokeRatePerSecond / 2;
/** Checkpoint proposals per check at most (etcd's leaseCheckpointRate / 2). */
export const checkpointProposalsPerCheckMax = 500;

export class LeaseExpiryLoop {
  private timer: Timer | undefined;

  constructor(
    private readonly lessor: Lessor,
    private readonly clock: Clock,
    private readonly host: ExpiryLoopHost,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer ??= this.clock.setInterval(expiryCheckIntervalMs, () => this.check());
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One pass; public so tests can step it by hand. */
  check(): void {
    if (!this.host.isLeader()) {
      if (this.lessor.isPrimary) this.lessor.demote();
      return;
    }
    if (!this.lessor.isPrimary) return; // promoted once the new term's first entry applies
    for (const id of this.lessor.takeExpired(revokesPerCheckMax)) {
      this.host.revoke(id).catch((error: unknown) => {
        // Not found means someone revoked it first; anything else is retried
        // when the lease comes due again.
        this.logger.warn("failed to revoke lease", {
          "lease-id": leaseIdHex(id).padStart(16, "0"),
          error: error instanceof Error ? error.message : String(error),
        });
      });
    }
    for (let proposals = 0; proposals < checkpointProposalsPerCheckMax; proposals++) {
      const due = this.lessor.takeDueCheckpoints(checkpointBatchMax);
      if (due.length > 0) {
        this.host.checkpoint(due).catch((error: unknown) => {
          // A lost checkpoint only means a new leader would grant more time.
          this.logger.warn("failed to checkpoint leases", { error: error instanceof Error ? error.message : String(error) });
        });
      }
      if (due.length < checkpointBatchMax) break;
    }
  }
}
