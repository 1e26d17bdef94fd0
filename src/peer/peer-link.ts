// The sending side of the transport for one remote peer: one session to it,
// one long-lived POST carrying message frames, and a POST per snapshot on the
// same session, so a large snapshot never waits behind (or blocks) heartbeats.
// Reconnects with bounded, jittered exponential backoff when the stream drops.
import type { Clock, Logger, PeerNetwork, PeerOutgoingStream, PeerSession, Random, Timer } from "../ports.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { encodeMessages, encodeSnapshotHeader } from "./codec.ts";
import { frameHeaderBytes, keepaliveFrame, sealFrame } from "./framing.ts";
import { type PeerHeaders, peerPaths, peerRequestHeaders } from "./headers.ts";
import type { PeerLimits } from "./limits.ts";

export interface LinkContext {
  localId: NodeId;
  clusterId: bigint;
  network: PeerNetwork;
  clock: Clock;
  random: Random;
  logger: Logger;
  limits: PeerLimits;
  reportUnreachable(id: NodeId): void;
  reportSnapshot(id: NodeId, ok: boolean): void;
  /** The peer answered our own stream request with 410: it says this member was removed. */
  reportRemoved(by: NodeId): void;
  /** Message bytes written to the peer's stream (etcd_network_peer_sent_bytes_total). */
  countSent(to: NodeId, bytes: number): void;
  /** A keep-alive ping's round trip (etcd_network_peer_round_trip_time_seconds). */
  observeRoundTrip(to: NodeId, seconds: number): void;
  /** Messages queued for the peer that were dropped (etcd_network_peer_sent_failures_total). */
  countSendFailures(to: NodeId, messages: number): void;
  /** The peer's stream went down after being up (etcd_network_disconnected_peers_total). */
  countDisconnected(peer: NodeId): void;
  /** A snapshot send began, and ended (etcd_network_snapshot_send_*). */
  snapshotStarted(to: NodeId): void;
  snapshotEnded(to: NodeId, ok: boolean, seconds: number): void;
}

type LinkState = "connecting" | "active" | "waiting" | "stopped";

/** A rough encoded size, enough to cut frames near `frameBytesTarget`. */
function estimatedBytes(message: Message): number {
  let size = 48 + message.context.length;
  for (const entry of message.entries) size += 16 + entry.data.length;
  return size;
}

export class PeerLink {
  private state: LinkState = "connecting";
  private queue: Message[] = [];
  private session: PeerSession | undefined;
  private stream: PeerOutgoingStream | undefined;
  /** Bumped on every connection attempt and teardown; callbacks of older attempts are ignored. */
  private generation = 0;
  private failures = 0;
  private urlIndex = 0;
  private activeSinceMs: number | undefined;
  private lastWriteMs = 0;
  /** When the unanswered ping was sent, if one is outstanding. */
  private pingSentMs: number | undefined;
  private waitingForDrain = false;
  /** When the current wait for a drain began. */
  private drainWaitSinceMs = 0;
  private flushScheduled = false;
  private dialTimer: Timer | undefined;
  private retryTimer: Timer | undefined;
  private readonly snapshotStreams = new Set<PeerOutgoingStream>();
  /** When each snapshot send began (etcd_network_snapshot_send_total_duration_seconds). */
  private readonly snapshotStartedMs = new Map<PeerOutgoingStream, number>();
  private readonly headers: PeerHeaders;

  constructor(
    readonly id: NodeId,
    private urls: string[],
    private readonly context: LinkContext,
  ) {
    this.headers = peerRequestHeaders(context.localId, id, context.clusterId);
    this.connect();
  }

  /** Monotonic ms (Clock.nowMs) since the message stream to this peer has been up. */
  activeSince(): number | undefined {
    return this.activeSinceMs;
  }

  isActive(): boolean {
    return this.state === "active";
  }

