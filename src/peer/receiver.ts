// The receiving side of the transport: the peer port's request handler.
// Checks that a request comes from a member of this cluster addressed to this
// member (etcd answers 412 Precondition Failed otherwise), then delivers the
// messages of each sender's stream in order, and reassembles snapshots.
import type { Clock, Logger, PeerIncomingRequest } from "../ports.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { batchVersion, decodeMessages, decodeSnapshotHeader } from "./codec.ts";
import { FrameReader } from "./framing.ts";
import { parseNodeId, peerHeaderNames, peerPaths } from "./headers.ts";
import type { PeerLimits } from "./limits.ts";

export interface ReceiverContext {
  localId: NodeId;
  clusterId: bigint;
  clock: Clock;
  logger: Logger;
  limits: PeerLimits;
  version: { server: string; cluster: string };
  deliver(messages: Message[]): void;
}

interface IncomingStream {
  request: PeerIncomingRequest;
  lastReceivedMs: number;
}

const textEncoder = new TextEncoder();

export class PeerReceiver {
  /** The current message stream of each sender; a newer one replaces an older one. */
  private readonly streams = new Map<NodeId, IncomingStream>();
  private readonly snapshots = new Set<PeerIncomingRequest>();
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
    const from = this.admit(request);
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
    for (const request of this.snapshots) request.abort();
    this.streams.clear();
    this.snapshots.clear();
  }

  /** The sender's id if the request may proceed; otherwise answers 412 and returns undefined. */
  private admit(request: PeerIncomingRequest): NodeId | undefined {
    const localClusterId = this.context.clusterId.toString(16);
    const clusterId = request.header(peerHeaderNames.clusterId);
    const from = parseNodeId(request.header(peerHeaderNames.from));
    const to = parseNodeId(request.header(peerHeaderNames.to));
    let refusal: string | undefined;
    if (clusterId !== localClusterId) {
      refusal = "cluster ID mismatch";
      this.context.logger.warn("request cluster ID mismatch", {
        "local-member-id": this.context.localId.toString(16),
        "local-member-cluster-id": localClusterId,
        "remote-peer-id": request.header(peerHeaderNames.from),
        "remote-peer-cluster-id": clusterId,
      });
    } else if (to !== this.context.localId) {
      refusal = "to field mismatch";
      this.context.logger.warn("request sent to the wrong member", { "local-member-id": this.context.localId.toString(16), to: request.header(peerHeaderNames.to) });
    } else if (from === undefined) {
      refusal = "invalid from";
    }
    if (refusal === undefined) return from;
    request.respond(412, { "content-type": "text/plain", [peerHeaderNames.clusterId]: localClusterId });
    request.end(textEncoder.encode(`${refusal}\n`));
    return undefined;
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
          const messages = decodeMessages(frame);
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
      if (this.streams.get(from) === stream) logger.warn("lost peer stream", { "remote-peer-id": from.toString(16), error: String(error) });
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

  private async readSnapshot(request: PeerIncomingRequest, from: NodeId): Promise<void> {
    const { limits, logger } = this.context;
    this.snapshots.add(request);
    const reader = new FrameReader(limits.frameBytesMax);
    let message: Message | undefined;
    let data = new Uint8Array(0);
    let received = 0;
    let refusal: string | undefined;
    let status = 400;
    try {
      for await (const chunk of request.body) {
        reader.push(chunk);
        if (message === undefined) {
          const frame = reader.next();
          if (frame === undefined) continue;
          const header = decodeSnapshotHeader(frame);
          if (header.dataLength > limits.snapshotBytesMax) {
            refusal = `snapshot of ${header.dataLength} bytes exceeds ${limits.snapshotBytesMax}`;
            status = 413;
            break;
          }
          message = header.message;
          data = new Uint8Array(header.dataLength);
        }
        received += reader.queue.copyInto(data, received, data.length - received);
        if (reader.queue.available > 0) {
          refusal = "snapshot data longer than announced";
          break;
        }
      }
      if (refusal === undefined && (message === undefined || received < data.length)) refusal = "incomplete snapshot";
    } catch (error) {
      refusal = String(error);
    }
    this.snapshots.delete(request);
    if (this.stopped) return;
    if (refusal !== undefined || message?.snapshot === undefined) {
      logger.warn("failed to receive database snapshot", { "remote-peer-id": from.toString(16), reason: refusal });
      // Answer, then reset: the sender may still be writing data nobody will read.
      reply(request, status, "text/plain", `${refusal}\n`);
      request.abort();
      return;
    }
    message.snapshot.data = data;
    logger.info("received database snapshot", { "remote-peer-id": from.toString(16), "snapshot-index": message.snapshot.metadata.index, bytes: data.length });
    this.context.deliver([message]);
    request.respond(204);
    request.end();
  }
}

function reply(request: PeerIncomingRequest, status: number, contentType: string, body: string): void {
  request.respond(status, { "content-type": contentType });
  request.end(textEncoder.encode(body));
}
