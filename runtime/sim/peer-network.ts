// The PeerNetwork port in memory, for whole-node simulation. Every byte a
// member sends travels as a packet through a SimNetwork (seeded delay, loss,
// duplication, partitions), so the real PeerTransport runs over simulated
// links. A connection behaves like TCP: packets of one direction are handed
// over in order and once (a reorder buffer and sequence numbers), and a lost
// packet breaks the whole connection at once, the way a TCP connection that
// stops getting acknowledgements eventually resets: every stream on it fails,
// both sessions close, and the transport redials.
//
// Endpoints are the simulator's node numbers; a listener belongs to one.
// `fetch` (for the GET /members of a joining member and the lease POSTs, which
// src/ sends through the web-standard fetch) is served over the same links.

import type {
  PeerIncomingRequest,
  PeerListener,
  PeerNetwork,
  PeerOutgoingStream,
  PeerRequestHandler,
  PeerSession,
} from "../../src/ports.ts";
import type { SimNetwork } from "./network.ts";

/** The part of the web-standard fetch that src/ uses. */
export type SimFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** What travels: an action run at the far end of one connection, in order. */
export interface PeerPacket {
  connection: SimConnection;
  /** 0: dialler → listener, 1: listener → dialler. */
  direction: 0 | 1;
  sequence: number;
  run: () => void;
}

interface ListenerEntry {
  endpoint: number;
  handler: PeerRequestHandler;
  connections: Set<SimConnection>;
}

export class SimPeerHub {
  private readonly listeners = new Map<string, ListenerEntry>();
  private readonly connections = new Set<SimConnection>();
  /** Connections broken by a lost packet (a partition or a drop). */
  brokenCount = 0;
  /** Requests that reached a listener, by path. */
  readonly requestsByPath = new Map<string, number>();

  constructor(readonly network: SimNetwork<PeerPacket>) {}

  /** The SimNetwork's delivery callback. */
  deliver(packet: PeerPacket): void {
    packet.connection.receive(packet);
  }

  /** The SimNetwork's loss callback: the connection breaks. */
  lost(packet: PeerPacket): void {
    if (packet.connection.isOpen) this.brokenCount++;
    packet.connection.kill("packet lost");
  }

  /**
   * The PeerNetwork of one endpoint, for one life of its process: once
   * `alive()` turns false (the process crashed), it can neither listen nor dial.
   */
  networkFor(endpoint: number, alive: () => boolean = () => true): PeerNetwork {
    const fetchHere = this.fetchFrom(endpoint);
    return {
      fetch: (input, init) => (alive() ? fetchHere(input, init) : Promise.reject(new Error(`fetch ${String(input)}: the process is gone`))),
      listen: async (url, handler) => {
        if (!alive()) throw new Error(`listen ${url.origin}: the process is gone`);
        return this.listen(endpoint, url, handler);
      },
      connect: (url) => {
        const session = this.connect(endpoint, url);
        if (!alive()) session.close();
        return session;
      },
    };
  }

  /** Everything of a crashed endpoint goes away at once: its listeners and every connection touching it. */
  crashEndpoint(endpoint: number): void {
    for (const [origin, entry] of this.listeners) if (entry.endpoint === endpoint) this.listeners.delete(origin);
    for (const connection of [...this.connections]) {
      if (connection.dialler === endpoint || connection.listener === endpoint) connection.kill("endpoint crashed");
    }
  }

  openConnectionCount(): number {
    return this.connections.size;
  }

  private listen(endpoint: number, url: URL, handler: PeerRequestHandler): PeerListener {
    const origin = url.origin;
    if (this.listeners.has(origin)) throw new Error(`listen ${origin}: address already in use`);
    const entry: ListenerEntry = { endpoint, handler, connections: new Set() };
    this.listeners.set(origin, entry);
    return {
      url: new URL(url.href),
      close: async () => {
        if (this.listeners.get(origin) === entry) this.listeners.delete(origin);
        for (const connection of [...entry.connections]) connection.kill("listener closed");
      },
    };
  }

  private connect(from: number, url: string): SimSession {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      origin = url;
    }
    // Where the packets go is decided at dial time; nobody listening there fails the dial on arrival.
    const to = this.listeners.get(origin)?.endpoint ?? -1;
    const connection = new SimConnection(this, from, to);
    this.connections.add(connection);
    void connection.closed.then(() => this.connections.delete(connection));
    connection.send(0, () => {
      const entry = this.listeners.get(origin);
      if (entry === undefined || entry.endpoint !== to) return connection.kill("connection refused");
      entry.connections.add(connection);
      void connection.closed.then(() => entry.connections.delete(connection));
      connection.accept(entry.handler);
    });
    return new SimSession(this, connection);
  }

  /**
   * A web-standard fetch from `from` over the simulated links (one connection
   * per call, like a client without keep-alive).
   */
  fetchFrom(from: number): SimFetch {
    return async (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const method = init?.method ?? "GET";
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((value, name) => {
        headers[name] = value;
      });
      const body = init?.body === undefined || init.body === null ? undefined : new Uint8Array(await new Response(init.body).arrayBuffer());
      const session = this.connect(from, url);
      try {
        const stream = session.open(new URL(url).pathname, headers, method);
        if (body !== undefined) stream.write(body);
        stream.end();
        const head = await stream.response;
        const responseBody = await stream.fullBody;
        return new Response(head.status === 204 ? null : (responseBody as Uint8Array<ArrayBuffer>), { status: head.status, headers: head.headers });
      } finally {
        session.close();
      }
    };
  }
}

