// The receiving side of the transport: the peer port's request handler.
// Admits a request only from a current member of this cluster addressed to
// this member (admission.ts), then delivers the messages of each sender's
// stream in order, and reassembles snapshots. Every decoded message must
// name the admitted sender as `from` and this member as `to`; a stream that
// carries one that does not is dropped.
import type { LogLimiter } from "../log-limiter.ts";
import type { Clock, Logger, PeerIncomingRequest } from "../ports.ts";
import { type Message, MessageType, type NodeId } from "../raft/types.ts";
import { admitPeerRequest, type MembershipOf } from "./admission.ts";
import { batchVersion, decodeMessages, decodeSnapshotHeader } from "./codec.ts";
import { FrameReader } from "./framing.ts";
import { peerHeaderNames, peerPaths } from "./headers.ts";
import type { PeerLimits } from "./limits.ts";
import { concatenated } from "../bytes.ts";

export interface ReceiverContext {
  localId: NodeId;
  clusterId: bigint;
  clock: Clock;
  logger: Logger;
  limits: PeerLimits;
  version: { server: string; cluster: string };
  /** The live member set: who may send (admission.ts). */
  membershipOf: MembershipOf;
  /** Refused requests and dropped streams, logged at most once a second per reason. */
  refusalLog: LogLimiter;
  deliver(messages: Message[]): void;
  /** Message bytes received from a member (etcd_network_peer_received_bytes_total). */
  countReceived(from: NodeId, bytes: number): void;
  /** A stream from a member lost or refused mid-way, or a snapshot refused (etcd_network_peer_received_failures_total). */
  countReceiveFailure(from: NodeId): void;
  /** A snapshot receive began, and ended (etcd_network_snapshot_receive_*). */
  snapshotStarted(from: NodeId): void;
  snapshotEnded(from: NodeId, ok: boolean, seconds: number): void;
}

/** A received message that its stream's sender could not have sent to us: the stream is dropped. */
export class PeerSenderMismatchError extends Error {
  override name = "PeerSenderMismatchError";
}

interface IncomingStream {
  request: PeerIncomingRequest;
  lastReceivedMs: number;
}

const textEncoder = new TextEncoder();

export class PeerReceiver {
  /** The current message stream of each sender; a newer one replaces an older one. */
  private readonly streams = new Map<NodeId, IncomingStream>();
  /** The snapshot each sender is sending; a newer one replaces an older one (Raft sends one at a time). */
  private readonly snapshots = new Map<NodeId, PeerIncomingRequest>();
  private stopped = false;

  constructor(private readonly context: ReceiverContext) {}

  readonly handle = (request: PeerIncomingRequest): void => {
    if (this.stopped) return request.abort();
    const route = `${request.method} ${request.path}`;
    if (route === `GET ${peerPaths.probing}`) return reply(request, 200, "text/plain", "OK");
    if (route === `GET ${peerPaths.version}`) {
      const { server, cluster } = this.context.version;
      return reply(request, 200, "application/json", JSON.stringify({ etcdserver: server, etcdcluster: cluster }));
    }
    if (route !== `POST ${peerPaths.stream}` && route !== `POST ${peerPaths.snapshot}`) return reply(request, 404, "text/plain", "404 page not found\n");
    const from = admitPeerRequest(request, this.context);
    if (from === undefined) return;
    if (request.path === peerPaths.stream) void this.readStream(request, from);
    else void this.readSnapshot(request, from);
  };

  /** Drops streams that sent nothing, not even a keepalive, for `streamIdleTimeoutMs`. */
  dropIdleStreams(nowMs: number): void {
    for (const [from, stream] of this.streams) {
      if (nowMs - stream.lastReceivedMs <= this.context.limits.streamIdleTimeoutMs) continue;
      this.context.logger.warn("dropped idle peer stream", { "remote-peer-id": from.toString(16) });
      this.streams.delete(from);
      stream.request.abort();
    }
  }

  stop(): void {
    this.stopped = true;
    for (const stream of this.streams.values()) stream.request.abort();
    for (const request of this.snapshots.values()) request.abort();
    this.streams.clear();
    this.snapshots.clear();
  }

