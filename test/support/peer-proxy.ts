// Fault injection on the peer network of a test cluster: one loopback TCP
// proxy per directed link (member i dials member j through proxy i→j, which
// forwards to j's real peer port), and controls that lose, delay or reset the
// bytes of a link, per direction. Members learn the proxies through the
// EDGETCD_TEST_PEER_DIAL map (runtime/faults/peer-dial.ts), so they still
// advertise, and are identified by, their real peer URLs.
//
// Directions: "forward" is what the dialling member sends (its Raft messages,
// requests, pings); "backward" is what comes back on the same connection
// (response headers, ping answers, HTTP/2 window updates).
import { createServer, connect, type Server, type Socket } from "node:net";
import { freePort } from "./processes.ts";

export type Direction = "both" | "forward" | "backward";

interface DirectionFaults {
  /** Bytes are swallowed: neither forwarded nor answered, the connection stays open. */
  blackholed: boolean;
  delayMs: number;
  jitterMs: number;
  /** Probability that one chunk read from the socket is lost. */
  dropProbability: number;
}

const noFaults = (): DirectionFaults => ({ blackholed: false, delayMs: 0, jitterMs: 0, dropProbability: 0 });

/** One proxied connection: the dialler's socket and ours to the target. */
interface ProxiedConnection {
  client: Socket;
  upstream: Socket;
  timers: Set<ReturnType<typeof setTimeout>>;
  /** When the last delayed chunk of each direction is released, so delays never reorder bytes. */
  releaseAtMs: { forward: number; backward: number };
  /** A side closed while its direction was black-holed: the other side learns of it only after the heal. */
  closeHeld: boolean;
}

export class PeerProxy {
  private readonly faults = { forward: noFaults(), backward: noFaults() };
  private readonly connections = new Set<ProxiedConnection>();
  /** Chunks lost to drop(), counted for test messages. */
  droppedChunks = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<PeerProxy> {
    const server = createServer();
    // From freePort, so a member's port handed out but not yet bound is never taken.
    const port = await freePort();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    const proxy = new PeerProxy(server, port, targetPort);
    server.on("connection", (client) => proxy.accept(client));
    return proxy;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Forwards everything again, at once, in the given direction(s); releases closes held during a black hole. */
  pass(direction: Direction = "both"): void {
    for (const side of sides(direction)) this.faults[side] = noFaults();
    for (const connection of this.connections) {
      if (connection.closeHeld && !this.faults.forward.blackholed && !this.faults.backward.blackholed) {
        this.destroy(connection, false);
      }
    }
  }

  /** Swallows every byte in the given direction(s), without closing anything: packets lost. */
  blackhole(direction: Direction = "both"): void {
    for (const side of sides(direction)) this.faults[side].blackholed = true;
  }

  /** Each chunk waits `ms` plus a uniform random [0, jitterMs) before it is forwarded; order is kept. */
  delay(ms: number, jitterMs = 0, direction: Direction = "both"): void {
    for (const side of sides(direction)) Object.assign(this.faults[side], { delayMs: ms, jitterMs });
  }

  /** Each chunk is lost with probability `p` (the stream may be corrupted: the transport must recover). */
  dropRate(p: number, direction: Direction = "both"): void {
    for (const side of sides(direction)) this.faults[side].dropProbability = p;
  }

  /** Resets every current connection (both sides see a TCP reset); new ones are accepted. */
  dropConnections(): void {
    for (const connection of [...this.connections]) this.destroy(connection, true);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = connect(this.targetPort, "127.0.0.1");
    const connection: ProxiedConnection = { client, upstream, timers: new Set(), releaseAtMs: { forward: 0, backward: 0 }, closeHeld: false };
    this.connections.add(connection);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("data", (chunk: Buffer) => this.forward(connection, "forward", chunk));
    upstream.on("data", (chunk: Buffer) => this.forward(connection, "backward", chunk));
    // A close travels like the bytes before it: lost in a black hole (held until the heal), delayed with them otherwise.
    const onClose = (side: "forward" | "backward") => () => {
      if (!this.connections.has(connection)) return;
      if (this.faults[side].blackholed) {
        connection.closeHeld = true;
        return;
      }
      this.later(connection, side, () => this.destroy(connection, false));
    };
    client.on("close", onClose("forward"));
    upstream.on("close", onClose("backward"));
    client.on("error", () => {});
    upstream.on("error", () => {});
  }

  private forward(connection: ProxiedConnection, side: "forward" | "backward", chunk: Buffer): void {
    const faults = this.faults[side];
    if (faults.blackholed) return;
    if (faults.dropProbability > 0 && Math.random() < faults.dropProbability) {
      this.droppedChunks++;
      return;
    }
    const target = side === "forward" ? connection.upstream : connection.client;
    this.later(connection, side, () => {
      if (!target.destroyed) target.write(chunk);
    });
  }

  /** Runs `action` after the direction's delay, never before what was scheduled earlier on it. */
  private later(connection: ProxiedConnection, side: "forward" | "backward", action: () => void): void {
    const { delayMs, jitterMs } = this.faults[side];
    const nowMs = Date.now();
    const pending = connection.releaseAtMs[side] > nowMs;
    if (delayMs === 0 && jitterMs === 0 && !pending) return action();
    const releaseAtMs = Math.max(nowMs + delayMs + Math.random() * jitterMs, connection.releaseAtMs[side]);
    connection.releaseAtMs[side] = releaseAtMs;
    const timer = setTimeout(() => {
      connection.timers.delete(timer);
      action();
    }, releaseAtMs - nowMs);
    connection.timers.add(timer);
  }

  private destroy(connection: ProxiedConnection, reset: boolean): void {
    if (!this.connections.delete(connection)) return;
    for (const timer of connection.timers) clearTimeout(timer);
    connection.timers.clear();
    for (const socket of [connection.client, connection.upstream]) {
      const resettable = socket as Socket & { resetAndDestroy?: () => Socket };
      if (reset && typeof resettable.resetAndDestroy === "function" && !socket.destroyed) resettable.resetAndDestroy();
      else socket.destroy();
    }
  }
}

function sides(direction: Direction): Array<"forward" | "backward"> {
  return direction === "both" ? ["forward", "backward"] : [direction];
}

/**
 * The proxies of one cluster, addressed by member name, with the faults tests
 * talk about. "Traffic from a to b" is a's connection to b in the forward
 * direction plus b's connection to a in the backward direction.
 */
export class Links {
  constructor(
    readonly names: readonly string[],
    /** Keyed `${from}->${to}`. */
    private readonly proxies: ReadonlyMap<string, PeerProxy>,
  ) {}

