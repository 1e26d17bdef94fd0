// npm run bench -- --watch [--rounds R --seconds S --puts N --targets etcd,edgetcd-node,edgetcd-bun,edgetcd-deno]
// Watch fan-out on one node: 10,000 watchers (100 gRPC Watch streams of 100
// watchers, over 10 HTTP/2 connections, the same for every target) on one
// key. Per round and target, interleaved so noise hits all alike:
//  - latency: N sequential puts, each followed by the wait for its 10,000
//    events; the time from the put's acknowledgement to each event's arrival
//    (0 when the event beat the acknowledgement), p50 and p99;
//  - throughput: puts from 4 concurrent writers for S seconds, then the drain;
//    events delivered per second from the first put to the last event.
// Prints the medians over rounds and the ratios to etcd 3.4. The client runs
// in this one process, so it shares the 2 cores with the server under test.
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV, Watch, type WatchRequest, type WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";
import { runtimeOfTarget } from "./loadgen.ts";

const connections = 10;
const streamsPerConnection = 10;
const watchersPerStream = 100;
const watcherCount = connections * streamsPerConnection * watchersPerStream;
const watchedKey = new TextEncoder().encode("bench/watch/key");
const value = new Uint8Array(256).fill(120);
const drainTimeoutMs = 60_000;

/** A Watch stream that hands every response to a callback and keeps none. */
class FanOutStream {
  private readonly pending: WatchRequest[] = [];
  private wakeWriter: (() => void) | undefined;
  private closed = false;
  private readonly abort = new AbortController();
  readonly ended: Promise<void>;

  constructor(client: Client<typeof Watch>, onResponse: (response: WatchResponse) => void) {
    const self = this;
    async function* requests(): AsyncGenerator<WatchRequest> {
      while (!self.closed) {
        const next = self.pending.shift();
        if (next !== undefined) yield next;
        else await new Promise<void>((resolve) => (self.wakeWriter = resolve));
      }
    }
    this.ended = (async () => {
      try {
        for await (const response of client.watch(requests(), { signal: this.abort.signal })) onResponse(response);
      } catch (error) {
        if (!this.closed) throw error;
      }
    })();
  }

  create(): void {
    this.pending.push({ requestUnion: { case: "createRequest", value: { key: watchedKey } } } as unknown as WatchRequest);
    this.wakeWriter?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeWriter?.();
    this.abort.abort();
    await this.ended;
  }
}

/** 10,000 watchers on one server, counting and timing the events they receive. */
class WatcherFleet {
  private streams: FanOutStream[] = [];
  private created = 0;
  private onCreated: (() => void) | undefined;
  /** Events received since the last reset, and when the last one came. */
  received = 0;
  lastEventAt = 0;
  /** Arrival times of the current latency put's events (reset per put). */
  arrivals: number[] = [];
  /** The mod revision of each arrival, to check they all belong to the put being timed. */
  arrivalRevisions: number[] = [];
  private onCount: { target: number; resolve: () => void } | undefined;

  async open(endpoint: string): Promise<void> {
    const onResponse = (response: WatchResponse) => {
      if (response.created) {
        this.created++;
        if (this.created === watcherCount) this.onCreated?.();
        return;
      }
      const now = performance.now();
      for (const event of response.events) {
        this.received++;
        this.lastEventAt = now;
        this.arrivals.push(now);
        this.arrivalRevisions.push(Number(event.kv!.modRevision));
      }
      if (this.onCount !== undefined && this.received >= this.onCount.target) this.onCount.resolve();
    };
    const allCreated = new Promise<void>((resolve) => (this.onCreated = resolve));
    for (let c = 0; c < connections; c++) {
      const client = createClient(Watch, createGrpcTransport({ baseUrl: `http://${endpoint}` }));
      for (let s = 0; s < streamsPerConnection; s++) {
        const stream = new FanOutStream(client, onResponse);
        for (let w = 0; w < watchersPerStream; w++) stream.create();
        this.streams.push(stream);
      }
    }
    await withTimeout(allCreated, drainTimeoutMs, "watchers created");
  }

  reset(): void {
    this.received = 0;
    this.arrivals = [];
    this.arrivalRevisions = [];
  }

  async waitFor(count: number): Promise<void> {
    if (this.received >= count) return;
    await withTimeout(new Promise<void>((resolve) => (this.onCount = { target: count, resolve })), drainTimeoutMs, `${count} events`);
    this.onCount = undefined;
  }

