// What the abuse tier measures around an attack: the member's memory (from
// /proc, so it works for edgetcd on Node or Bun and for etcd alike), whether it
// is still alive, and how a well-behaved client fared meanwhile.
import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV } from "../../src/gen/etcdserverpb/rpc_pb.ts";

export const mebibyte = 1024 * 1024;

/** Resident memory of a process in bytes; undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every `intervalMs` and keeps the highest. */
export class MemoryWatch {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, intervalMs = 50) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    this.peak = Math.max(this.peak, rssBytes(this.pid) ?? 0);
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}

/**
 * Waits until the process's RSS is back under `bytesMax`, for up to
 * `timeoutMs`; returns the last reading. Memory freed by a garbage collector
 * is returned lazily, so "returned" means "comes back within a while".
 */
export async function rssSettledUnder(pid: number, bytesMax: number, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  let rss = rssBytes(pid);
  while (rss !== undefined && rss > bytesMax && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    rss = rssBytes(pid);
  }
  return rss;
}

export interface ClientReport {
  operations: number;
  failures: number;
  /** The first few failure messages, for the assertion message. */
  failureMessages: string[];
  latencyMsP50: number;
  latencyMsP99: number;
  latencyMsMax: number;
  /** Keys whose put was acknowledged, with the value: every one must be readable afterwards. */
  acknowledged: Map<string, string>;
}

/**
 * A client that behaves: on its own HTTP/2 connection, a put then a
 * linearizable get every `intervalMs`, each with a deadline. Its latencies and
 * failures say whether an attack on the same member starved others.
 */
export class WellBehavedClient {
  private readonly latenciesMs: number[] = [];
  private failures = 0;
  private readonly failureMessages: string[] = [];
  private readonly acknowledged = new Map<string, string>();
  private running = true;
  private readonly done: Promise<void>;

  constructor(clientPort: number, private readonly prefix: string, intervalMs = 100, deadlineMs = 5000) {
    const kv = createClient(KV, createGrpcTransport({ baseUrl: `http://127.0.0.1:${clientPort}` }));
    const encoder = new TextEncoder();
    this.done = (async () => {
      for (let i = 0; this.running; i++) {
        const key = `${prefix}/${i}`;
        const value = `v${i}`;
        const started = performance.now();
        try {
          await kv.put({ key: encoder.encode(key), value: encoder.encode(value) }, { timeoutMs: deadlineMs });
          this.acknowledged.set(key, value);
          await kv.range({ key: encoder.encode(key) }, { timeoutMs: deadlineMs });
          this.latenciesMs.push(performance.now() - started);
        } catch (error) {
          this.failures++;
          if (this.failureMessages.length < 5) this.failureMessages.push(String(error));
        }
        const elapsed = performance.now() - started;
        if (elapsed < intervalMs) await new Promise((resolve) => setTimeout(resolve, intervalMs - elapsed));
      }
    })();
  }

  async stop(): Promise<ClientReport> {
    this.running = false;
    await this.done;
    const sorted = [...this.latenciesMs].sort((a, b) => a - b);
    const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? Number.NaN;
    return {
      operations: sorted.length + this.failures,
      failures: this.failures,
      failureMessages: this.failureMessages,
      latencyMsP50: at(0.5),
      latencyMsP99: at(0.99),
      latencyMsMax: sorted[sorted.length - 1] ?? Number.NaN,
      acknowledged: this.acknowledged,
    };
  }
}

export function describeReport(report: ClientReport): string {
  return `${report.operations} ops, ${report.failures} failed, p50 ${report.latencyMsP50.toFixed(1)} ms, p99 ${report.latencyMsP99.toFixed(1)} ms${
    report.failureMessages.length > 0 ? `; failures: ${report.failureMessages.join(" | ")}` : ""
  }`;
}