/** One simulated TCP connection between a dialler and a listener. */
export class SimConnection {
  private open = true;
  private readonly nextSend: [number, number] = [0, 0];
  private readonly nextDeliver: [number, number] = [0, 0];
  private readonly pending: [Map<number, () => void>, Map<number, () => void>] = [new Map(), new Map()];
  private resolveClosed!: () => void;
  readonly closed = new Promise<void>((resolve) => {
    this.resolveClosed = resolve;
  });
  private readonly closeHandlers: ((reason: string) => void)[] = [];
  handler: PeerRequestHandler | undefined;
  /** Streams by id, on each side. */
  readonly clientStreams = new Map<number, SimOutgoingStream>();
  readonly serverStreams = new Map<number, SimIncomingRequest>();
  private nextStreamId = 1;

  constructor(
    private readonly hub: SimPeerHub,
    readonly dialler: number,
    readonly listener: number,
  ) {}

  get isOpen(): boolean {
    return this.open;
  }

  onClose(handler: (reason: string) => void): void {
    if (this.open) this.closeHandlers.push(handler);
    else handler("closed");
  }

  send(direction: 0 | 1, run: () => void): void {
    if (!this.open) return;
    const sequence = this.nextSend[direction]++;
    const packet: PeerPacket = { connection: this, direction, sequence, run };
    const [from, to] = direction === 0 ? [this.dialler, this.listener] : [this.listener, this.dialler];
    if (to < 0) {
      // Nobody listens at that address: refused after one trip's worth of nothing.
      this.hub.network.send(from, from, packet);
      return;
    }
    this.hub.network.send(from, to, packet);
  }

  receive(packet: PeerPacket): void {
    if (!this.open) return;
    const direction = packet.direction;
    if (packet.sequence < this.nextDeliver[direction]) return; // a duplicate
    const pending = this.pending[direction];
    pending.set(packet.sequence, packet.run);
    for (;;) {
      const run = pending.get(this.nextDeliver[direction]);
      if (run === undefined) break;
      pending.delete(this.nextDeliver[direction]);
      this.nextDeliver[direction]++;
      run();
      if (!this.open) return;
    }
  }

  accept(handler: PeerRequestHandler): void {
    this.handler = handler;
  }

  newStreamId(): number {
    return this.nextStreamId++;
  }

  kill(reason: string): void {
    if (!this.open) return;
    this.open = false;
    for (const handler of this.closeHandlers.splice(0)) handler(reason);
    this.resolveClosed();
  }
}

class SimSession implements PeerSession {
  readonly closed: Promise<void>;
  private pingsWaiting = new Map<number, { resolve(): void; reject(error: Error): void }>();
  private nextPing = 0;

  constructor(
    private readonly hub: SimPeerHub,
    private readonly connection: SimConnection,
  ) {
    this.closed = connection.closed;
    connection.onClose((reason) => {
      for (const waiter of this.pingsWaiting.values()) waiter.reject(new Error(`session closed: ${reason}`));
      this.pingsWaiting.clear();
    });
  }

  request(path: string, headers: Record<string, string>): PeerOutgoingStream {
    return this.open(path, headers, "POST");
  }

  open(path: string, headers: Record<string, string>, method: string): SimOutgoingStream {
    const connection = this.connection;
    const id = connection.newStreamId();
    const stream = new SimOutgoingStream(connection, id);
    if (!connection.isOpen) {
      stream.close("session closed");
      return stream;
    }
    connection.clientStreams.set(id, stream);
    connection.send(0, () => {
      const handler = connection.handler;
      if (handler === undefined) return connection.kill("stream before the connection was accepted");
      this.hub.requestsByPath.set(path, (this.hub.requestsByPath.get(path) ?? 0) + 1);
      const request = new SimIncomingRequest(connection, id, method, path, headers);
      connection.serverStreams.set(id, request);
      handler(request);
    });
    return stream;
  }