  async close(): Promise<void> {
    await Promise.all(this.streams.map((stream) => stream.close()));
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface WatchMeasurement {
  p50Ms: number;
  p99Ms: number;
  eventsPerSecond: number;
}

async function measureLatency(kv: Client<typeof KV>, fleet: WatcherFleet, puts: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < puts; i++) {
    fleet.reset();
    const response = await kv.put({ key: watchedKey, value });
    const acknowledgedAt = performance.now();
    const revision = Number(response.header!.revision);
    await fleet.waitFor(watcherCount);
    const strays = fleet.arrivalRevisions.filter((r) => r !== revision).length;
    if (strays > 0 || fleet.received !== watcherCount) throw new Error(`${fleet.received} events, ${strays} of another revision than ${revision}`);
    for (const arrival of fleet.arrivals) latencies.push(Math.max(0, arrival - acknowledgedAt));
  }
  return latencies;
}

async function measureThroughput(kv: Client<typeof KV>, fleet: WatcherFleet, seconds: number): Promise<number> {
  fleet.reset();
  let puts = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (performance.now() < deadline) {
        await kv.put({ key: watchedKey, value });
        puts++;
      }
    }),
  );
  await fleet.waitFor(puts * watcherCount);
  const eventsPerSecond = fleet.received / ((fleet.lastEventAt - started) / 1000);
  fleet.reset();
  return eventsPerSecond;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

export async function runWatchBench(options: { rounds: number; seconds: number; puts: number; targetNames: string[] }): Promise<void> {
  const targets: Array<{ name: string; server: RunningServer; kv: Client<typeof KV>; fleet: WatcherFleet }> = [];
  try {
    for (const name of options.targetNames) {
      const server = name === "etcd" ? await startEtcd() : await startEdgetcd({ runtime: runtimeOfTarget(name) });
      const fleet = new WatcherFleet();
      targets.push({ name, server, kv: createClient(KV, createGrpcTransport({ baseUrl: `http://${server.endpoint}` })), fleet });
      await fleet.open(server.endpoint);
      console.log(`${name}: ${watcherCount} watchers on ${connections * streamsPerConnection} streams`);
    }
    const results = new Map<string, WatchMeasurement[]>();
    for (let round = 0; round < options.rounds; round++) {
      for (const { name, kv, fleet } of targets) {
        const latencies = (await measureLatency(kv, fleet, options.puts)).sort((a, b) => a - b);
        const eventsPerSecond = await measureThroughput(kv, fleet, options.seconds);
        const measurement = { p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), eventsPerSecond };
        results.set(name, [...(results.get(name) ?? []), measurement]);
        console.log(`round ${round + 1} ${name}: p50 ${measurement.p50Ms.toFixed(1)} ms, p99 ${measurement.p99Ms.toFixed(1)} ms, ${eventsPerSecond.toFixed(0)} events/s`);
      }
    }
    console.log(
      `\nwatch fan-out, ${watcherCount} watchers on one node; medians of ${options.rounds} rounds (${options.puts} latency puts, ${options.seconds}s of throughput each); ratio = edgetcd / etcd (events/s: higher is better; latency: lower is better)\n`,
    );
    console.log(["target", "put->event p50 ms", "p99 ms", "events/s", "events/s ratio", "p50 ratio", "p99 ratio"].join("\t"));
    const summarize = (name: string) => {
      const list = results.get(name) ?? [];
      return { p50Ms: median(list.map((m) => m.p50Ms)), p99Ms: median(list.map((m) => m.p99Ms)), eventsPerSecond: median(list.map((m) => m.eventsPerSecond)) };
    };
    const baseline = results.has("etcd") ? summarize("etcd") : undefined;
    const ratio = (a: number, b: number | undefined) => (b === undefined ? "-" : (a / b).toFixed(2));
    for (const { name } of targets) {
      const row = summarize(name);
      console.log(
        [name, row.p50Ms.toFixed(1), row.p99Ms.toFixed(1), row.eventsPerSecond.toFixed(0), ratio(row.eventsPerSecond, baseline?.eventsPerSecond), ratio(row.p50Ms, baseline?.p50Ms), ratio(row.p99Ms, baseline?.p99Ms)].join("\t"),
      );
    }
  } finally {
    for (const { fleet, server } of targets) {
      await fleet.close().catch(() => {});
      await server.stop();
    }
  }
}
