// Helpers for the peer transport tests: real transports on loopback over the
// runtime's peer network, recording what they receive and report.
import { nodePeerNetwork } from "../../runtime/node/peer-network.ts";
import type { Logger } from "../../src/ports.ts";
import type { MembershipOf } from "../../src/peer/admission.ts";
import type { PeerLimits } from "../../src/peer/limits.ts";
import { PeerTransport } from "../../src/peer/transport.ts";
import { type Message, MessageType, type NodeId } from "../../src/raft/types.ts";
import { testRuntime } from "../support/runtime.ts";

export interface TestPeer {
  id: NodeId;
  transport: PeerTransport;
  url: string;
  received: Message[];
  receivedAtMs: number[];
  unreachable: NodeId[];
  snapshotStatus: [NodeId, boolean][];
  logs: { level: string; message: string; fields?: Record<string, unknown> }[];
}

/** Short backoffs so reconnect tests take milliseconds, not seconds. */
export const fastLimits: Partial<PeerLimits> = { reconnectDelayMinMs: 20, reconnectDelayMaxMs: 200, dialTimeoutMs: 1000 };

/** Every id but 0 and the peer's own is a member: the transport tests are not about membership. */
export const anyOtherIdIsMember = (localId: NodeId): MembershipOf => (id) => (id !== 0 && id !== localId ? "member" : "unknown");

export async function startPeer(
  id: NodeId,
  options: { clusterId?: bigint; port?: number; limits?: Partial<PeerLimits>; membershipOf?: MembershipOf } = {},
): Promise<TestPeer> {
  const runtime = await testRuntime();
  const peer: Omit<TestPeer, "transport" | "url"> = { id, received: [], receivedAtMs: [], unreachable: [], snapshotStatus: [], logs: [] };
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => void peer.logs.push({ level, message, fields });
  const logger: Logger = { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") };
  const transport = new PeerTransport({
    localId: id,
    clusterId: options.clusterId ?? 0xc1a5_7e42n,
    network: nodePeerNetwork,
    clock: runtime.clock,
    random: runtime.random,
    logger,
    limits: { ...fastLimits, ...options.limits },
    membershipOf: options.membershipOf ?? anyOtherIdIsMember(id),
    onMessages: (messages) => {
      const nowMs = runtime.clock.nowMs();
      for (const message of messages) {
        peer.received.push(message);
        peer.receivedAtMs.push(nowMs);
      }
    },
    onUnreachable: (to) => peer.unreachable.push(to),
    onSnapshotStatus: (to, ok) => peer.snapshotStatus.push([to, ok]),
  });
  await transport.start([new URL(`http://127.0.0.1:${options.port ?? 0}`)]);
  const url = transport.listenUrls[0]?.href.replace(/\/$/, "") ?? "";
  return { ...peer, transport, url };
}

/** Makes every peer know every other. */
export function connectAll(peers: TestPeer[]): void {
  for (const peer of peers) for (const other of peers) if (other !== peer) peer.transport.addPeer(other.id, [other.url]);
}

export async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function waitActive(from: TestPeer, to: TestPeer): Promise<void> {
  await waitFor(`${from.id} -> ${to.id} active`, () => from.transport.activeSince(to.id) !== undefined);
}

/** A heartbeat whose `commit` numbers it, so order and loss are visible at the receiver. */
export function numbered(from: NodeId, to: NodeId, sequence: number, type = MessageType.Heartbeat): Message {
  return { type, to, from, term: 1, logTerm: 0, index: 0, entries: [], commit: sequence, reject: false, rejectHint: 0, context: new Uint8Array(0) };
}

export const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