  /** Queues one message; false if the queue was full and it was dropped. */
  enqueue(message: Message): boolean {
    const { limits } = this.context;
    const queueMax = this.state === "active" ? limits.streamQueueMessagesMax : limits.disconnectedQueueMessagesMax;
    if (this.queue.length >= queueMax) return false;
    this.queue.push(message);
    if (this.state === "active" && !this.flushScheduled) {
      this.flushScheduled = true;
      // Everything sent in this turn of the event loop goes out as one frame.
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
    return true;
  }

  sendSnapshot(message: Message): void {
    const session = this.session;
    if (this.state !== "active" || session === undefined || this.snapshotStreams.size >= this.context.limits.snapshotsInFlightMax) {
      this.context.logger.warn("dropped snapshot message", { "remote-peer-id": hex(this.id), "remote-peer-active": this.state === "active" });
      this.context.reportUnreachable(this.id);
      this.context.reportSnapshot(this.id, false);
      return;
    }
    const stream = session.request(peerPaths.snapshot, this.headers);
    this.snapshotStreams.add(stream);
    this.snapshotStartedMs.set(stream, this.context.clock.nowMs());
    this.context.snapshotStarted(this.id);
    void this.writeSnapshot(stream, message).then(
      (ok) => this.finishSnapshot(stream, ok, ok ? undefined : "refused"),
      (error: unknown) => this.finishSnapshot(stream, false, String(error)),
    );
    // The receiver may refuse before it has read everything; do not wait for the writes.
    stream.response.then(
      ({ status }) => {
        if (!isSuccess(status)) this.finishSnapshot(stream, false, `peer answered ${status}`);
      },
      () => {},
    );
    // A stream that closed without any answer ends here; one that answered 2xx
    // is concluded by the write path, which resolves on the same answer.
    void stream.closed.then(() => stream.response.catch(() => this.finishSnapshot(stream, false, "stream closed without an answer")));
  }

  updateUrls(urls: string[]): void {
    const current = this.urls[this.urlIndex % this.urls.length];
    this.urls = urls;
    this.urlIndex = 0;
    if (current !== undefined && urls.includes(current)) {
      this.urlIndex = urls.indexOf(current);
      return;
    }
    if (this.state === "stopped") return;
    this.teardown();
    this.failures = 0;
    this.connect();
  }

  /**
   * Runs every keepalive interval. Writes a keepalive on an idle stream, so the
   * receiver can tell a live peer from a dead connection, and pings the peer,
   * so this side notices a peer that stopped answering (a pause, a black hole)
   * even while TCP still looks open.
   */
  keepalive(nowMs: number): void {
    const { stream, session } = this;
    if (this.state !== "active" || stream === undefined || session === undefined) return;
    const { keepaliveIntervalMs, streamIdleTimeoutMs, streamWriteTimeoutMs } = this.context.limits;
    // Pings are answered on the session even when this stream's window never
    // reopens (the receiver stopped reading it): a write that cannot drain in
    // time fails the connection, as etcd's write deadline does.
    if (this.waitingForDrain && nowMs - this.drainWaitSinceMs > streamWriteTimeoutMs) {
      return this.fail(this.generation, `the stream did not drain for ${streamWriteTimeoutMs} ms`);
    }
    if (this.pingSentMs !== undefined) {
      if (nowMs - this.pingSentMs > streamIdleTimeoutMs) this.fail(this.generation, `no answer to a ping for ${streamIdleTimeoutMs} ms`);
    } else {
      const generation = this.generation;
      this.pingSentMs = nowMs;
      session.ping().then(
        () => {
          if (generation !== this.generation) return;
          this.context.observeRoundTrip(this.id, (this.context.clock.nowMs() - nowMs) / 1000);
          this.pingSentMs = undefined;
        },
        () => {}, // the session failed: its close is handled by `fail`
      );
    }
    if (this.waitingForDrain || nowMs - this.lastWriteMs < keepaliveIntervalMs) return;
    this.lastWriteMs = nowMs;
    stream.write(keepaliveFrame);
  }

  stop(): void {
    this.teardown();
    this.state = "stopped";
    this.queue = [];
    for (const stream of this.snapshotStreams) stream.abort();
  }

  private connect(): void {
    const { network, clock, limits } = this.context;
    const generation = ++this.generation;
    this.state = "connecting";
    const url = this.urls[this.urlIndex % this.urls.length];
    if (url === undefined) return this.fail(generation, "the peer has no URLs");
    const session = network.connect(url);
    const stream = session.request(peerPaths.stream, this.headers);
    this.session = session;
    this.stream = stream;
    this.dialTimer = clock.setTimer(limits.dialTimeoutMs, () => this.fail(generation, `no answer from ${url} within ${limits.dialTimeoutMs} ms`));
    stream.response.then(
      ({ status, headers }) => {
        if (generation !== this.generation) return;
        this.dialTimer?.cancel();
        if (status === 200) return this.activate(generation, stream, url);
        if (status === 412) {
          this.context.logger.error("peer refused the stream: cluster ID or member ID mismatch", {
            "remote-peer-id": hex(this.id),
            "local-member-cluster-id": this.context.clusterId.toString(16),
            "remote-peer-cluster-id": headers["x-edgetcd-cluster-id"],
          });
        }
        if (status === 410) {
          // The peer applied this member's removal. Like etcd's, the member
          // stops: it will never hear the log entry that removed it.
          this.context.logger.error("peer refused the stream: this member has been permanently removed from the cluster", { "remote-peer-id": hex(this.id) });
          this.context.reportRemoved(this.id);
        }
        this.fail(generation, `peer answered ${status}`);
      },
      (error: unknown) => this.fail(generation, error instanceof Error ? error.message : String(error)),
    );
    void session.closed.then(() => this.fail(generation, "session closed"));
  }

  private activate(generation: number, stream: PeerOutgoingStream, url: string): void {
    this.state = "active";
    this.failures = 0;
    this.activeSinceMs = this.context.clock.nowMs();
    this.lastWriteMs = this.activeSinceMs;
    this.context.logger.info("peer became active", { "remote-peer-id": hex(this.id), url });
    void stream.closed.then(() => this.fail(generation, "stream closed"));
    this.flush();
  }

  /** Ends the current attempt or connection (once per generation) and schedules the next. */
  private fail(generation: number, reason: string): void {
    if (generation !== this.generation || this.state === "stopped") return;
    const wasActive = this.state === "active";
    this.teardown();
    this.state = "waiting";
    if (wasActive) {
      this.context.logger.warn("peer became inactive", { "remote-peer-id": hex(this.id), reason });
      this.context.countDisconnected(this.id);
    } else {
      this.context.logger.debug("peer connection attempt failed", { "remote-peer-id": hex(this.id), reason });
    }
    // What was queued for a peer we cannot reach is stale by the time it is back;
    // Raft resends from its progress once told the peer is unreachable.
    if (this.queue.length > 0) this.context.countSendFailures(this.id, this.queue.length);
    this.queue = [];
    this.context.reportUnreachable(this.id);
    this.urlIndex++;
    const delayMs = this.backoffMs();
    this.failures++;
    this.retryTimer = this.context.clock.setTimer(delayMs, () => {
      if (this.state === "waiting") this.connect();
    });
  }

  private backoffMs(): number {
    const { reconnectDelayMinMs, reconnectDelayMaxMs } = this.context.limits;
    const ceiling = Math.min(reconnectDelayMaxMs, reconnectDelayMinMs * 2 ** Math.min(this.failures, 30));
    // Full jitter on the upper half, so peers that lost each other at once do not redial in lockstep.
    const half = Math.floor(ceiling / 2);
    return half + this.context.random.int(ceiling - half + 1);
  }

  private teardown(): void {
    this.generation++;
    this.dialTimer?.cancel();
    this.retryTimer?.cancel();
    this.stream?.abort();
    this.session?.close();
    this.stream = undefined;
    this.session = undefined;
    this.activeSinceMs = undefined;
    this.pingSentMs = undefined;
    this.waitingForDrain = false;
  }

  private flush(): void {
    const stream = this.stream;
    if (this.state !== "active" || this.waitingForDrain || stream === undefined) return;
    while (this.queue.length > 0) {
      let count = 0;
      let bytes = 0;
      while (count < this.queue.length && (count === 0 || bytes < this.context.limits.frameBytesTarget)) {
        bytes += estimatedBytes(this.queue[count] as Message);
        count++;
      }
      const batch = this.queue.splice(0, count);
      this.lastWriteMs = this.context.clock.nowMs();
      const frame = sealFrame(encodeMessages(batch, frameHeaderBytes));
      this.context.countSent(this.id, frame.length - frameHeaderBytes);
      if (!stream.write(frame)) {
        this.waitingForDrain = true;
        this.drainWaitSinceMs = this.context.clock.nowMs();
        const generation = this.generation;
        stream.drained().then(
          () => {
            if (generation !== this.generation) return;
            this.waitingForDrain = false;
            this.flush();
          },
          () => {}, // the stream closed: `fail` handles it
        );
        return;
      }
    }
  }

  private async writeSnapshot(stream: PeerOutgoingStream, message: Message): Promise<boolean> {
    const data = message.snapshot?.data ?? new Uint8Array(0);
    const chunkBytes = this.context.limits.snapshotChunkBytes;
    this.context.logger.info("sending database snapshot", { "remote-peer-id": hex(this.id), "snapshot-index": message.snapshot?.metadata.index, bytes: data.length });
    if (!stream.write(sealFrame(encodeSnapshotHeader(message, frameHeaderBytes)))) await stream.drained();
    for (let offset = 0; offset < data.length; offset += chunkBytes) {
      if (!stream.write(data.subarray(offset, offset + chunkBytes))) await stream.drained();
    }
    stream.end();
    const { status } = await stream.response;
    return isSuccess(status);
  }

  private finishSnapshot(stream: PeerOutgoingStream, ok: boolean, reason: string | undefined): void {
    if (!this.snapshotStreams.delete(stream)) return;
    const startedMs = this.snapshotStartedMs.get(stream) ?? this.context.clock.nowMs();
    this.snapshotStartedMs.delete(stream);
    this.context.snapshotEnded(this.id, ok, (this.context.clock.nowMs() - startedMs) / 1000);
    if (this.state === "stopped") return;
    stream.abort();
    if (ok) {
      this.context.logger.info("sent database snapshot", { "remote-peer-id": hex(this.id) });
    } else {
      this.context.logger.warn("failed to send database snapshot", { "remote-peer-id": hex(this.id), reason });
      this.context.reportUnreachable(this.id);
    }
    this.context.reportSnapshot(this.id, ok);
  }
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

function hex(id: NodeId): string {
  return id.toString(16);
}