  private async readStream(request: PeerIncomingRequest, from: NodeId): Promise<void> {
    const { clock, limits, logger } = this.context;
    request.respond(200, { [peerHeaderNames.clusterId]: this.context.clusterId.toString(16) });
    const stream: IncomingStream = { request, lastReceivedMs: clock.nowMs() };
    const previous = this.streams.get(from);
    this.streams.set(from, stream);
    previous?.request.abort();
    const reader = new FrameReader(limits.frameBytesMax, batchVersion);
    let deliveryError: unknown;
    let bodyEnded = false;
    try {
      for await (const chunk of request.body) {
        // A replaced or dropped stream must not deliver: its messages may be older than the new stream's.
        if (this.streams.get(from) !== stream) return;
        stream.lastReceivedMs = clock.nowMs();
        reader.push(chunk);
        for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
          if (frame.length === 0) continue;
          const messages = this.checkSenders(decodeMessages(frame), from);
          this.context.countReceived(from, frame.length);
          try {
            this.context.deliver(messages);
          } catch (error) {
            deliveryError = error;
            throw error;
          }
        }
      }
      bodyEnded = true;
    } catch (error) {
      // A throw from the consumer (Raft) is a bug, not a network error: let it surface.
      if (error === deliveryError) throw error;
      if (this.streams.get(from) === stream) {
        this.context.countReceiveFailure(from);
        this.context.refusalLog.warn(logger, "lost peer stream", { "remote-peer-id": from.toString(16), error: String(error) });
      }
    } finally {
      if (this.streams.get(from) === stream) this.streams.delete(from);
      // A stream left before its end (unreadable frame, replaced, dropped) is
      // reset, so the sender redials. Ending only the response is not enough
      // (checked on Node and Bun): the sender's half stays open, its window is
      // never reopened, and it waits for a drain while pings keep the session up.
      if (bodyEnded) request.end();
      else request.abort();
    }
  }

  /**
   * The messages of a frame to deliver. Every message of a stream comes from
   * its admitted sender, addressed to us, and the sender is still a member
   * (it may have been removed while its stream was up).
   *
   * One exception: a leader that applied its own removal hands leadership
   * over with TimeoutNow (raft/state-machine.ts, stepDownAfterRemoval), and
   * its successor has usually applied the same removal a moment earlier.
   * Dropped here, the handover was lost and every proposal waited for an
   * election timeout. So a removed sender's TimeoutNow still reaches Raft,
   * which takes it only from its current leader at its current term
   * (raft/network-message.ts); nothing else from a removed sender is
   * delivered. A removed member cannot open a new stream (admission.ts, 410).
   */
  private checkSenders(messages: Message[], from: NodeId): Message[] {
    const { localId } = this.context;
    for (const message of messages) {
      if (message.from !== from || message.to !== localId) {
        throw new PeerSenderMismatchError(`message from ${message.from.toString(16)} to ${message.to.toString(16)} on the stream of ${from.toString(16)} to ${localId.toString(16)}`);
      }
    }
    const membership = this.context.membershipOf(from);
    if (membership === "member") return messages;
    if (membership === "removed") {
      const handover = messages.filter((message) => message.type === MessageType.TimeoutNow);
      if (handover.length > 0) return handover;
    }
    throw new PeerSenderMismatchError(`the sender is ${membership === "removed" ? "a removed member" : "no longer a member"}`);
  }

  private async readSnapshot(request: PeerIncomingRequest, from: NodeId): Promise<void> {
    const { logger } = this.context;
    const previous = this.snapshots.get(from);
    this.snapshots.set(from, request);
    previous?.abort();
    const startedMs = this.context.clock.nowMs();
    this.context.snapshotStarted(from);
    let outcome: SnapshotOutcome;
    try {
      outcome = await this.receiveSnapshot(request, from);
    } catch (error) {
      outcome = { refusal: String(error), status: 400 };
    }
    this.context.snapshotEnded(from, !("refusal" in outcome) && this.snapshots.get(from) === request, (this.context.clock.nowMs() - startedMs) / 1000);
    if (this.snapshots.get(from) !== request) return; // replaced, or the receiver stopped
    this.snapshots.delete(from);
    if ("refusal" in outcome) {
      this.context.countReceiveFailure(from);
      this.context.refusalLog.warn(logger, "failed to receive database snapshot", { "remote-peer-id": from.toString(16), reason: outcome.refusal });
      // Answer, then reset: the sender may still be writing data nobody will read.
      reply(request, outcome.status, "text/plain", `${outcome.refusal}\n`);
      request.abort();
      return;
    }
    const { message } = outcome;
    logger.info("received database snapshot", { "remote-peer-id": from.toString(16), "snapshot-index": message.snapshot?.metadata.index, bytes: message.snapshot?.data.length });
    this.context.deliver([message]);
    request.respond(204);
    request.end();
  }

  /**
   * Reads the header frame, checks it before anything is allocated for the
   * data, then keeps the data as the chunks that arrive: memory follows what
   * was actually received, never what the header announced.
   */
  private async receiveSnapshot(request: PeerIncomingRequest, from: NodeId): Promise<SnapshotOutcome> {
    const { limits } = this.context;
    const reader = new FrameReader(limits.frameBytesMax);
    let message: Message | undefined;
    let dataLength = 0;
    const chunks: Uint8Array[] = [];
    let received = 0;
    for await (const chunk of request.body) {
      if (message === undefined) {
        reader.push(chunk);
        const frame = reader.next();
        if (frame === undefined) continue;
        const header = decodeSnapshotHeader(frame);
        if (header.dataLength > limits.snapshotBytesMax) {
          return { refusal: `snapshot of ${header.dataLength} bytes exceeds ${limits.snapshotBytesMax}`, status: 413 };
        }
        const problem = this.snapshotHeaderProblem(header.message, from);
        if (problem !== undefined) return { refusal: problem, status: 400 };
        message = header.message;
        dataLength = header.dataLength;
        const rest = reader.queue.take(reader.queue.available);
        if (rest !== undefined && rest.length > 0) chunks.push(rest);
        received += rest?.length ?? 0;
      } else {
        chunks.push(chunk);
        received += chunk.length;
      }
      if (received > dataLength) return { refusal: "snapshot data longer than announced", status: 400 };
    }
    if (message?.snapshot === undefined || received < dataLength) return { refusal: "incomplete snapshot", status: 400 };
    message.snapshot.data = concatenated(chunks);
    return { message };
  }

  /** A snapshot comes from its admitted sender, to us, in a term, with an index. */
  private snapshotHeaderProblem(message: Message, from: NodeId): string | undefined {
    if (message.type !== MessageType.Snap) return `a snapshot header holding a message of type ${message.type}`;
    if (message.from !== from || message.to !== this.context.localId) {
      return `snapshot from ${message.from.toString(16)} to ${message.to.toString(16)} on a request of ${from.toString(16)}`;
    }
    if (message.term === 0 || message.snapshot === undefined || message.snapshot.metadata.index === 0 || message.snapshot.metadata.term === 0) {
      return "a snapshot without a term or an index";
    }
    return undefined;
  }
}

type SnapshotOutcome = { message: Message } | { refusal: string; status: number };



function reply(request: PeerIncomingRequest, status: number, contentType: string, body: string): void {
  request.respond(status, { "content-type": contentType });
  request.end(textEncoder.encode(body));
}