  /** The proxy member `from` dials to reach member `to`. */
  link(from: string, to: string): PeerProxy {
    const proxy = this.proxies.get(`${from}->${to}`);
    if (proxy === undefined) throw new Error(`no link ${from}->${to}`);
    return proxy;
  }

  all(): PeerProxy[] {
    return [...this.proxies.values()];
  }

  /** Everything from `from` to `to` is lost; the other direction is untouched. */
  cut(from: string, to: string): void {
    this.link(from, to).blackhole("forward");
    this.link(to, from).blackhole("backward");
  }

  /** `member` can neither send to nor hear from anyone. */
  isolate(member: string): void {
    for (const other of this.names) {
      if (other === member) continue;
      this.cut(member, other);
      this.cut(other, member);
    }
  }

  /** Nothing crosses between the two groups, in either direction. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.cut(a, b);
        this.cut(b, a);
      }
    }
  }

  /** Asymmetric: traffic from `from` reaches `to`, but nothing from `to` gets back to `from`. */
  oneWay(from: string, to: string): void {
    this.cut(to, from);
  }

  /** Every link forwards everything again, without delay or loss. */
  heal(): void {
    for (const proxy of this.proxies.values()) proxy.pass();
  }

  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((proxy) => proxy.close()));
  }
}

/** Starts a proxy for every ordered pair of members. */
export async function startLinks(members: ReadonlyArray<{ name: string; peerPort: number }>): Promise<Links> {
  const proxies = new Map<string, PeerProxy>();
  for (const from of members) {
    for (const to of members) {
      if (from !== to) proxies.set(`${from.name}->${to.name}`, await PeerProxy.start(to.peerPort));
    }
  }
  return new Links(members.map((m) => m.name), proxies);
}

/** The EDGETCD_TEST_PEER_DIAL value for `member`: each other member's peer origin to the proxy `member` dials. */
export function dialMapFor(links: Links, member: string, members: ReadonlyArray<{ name: string; peerPort: number }>): string {
  const map: Record<string, string> = {};
  for (const other of members) {
    if (other.name !== member) map[`http://127.0.0.1:${other.peerPort}`] = links.link(member, other.name).origin;
  }
  return JSON.stringify(map);
}