  ping(): Promise<void> {
    if (!this.connection.isOpen) return Promise.reject(new Error("session closed"));
    const id = this.nextPing++;
    const answered = new Promise<void>((resolve, reject) => this.pingsWaiting.set(id, { resolve, reject }));
    this.connection.send(0, () =>
      this.connection.send(1, () => {
        this.pingsWaiting.get(id)?.resolve();
        this.pingsWaiting.delete(id);
      }),
    );
    return answered;
  }

  close(): void {
    this.connection.kill("closed by the dialler");
  }
}

class SimOutgoingStream implements PeerOutgoingStream {
  readonly response: Promise<{ status: number; headers: Record<string, string> }>;
  readonly closed: Promise<void>;
  /** The whole response body, once the listener ends it (used by fetch). */
  readonly fullBody: Promise<Uint8Array>;
  private resolveResponse!: (head: { status: number; headers: Record<string, string> }) => void;
  private rejectResponse!: (error: Error) => void;
  private resolveBody!: (body: Uint8Array) => void;
  private rejectBody!: (error: Error) => void;
  private resolveClosed!: () => void;
  private isClosed = false;
  private ended = false;
  private responded = false;

  constructor(
    private readonly connection: SimConnection,
    private readonly id: number,
  ) {
    this.response = new Promise((resolve, reject) => {
      this.resolveResponse = resolve;
      this.rejectResponse = reject;
    });
    this.response.catch(() => {});
    this.fullBody = new Promise((resolve, reject) => {
      this.resolveBody = resolve;
      this.rejectBody = reject;
    });
    this.fullBody.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    connection.onClose((reason) => this.close(`connection closed: ${reason}`));
  }

  /** The listener sent the response head. */
  headReceived(status: number, headers: Record<string, string>): void {
    this.responded = true;
    this.resolveResponse({ status, headers });
  }

  /** The listener ended its response: the stream is over. */
  endReceived(body: Uint8Array): void {
    this.resolveBody(body);
    this.close("ended");
  }

  close(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.connection.clientStreams.delete(this.id);
    if (!this.responded) this.rejectResponse(new Error(`peer stream closed before a response (${reason})`));
    this.rejectBody(new Error(`peer stream closed (${reason})`));
    this.resolveClosed();
  }

  write(chunk: Uint8Array): boolean {
    if (this.isClosed || this.ended) return false;
    const copy = chunk.slice();
    const id = this.id;
    this.connection.send(0, () => this.connection.serverStreams.get(id)?.chunkReceived(copy));
    return true;
  }

  drained(): Promise<void> {
    return this.isClosed ? Promise.reject(new Error("peer stream closed")) : Promise.resolve();
  }

  end(): void {
    if (this.isClosed || this.ended) return;
    this.ended = true;
    const id = this.id;
    this.connection.send(0, () => this.connection.serverStreams.get(id)?.endReceived());
  }

  abort(): void {
    if (this.isClosed) return;
    const id = this.id;
    this.connection.send(0, () => this.connection.serverStreams.get(id)?.reset("reset by the dialler"));
    this.close("aborted");
  }
}

class SimIncomingRequest implements PeerIncomingRequest {
  readonly body: AsyncIterable<Uint8Array>;
  private readonly chunks: Uint8Array[] = [];
  private bodyEnded = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private headSent = false;
  private finished = false;

  constructor(
    private readonly connection: SimConnection,
    private readonly id: number,
    readonly method: string,
    readonly path: string,
    private readonly headers: Record<string, string>,
  ) {
    connection.onClose((reason) => this.reset(`connection closed: ${reason}`));
    this.body = { [Symbol.asyncIterator]: () => this.iterate() };
  }

  private async *iterate(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        yield chunk;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.bodyEnded) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  chunkReceived(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.poke();
  }

  endReceived(): void {
    this.bodyEnded = true;
    this.poke();
  }

  reset(reason: string): void {
    if (this.failure !== undefined) return;
    this.failure = new Error(`stream reset: ${reason}`);
    this.finished = true;
    this.connection.serverStreams.delete(this.id);
    this.poke();
  }

  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()];
  }

  respond(status: number, headers: Record<string, string> = {}): void {
    if (this.headSent || this.finished) return;
    this.headSent = true;
    const id = this.id;
    const copy = { ...headers };
    this.connection.send(1, () => this.connection.clientStreams.get(id)?.headReceived(status, copy));
  }

  end(body?: Uint8Array): void {
    if (this.finished) return;
    this.respond(200);
    this.finished = true;
    this.connection.serverStreams.delete(this.id);
    const id = this.id;
    const copy = body === undefined ? new Uint8Array(0) : body.slice();
    this.connection.send(1, () => this.connection.clientStreams.get(id)?.endReceived(copy));
  }

  abort(): void {
    if (this.finished) return;
    this.reset("aborted by the listener");
    const id = this.id;
    this.connection.send(1, () => this.connection.clientStreams.get(id)?.close("reset by the listener"));
  }
}
