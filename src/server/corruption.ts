// Corruption checks, as etcd 3.4's (etcdserver/corrupt.go), on by default
// here (etcd's are off unless asked for):
// - at start (--experimental-initial-corrupt-check, default true): before it
//   serves clients, a member compares its HashKV at its current revision with
//   each peer's at that revision; a peer with the same compact revision and
//   another hash means the data differ, and the member refuses to start
//   ("found data inconsistency with peers"). A peer that cannot answer (down,
//   behind, compacted past) is warned about and skipped;
// - periodically (--experimental-corrupt-check-time, default 1m; 0 turns it
//   off): the leader compares its HashKV with every member's at its current
//   revision and raises the CORRUPT alarm, through the log, for each member
//   that differs (its own too, when its hash moved without its revision),
//   after which every member refuses writes ("corrupt cluster") until an
//   operator disarms it.
// HashKV covers every revision kept (src/mvcc/store.ts); members at the same
// revision and compact revision hold the same rows, so they hash equal.
import { EtcdError } from "../errors.ts";
import type { Clock, Logger, Timer } from "../ports.ts";
import type { NodeId } from "../raft/types.ts";
import { askHashKV } from "../peer/hashkv.ts";
import type { PeerPost } from "../peer/lease-forward.ts";

export interface CorruptionCheckOptions {
  memberId: NodeId;
  clusterId: bigint;
  post: PeerPost;
  clock: Clock;
  logger: Logger;
  timeoutMs: number;
  /** The other members and their peer URLs. */
  peers(): Array<{ id: NodeId; peerUrls: readonly string[] }>;
  isLeader(): boolean;
  localHash(revision: number): Promise<{ hash: number; compactRevision: number; revision: number }>;
  /** Raises CORRUPT for `memberId` (through the log). */
  raiseCorrupt(memberId: NodeId): Promise<void>;
}

interface PeerHash {
  id: NodeId;
  hash?: number;
  compactRevision?: number;
  error?: unknown;
}

export class CorruptionCheck {
  private timer: Timer | undefined;
  private running = false;

  constructor(private readonly options: CorruptionCheckOptions) {}

  private async peerHashes(revision: number): Promise<PeerHash[]> {
    const { options } = this;
    return await Promise.all(
      options.peers().map(async (peer): Promise<PeerHash> => {
        try {
          const answer = await askHashKV(options.post, { from: options.memberId, to: peer.id, clusterId: options.clusterId, peerUrls: peer.peerUrls }, revision, options.timeoutMs);
          return { id: peer.id, hash: answer.hash, compactRevision: Number(answer.compactRevision) };
        } catch (error) {
          return { id: peer.id, error };
        }
      }),
    );
  }

  /** The check before serving: throws when a peer's data differ from this member's. */
  async initial(): Promise<void> {
    const { logger, memberId } = this.options;
    const local = await this.options.localHash(0);
    logger.info("starting initial corruption check", { "local-member-id": memberId.toString(16), revision: local.revision, "compact-revision": local.compactRevision });
    let mismatches = 0;
    for (const peer of await this.peerHashes(local.revision)) {
      const fields = { "local-member-id": memberId.toString(16), "remote-peer-id": peer.id.toString(16), revision: local.revision };
      if (peer.error !== undefined) {
        logger.warn("cannot fetch hash from remote peer", { ...fields, error: peer.error instanceof Error ? peer.error.message : String(peer.error) });
      } else if (peer.hash !== local.hash) {
        if (peer.compactRevision === local.compactRevision) {
          mismatches++;
          logger.error("found different hash values from remote peer", { ...fields, "local-member-hash": local.hash, "remote-peer-hash": peer.hash, "compact-revision": local.compactRevision });
        } else {
          logger.warn("found different compact revision values from remote peer", { ...fields, "local-member-compact-revision": local.compactRevision, "remote-peer-compact-revision": peer.compactRevision });
        }
      }
    }
    if (mismatches > 0) throw new Error(`${memberId.toString(16)} found data inconsistency with peers`);
    logger.info("initial corruption checking passed; no corruption", { "local-member-id": memberId.toString(16) });
  }

  /** Starts the periodic check (the leader's), every `intervalMs`. */
  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer !== undefined) return;
    this.options.logger.info("enabled corruption checking", { "local-member-id": this.options.memberId.toString(16), interval: `${intervalMs}ms` });
    this.timer = this.options.clock.setInterval(intervalMs, () => {
      if (this.running || !this.options.isLeader()) return;
      this.running = true;
      void this.periodic()
        .catch((error: unknown) => this.options.logger.warn("corruption check failed", { error: error instanceof Error ? error.message : String(error) }))
        .finally(() => (this.running = false));
    });
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One round of the leader's check; returns the members it raised CORRUPT for. */
  async periodic(): Promise<NodeId[]> {
    const { logger, memberId } = this.options;
    // A member alone has nobody to compare with: no scan of its data.
    if (this.options.peers().length === 0) return [];
    const first = await this.options.localHash(0);
    const peers = await this.peerHashes(first.revision);
    const again = await this.options.localHash(first.revision).catch(() => undefined);
    const corrupt: NodeId[] = [];
    if (again !== undefined && again.hash !== first.hash && again.compactRevision === first.compactRevision) {
      logger.warn("found hash mismatch on the leader itself", { "leader-member-id": memberId.toString(16), revision: first.revision, "hash-1": first.hash, "hash-2": again.hash });
      corrupt.push(memberId);
    }
    for (const peer of peers) {
      const fields = { "leader-member-id": memberId.toString(16), "follower-member-id": peer.id.toString(16), revision: first.revision };
      if (peer.error !== undefined) {
        const why = peer.error instanceof EtcdError ? peer.error.message : String(peer.error);
        logger.warn("cannot fetch hash from a member", { ...fields, error: why });
      } else if (peer.compactRevision === first.compactRevision && peer.hash !== first.hash) {
        logger.warn("found hash mismatch with a member", { ...fields, "leader-hash": first.hash, "follower-hash": peer.hash, "compact-revision": first.compactRevision });
        corrupt.push(peer.id);
      }
    }
    for (const id of corrupt) await this.options.raiseCorrupt(id);
    return corrupt;
  }
}
