// Client-side pieces shared by the watch checker tests: one gRPC Watch stream
// whose requests are written as we go and whose responses are kept in order,
// opening a watcher on it, and a seeded sequential writer that keeps the
// checker's model in step with the server.
import assert from "node:assert/strict";
import type { Client } from "@connectrpc/connect";
import type { KV, Watch, WatchRequest, WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import type { CheckedWatcher, Model, ModelOp, WatcherSpec } from "./checker.ts";

const encoder = new TextEncoder();
export const bytes = (text: string) => encoder.encode(text);
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** xorshift32: every random choice of a checker run comes from its seed. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

/** A client watch stream: requests written as we go, responses collected in order. */
export class WatchStream {
  readonly responses: WatchResponse[] = [];
  private readonly pending: WatchRequest[] = [];
  private wakeWriter: (() => void) | undefined;
  private wakeReader: (() => void) | undefined;
  private closed = false;
  paused = false;
  /** Resolves when the stream ends: with the error that broke it, or undefined after close(). */
  readonly ended: Promise<unknown>;
  private readonly abort = new AbortController();

  constructor(client: Client<typeof Watch>) {
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
        for await (const response of client.watch(requests(), { signal: this.abort.signal })) {
          while (this.paused) await sleep(20);
          this.responses.push(response);
          this.wakeReader?.();
        }
        return this.closed ? undefined : new Error("the server ended the watch stream");
      } catch (error) {
        return this.closed ? undefined : error;
      } finally {
        this.wakeReader?.();
      }
    })();
  }

  send(request: Omit<WatchRequest, "$typeName">): void {
    this.pending.push(request as WatchRequest);
    this.wakeWriter?.();
  }

  requestProgress(): void {
    this.send({ requestUnion: { case: "progressRequest", value: {} as never } });
  }

  async until(predicate: (responses: WatchResponse[]) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.responses)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Promise.race([new Promise<void>((resolve) => (this.wakeReader = resolve)), sleep(50)]);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeWriter?.();
    this.abort.abort();
    await this.ended;
  }
}

/** Opens a watcher and waits for its created response. */
export async function openWatcher(stream: WatchStream, spec: WatcherSpec, timeoutMs = 15_000): Promise<CheckedWatcher> {
  const before = stream.responses.length;
  const filters: number[] = [];
  if (spec.noPut) filters.push(0);
  if (spec.noDelete) filters.push(1);
  stream.send({
    requestUnion: {
      case: "createRequest",
      value: {
        key: bytes(spec.key),
        rangeEnd: spec.end === undefined ? new Uint8Array(0) : bytes(spec.end),
        startRevision: BigInt(spec.startRevision),
        filters,
        prevKv: spec.prevKv,
      } as never,
    },
  });
  await stream.until((responses) => responses.slice(before).some((r) => r.created), "created", timeoutMs);
  const created = stream.responses.slice(before).find((r) => r.created)!;
  assert.equal(created.canceled, false, created.cancelReason);
  return { spec, watchId: created.watchId, createdRevision: Number(created.header!.revision), streamResponses: stream.responses };
}

/** One random write (put, delete, range delete or a multi-key txn) on `keys`, applied to the model too. */
export async function writeRandom(kv: Client<typeof KV>, model: Model, random: () => number, keys: readonly string[]): Promise<void> {
  const pick = () => keys[Math.floor(random() * keys.length)] as string;
  const roll = random();
  let ops: ModelOp[];
  let revision: bigint;
  if (roll < 0.55) {
    const key = pick();
    const value = `v${Math.floor(random() * 1e6)}`;
    ops = [{ put: [key, value] }];
    revision = (await kv.put({ key: bytes(key), value: bytes(value) })).header!.revision;
  } else if (roll < 0.7) {
    const key = pick();
    ops = [{ del: [key, undefined] }];
    revision = (await kv.deleteRange({ key: bytes(key) })).header!.revision;
  } else if (roll < 0.78) {
    const [a, b] = [pick(), pick()].sort();
    ops = [{ del: [a!, b!] }];
    revision = (await kv.deleteRange({ key: bytes(a!), rangeEnd: bytes(b!) })).header!.revision;
  } else {
    // A txn of puts and single-key deletes on distinct keys: one revision, several events.
    const chosen = [...new Set([pick(), pick(), pick(), pick()])];
    ops = chosen.map((key, i): ModelOp => (i % 3 === 2 ? { del: [key, undefined] } : { put: [key, `t${Math.floor(random() * 1e6)}`] }));
    const success = ops.map((op) =>
      "put" in op
        ? { request: { case: "requestPut" as const, value: { key: bytes(op.put[0]), value: bytes(op.put[1]) } } }
        : { request: { case: "requestDeleteRange" as const, value: { key: bytes(op.del[0]) } } },
    );
    revision = (await kv.txn({ success: success as never })).header!.revision;
  }
  assert.equal(Number(revision), model.apply(ops), "server revision matches the model");
}
