// The watch guarantees on a real 3-member cluster with faults. One sequential
// writer (on a member that is never faulted) puts, deletes, runs txns and
// compacts; watchers on every member start at current-100 .. current+100.
// The leader and then another member are killed with SIGKILL and restarted:
// the watchers whose stream broke reconnect, to another member at once or to
// the same member once it is back, resuming from their last revision + 1.
// Then a member is paused with SIGSTOP while writes go on (a poor man's
// partition) and resumed: its watchers must get the missed events exactly once.
// Every watcher's whole history, across reconnects, goes through
// test/watch/checker.ts: ordered, unique, reliable, atomic, resumable,
// bookmarkable, filters, IsCreate and prev_kv.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Client } from "@connectrpc/connect";
import { KV, type WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { clientsOf, startCluster, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { checkProgress, checkWatcher, Model, type CheckedWatcher, type WatcherSpec } from "./checker.ts";
import { bytes, openWatcher, seeded, sleep, WatchStream, writeRandom } from "./watch-client.ts";

const keys = Array.from({ length: 10 }, (_, i) => `w/k${i}`);

/** One gRPC watcher as it lived on one stream; a logical watcher has one per (re)connection. */
interface Session {
  stream: WatchStream;
  watchId: bigint;
  createdRevision: number;
  /** The revision this session was asked to start at (already resolved when the watcher began "from now"). */
  start: number;
}

interface LogicalWatcher {
  spec: WatcherSpec;
  /** The first revision the watcher owes, fixed when it was first created. */
  start: number;
  sessions: Session[];
}

interface MemberStream {
  member: ClusterMember;
  stream: WatchStream;
  watchers: LogicalWatcher[];
}

const specs: Array<Omit<WatcherSpec, "startRevision">> = [
  { key: "w/", end: "w0", noPut: false, noDelete: false, prevKv: true },
  { key: "w/k3", end: undefined, noPut: false, noDelete: false, prevKv: true },
  { key: "w/k2", end: "w/k6", noPut: true, noDelete: false, prevKv: false },
  { key: "w/k5", end: "\0", noPut: false, noDelete: true, prevKv: false },
  { key: "", end: "\0", noPut: false, noDelete: false, prevKv: false },
];

function sessionResponses(session: Session): WatchResponse[] {
  return session.stream.responses.filter((r) => r.watchId === session.watchId && !r.created);
}

/** The revision of the newest event the watcher received on any session, or start - 1. */
function lastRevision(watcher: LogicalWatcher): number {
  let last = watcher.start - 1;
  for (const session of watcher.sessions) {
    for (const response of sessionResponses(session)) {
      for (const event of response.events) last = Math.max(last, Number(event.kv!.modRevision));
    }
  }
  return last;
}

/** The watcher's whole history as one stream for the checker: every session's responses in order, under one id. */
function asChecked(watcher: LogicalWatcher): CheckedWatcher {
  const responses = watcher.sessions.flatMap((session) => sessionResponses(session).map((r) => ({ ...r, watchId: 0n }) as WatchResponse));
  return { spec: { ...watcher.spec, startRevision: watcher.start }, watchId: 0n, createdRevision: watcher.start - 1, streamResponses: responses };
}

/** `count` puts of history, ten at a time (only puts: their effect depends on nothing but the order the server gave them). */
async function writeHistory(kv: Client<typeof KV>, model: Model, count: number): Promise<void> {
  for (let done = 0; done < count; done += 10) {
    const batch = Array.from({ length: Math.min(10, count - done) }, (_, i) => [keys[(done + i) % keys.length]!, `h${done + i}`] as const);
    const revisions = await Promise.all(batch.map(async ([key, value]) => Number((await kv.put({ key: bytes(key), value: bytes(value) })).header!.revision)));
    const inOrder = batch.map((put, i) => ({ put, revision: revisions[i]! })).sort((a, b) => a.revision - b.revision);
    for (const { put, revision } of inOrder) assert.equal(model.apply([{ put: [put[0], put[1]] }]), revision, "server revision matches the model");
  }
}

describe("watch guarantees on a 3-member cluster with kill -9 and SIGSTOP", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster(3);
  }, { timeout: 120_000 });
  after(async () => {
    await cluster?.stopAll();
  });

  const seed = Number(process.env.WATCH_SEED ?? Date.now() % 100_000);
  test(`every watcher, across reconnects, gets exactly the model's events (seed ${seed})`, { timeout: 120_000 }, async () => {
    const random = seeded(seed);
    /** The member the others agree leads (asking every member that is up, until one is elected). */
    const leaderOf = async (): Promise<ClusterMember> => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const statuses = await Promise.all(
          cluster.members.map((member) =>
            clientsOf(member)
              .maintenance.status({}, { timeoutMs: 1_000 })
              .catch(() => undefined),
          ),
        );
        const leaderId = statuses.find((status) => status !== undefined && status.leader !== 0n)?.leader;
        const index = statuses.findIndex((status) => status !== undefined && status.header!.memberId === leaderId);
        if (index >= 0) return cluster.members[index]!;
        if (Date.now() > deadline) throw new Error("no member is the leader");
        await sleep(100);
      }
    };
    const leader = await leaderOf();
    const writerMember = cluster.members.find((m) => m !== leader)!;
    const others = cluster.members.filter((m) => m !== writerMember);
    const { kv } = clientsOf(writerMember);
    const model = new Model();
    const memberStreams: MemberStream[] = [];
    const deadStreams: WatchStream[] = [];

    /** Waits until the writer's member serves a linearizable read, i.e. a leader is in place. */
    const waitForLeader = async () => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await kv.range({ key: bytes("w/k0") }, { timeoutMs: 1_000 });
          return;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await sleep(100);
        }
      }
    };

    const openLogical = async (target: MemberStream, spec: Omit<WatcherSpec, "startRevision">, startRevision: number) => {
      const checked = await openWatcher(target.stream, { ...spec, startRevision });
      const start = startRevision === 0 ? checked.createdRevision + 1 : startRevision;
      const session: Session = { stream: target.stream, watchId: checked.watchId, createdRevision: checked.createdRevision, start };
      target.watchers.push({ spec: { ...spec, startRevision }, start, sessions: [session] });
    };
    const addWatchers = async (offsets: number[]) => {
      for (const member of cluster.members) {
        for (const [index, offset] of offsets.entries()) {
          let target = memberStreams.filter((s) => s.member === member)[index % 2];
          if (target === undefined) {
            target = { member, stream: new WatchStream(clientsOf(member).watch), watchers: [] };
            memberStreams.push(target);
          }
          for (const spec of specs) {
            const startRevision = offset === 0 ? 0 : Math.max(1, model.revision + offset);
            if (startRevision !== 0 && startRevision <= model.compactRevision) continue;
            await openLogical(target, spec, startRevision);
          }
        }
      }
    };
    /** Moves a broken stream's watchers to a new stream on `member`, each resuming from its last revision + 1. */
    const reconnect = async (old: MemberStream, member: ClusterMember) => {
      const error = await old.stream.ended;
      assert.ok(error !== undefined, "the stream to a killed member broke");
      deadStreams.push(old.stream);
      old.member = member;
      old.stream = new WatchStream(clientsOf(member).watch);
      for (const watcher of old.watchers) {
        const resumeAt = lastRevision(watcher) + 1;
        assert.ok(resumeAt > model.compactRevision, "the test never compacts past a watcher's resume point");
        const checked = await openWatcher(old.stream, { ...watcher.spec, startRevision: resumeAt }, 30_000);
        watcher.sessions.push({ stream: old.stream, watchId: checked.watchId, createdRevision: checked.createdRevision, start: resumeAt });
      }
    };
    /** SIGKILL, reconnect half the member's streams elsewhere at once, restart it, reconnect the rest to it. */
    const killAndRestart = async (victim: ClusterMember) => {
      await victim.server!.kill();
      const streams = memberStreams.filter((s) => s.member === victim);
      const elsewhere = cluster.members.find((m) => m !== victim && m !== writerMember) ?? writerMember;
      await waitForLeader();
      for (const [index, stream] of streams.entries()) if (index % 2 === 0) await reconnect(stream, elsewhere);
      // Writes go on while the member is down and while it restarts.
      let restarted = false;
      const restarting = cluster.start(victim).finally(() => (restarted = true));
      for (let i = 0; i < 10 || !restarted; i++) await writeRandom(kv, model, random, keys);
      await restarting;
      await waitForLeader();
      for (const [index, stream] of streams.entries()) if (index % 2 === 1) await reconnect(stream, victim);
    };
    const compactBehindEveryone = async () => {
      const watchers = memberStreams.flatMap((s) => s.watchers);
      const target = Math.min(model.revision - 20, ...watchers.map((w) => lastRevision(w)));
      if (target <= model.compactRevision) return;
      await kv.compact({ revision: BigInt(target) });
      model.compactRevision = target;
    };

    let stopped: ClusterMember | undefined;
    let firstVictim: ClusterMember | undefined;
    try {
      await writeHistory(kv, model, 110);
      await addWatchers([-100, -37, 0, 13, 100]);
      for (let i = 0; i < 160; i++) {
        await writeRandom(kv, model, random, keys);
        if (i % 30 === 0) for (const s of memberStreams) s.stream.requestProgress();
        if (i === 15) await compactBehindEveryone();
        if (i === 30) {
          // The leader, unless leadership moved to the writer's member meanwhile.
          const current = await leaderOf();
          firstVictim = current === writerMember ? others[0]! : current;
          await killAndRestart(firstVictim);
        }
        if (i === 50) await addWatchers([-30, 0, 60]);
        if (i === 70) await killAndRestart(others.find((m) => m !== firstVictim)!);
        if (i === 90) await compactBehindEveryone();
        if (i === 100) {
          const current = await leaderOf();
          stopped = others.find((m) => m !== current)!;
          stopped.server!.process.kill("SIGSTOP");
        }
        if (i === 130 && stopped !== undefined) {
          stopped.server!.process.kill("SIGCONT");
          stopped = undefined;
        }
      }

      // Bookmark the end: a progress notification at (or after) the final revision on every stream.
      const through = model.revision;
      for (const { stream } of memberStreams) {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const mark = stream.responses.length;
          stream.requestProgress();
          const isFinal = (r: WatchResponse) => r.watchId === -1n && !r.created && r.events.length === 0 && Number(r.header!.revision) >= through;
          try {
            await stream.until((responses) => responses.slice(mark).some(isFinal), "final progress notification", 1_000);
            break;
          } catch (error) {
            if (Date.now() > deadline) throw error;
          }
        }
      }
      const all = memberStreams.flatMap((s) => s.watchers);
      assert.ok(all.length >= 3 * 5 * 7, `${all.length} watchers`);
      assert.ok(all.filter((w) => w.sessions.length > 1).length >= 2 * 5 * 5, "watchers of both killed members reconnected");
      for (const [index, watcher] of all.entries()) {
        const result = checkWatcher(model, asChecked(watcher), through, `seed ${seed} watcher ${index} ${JSON.stringify(watcher.spec)} sessions ${watcher.sessions.map((s) => s.start).join(",")}`);
        assert.equal(result.canceledAt, undefined, `watcher ${index} was not expected to be compacted`);
      }
      // Bookmarkable, per stream (the dead ones up to their end, too).
      let progressCount = 0;
      for (const [index, stream] of [...memberStreams.map((s) => s.stream), ...deadStreams].entries()) {
        const sessions = all.flatMap((w) => w.sessions.filter((s) => s.stream === stream).map((s) => ({ w, s })));
        const checked = sessions.map(({ w, s }): CheckedWatcher => ({
          spec: { ...w.spec, startRevision: s.start },
          watchId: s.watchId,
          createdRevision: s.createdRevision,
          streamResponses: stream.responses,
        }));
        progressCount += checkProgress(model, checked, stream.responses, `seed ${seed} stream ${index}`);
      }
      assert.ok(progressCount >= memberStreams.length, `${progressCount} progress notifications`);
    } finally {
      if (stopped !== undefined) stopped.server?.process.kill("SIGCONT");
      await Promise.all([...memberStreams.map((s) => s.stream.close()), ...deadStreams.map((s) => s.close())]);
    }
  });
});
