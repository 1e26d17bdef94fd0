// The watch guarantees on a running edgetcd: one sequential writer puts,
// deletes, runs txns and compacts (seeded), while watchers started at
// current ± N on two gRPC streams, with filters, prev_kv, ranges, prefixes
// and from-key, are checked against the model by test/watch/checker.ts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV, Watch, type WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startEdgetcd, type RunningServer } from "../support/processes.ts";
import { checkProgress, checkWatcher, Model, type CheckedWatcher, type WatcherSpec } from "./checker.ts";
import { bytes, openWatcher, seeded, WatchStream, writeRandom } from "./watch-client.ts";

const keys = Array.from({ length: 10 }, (_, i) => `w/k${i}`);
const write = (kv: Client<typeof KV>, model: Model, random: () => number) => writeRandom(kv, model, random, keys);

describe("watch guarantees on a running edgetcd", () => {
  let server: RunningServer;
  before(async () => {
    server = await startEdgetcd();
  }, { timeout: 120_000 });
  after(async () => {
    await server?.stop();
  });

  const seed = Number(process.env.WATCH_SEED ?? Date.now() % 100_000);
  test(`ordered, unique, reliable, atomic, resumable, bookmarkable, filters, prev_kv (seed ${seed})`, async () => {
    const random = seeded(seed);
    const transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
    const kv = createClient(KV, transport);
    const watch = createClient(Watch, transport);
    const model = new Model();
    const streams = [new WatchStream(watch), new WatchStream(watch)];
    const watchers: Array<CheckedWatcher & { stream: WatchStream }> = [];
    const specs = (): Array<Omit<WatcherSpec, "startRevision">> => [
      { key: "w/", end: "w0", noPut: false, noDelete: false, prevKv: true },
      { key: "w/k3", end: undefined, noPut: false, noDelete: false, prevKv: true },
      { key: "w/k2", end: "w/k6", noPut: true, noDelete: false, prevKv: false },
      { key: "w/k5", end: "\0", noPut: false, noDelete: true, prevKv: false },
      { key: "", end: "\0", noPut: false, noDelete: false, prevKv: false },
    ];
    const addWatchers = async (offsets: number[]) => {
      for (const offset of offsets) {
        for (const spec of specs()) {
          const stream = streams[watchers.length % streams.length]!;
          const startRevision = offset === 0 ? 0 : Math.max(1, model.revision + offset);
          if (startRevision !== 0 && startRevision < model.compactRevision) continue;
          watchers.push({ ...(await openWatcher(stream, { ...spec, startRevision })), stream });
          // Asked while the new watcher may still be catching up: must wait for it.
          stream.send({ requestUnion: { case: "progressRequest", value: {} as never } });
        }
      }
    };
    try {
      for (let i = 0; i < 60; i++) await write(kv, model, random);
      await addWatchers([-50, -10, 0, 1, 8]);
      for (let i = 0; i < 240; i++) {
        await write(kv, model, random);
        if (i % 25 === 0) for (const stream of streams) stream.send({ requestUnion: { case: "progressRequest", value: {} as never } });
        if (i === 100) {
          const target = model.revision - 40;
          await kv.compact({ revision: BigInt(target) });
          model.compactRevision = target;
        }
        if (i === 120) await addWatchers([-30, -3, 0, 40]);
      }
      // A watcher below the compact revision is canceled with it.
      const compacted = await openWatcher(streams[0]!, { key: "w/", end: "w0", startRevision: model.compactRevision - 1, noPut: false, noDelete: false, prevKv: false });
      await streams[0]!.until((responses) => responses.some((r) => r.watchId === compacted.watchId && r.canceled), "compaction cancel");
      const cancel = streams[0]!.responses.find((r) => r.watchId === compacted.watchId && r.canceled)!;
      assert.equal(Number(cancel.compactRevision), model.compactRevision);

      // Bookmark the end: a progress notification at the final revision on every stream.
      const through = model.revision;
      for (const stream of streams) {
        const isFinal = (r: WatchResponse) => r.watchId === -1n && !r.created && r.events.length === 0 && Number(r.header!.revision) >= through;
        stream.send({ requestUnion: { case: "progressRequest", value: {} as never } });
        await stream.until((responses) => responses.some(isFinal), "final progress notification");
      }
      for (const [index, watcher] of watchers.entries()) {
        const result = checkWatcher(model, watcher, through, `seed ${seed} watcher ${index} ${JSON.stringify(watcher.spec)}`);
        assert.equal(result.canceledAt, undefined, `watcher ${index} was not expected to be compacted`);
      }
      let progressCount = 0;
      for (const [index, stream] of streams.entries()) {
        const mine = watchers.filter((watcher) => watcher.stream === stream);
        progressCount += checkProgress(model, mine, stream.responses, `seed ${seed} stream ${index}`);
      }
      assert.ok(progressCount >= streams.length * 5, `${progressCount} progress notifications`);

      // Resumable: a new watch from the middle continues exactly where the first left off.
      const resumeFrom = model.compactRevision + 20;
      const resumed = await openWatcher(streams[1]!, { key: "w/", end: "w0", startRevision: resumeFrom, noPut: false, noDelete: false, prevKv: true });
      const isFinal = (r: WatchResponse) => r.watchId === -1n && Number(r.header!.revision) >= through;
      const mark = streams[1]!.responses.length;
      streams[1]!.send({ requestUnion: { case: "progressRequest", value: {} as never } });
      await streams[1]!.until((responses) => responses.slice(mark).some(isFinal), "progress after resume");
      checkWatcher(model, resumed, through, `seed ${seed} resumed`);
    } finally {
      await Promise.all(streams.map((stream) => stream.close()));
    }
  });

  test("a reader that stops reading makes its watchers victims, and still gets every event in order", async () => {
    const transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
    const kv = createClient(KV, transport);
    const stream = new WatchStream(createClient(Watch, transport));
    try {
      const start = Number((await kv.put({ key: bytes("slow/start"), value: bytes("0") })).header!.revision);
      const watcher = await openWatcher(stream, { key: "slow/", end: "slow0", startRevision: 0, noPut: false, noDelete: false, prevKv: false });
      stream.paused = true;
      const value = bytes("x".repeat(16 * 1024));
      const writes = 400; // ~6.5 MB: more than the HTTP/2 windows and the server's 128-response queue
      for (let i = 0; i < writes; i++) await kv.put({ key: bytes(`slow/${i % 7}`), value });
      stream.paused = false;
      const last = start + writes;
      await stream.until((responses) => responses.some((r) => r.events.some((e) => Number(e.kv!.modRevision) === last)), "every event", 30_000);
      const revisions = stream.responses.filter((r) => r.watchId === watcher.watchId).flatMap((r) => r.events.map((e) => Number(e.kv!.modRevision)));
      assert.deepEqual(revisions, Array.from({ length: writes }, (_, i) => start + 1 + i));
    } finally {
      await stream.close();
    }
  });
});
