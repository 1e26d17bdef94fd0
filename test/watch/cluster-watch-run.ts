// One run of the watch guarantees on a real 3-member cluster with faults, for
// test/watch/cluster-watch.test.ts (a fixed schedule) and the W1 scenario of
// test:long (a schedule drawn from the seed). One sequential writer, on a
// member no fault touches, puts, deletes, runs txns and compacts, keeping the
// checker's model in step; watchers on every member start at current-100 ..
// current+100 with filters, prev_kv, ranges and from-key. Three faults hit
// the other members in turn (SIGKILL then restart, SIGSTOP then SIGCONT, or
// isolation from the peers then heal): watchers whose stream broke reconnect,
// to another member at once or to the same one once it is back, resuming from
// their last revision + 1. At the end every stream gets a progress
// notification at or past the final revision, and every watcher's whole
// history, across reconnects, goes through test/watch/checker.ts: ordered,
// unique, reliable, atomic, resumable, bookmarkable, filters, IsCreate and
// prev_kv. Violations are collected, not thrown, so a long run can count them.
import type { Client } from "@connectrpc/connect";
import { KV, type WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { clientsOf, type ClusterMember, type TestCluster } from "../support/cluster.ts";
import { checkProgress, checkWatcher, Model, type CheckedWatcher, type ModelOp, type WatcherSpec } from "./checker.ts";
import { bytes, openWatcher, seeded, sleep, WatchStream } from "./watch-client.ts";

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

/**
 * The three faults of a run, in order (at writes 30, 70 and 100). "kill" and
 * "pause" hit the leader when it is not the writer's member, else another
 * member; "isolate" needs a cluster with peer proxies. A pause or an isolation
 * lasts 30 writes.
 */
export type WatchFault = "kill" | "pause" | "isolate";

export interface ClusterWatchResult {
  watchers: number;
  /** Watchers that had more than one session (they reconnected). */
  reconnected: number;
  progressNotifications: number;
  writes: number;
  /** Events received by all watchers together. */
  events: number;
  /** One line per watcher or stream whose check failed. */
  violations: string[];
  /** Time spent checking the histories. */
  checkMs: number;
  /** What each fault hit. */
  notes: string[];
}

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
    for (const { put, revision } of inOrder) {
      if (model.apply([{ put: [put[0], put[1]] }]) !== revision) throw new Error(`history put at ${revision}, the model says ${model.revision}`);
    }
  }
}

/** The writer's sequence number, written with every write (watchers of the whole key space see it too). */
const sequenceKey = "~sequence";

/**
 * One random write (put, delete, range delete or a multi-key txn) on `keys`,
 * as a txn guarded by the writer's sequence key, so that its outcome is known
 * even when the call fails (a fault can drop a proposal, or apply it after
 * the client gave up): the txn applies only if the sequence is still the
 * previous one, and sets it to this write's. After an error the writer reads
 * the sequence: this write's number means it applied, at that key's
 * revision; otherwise the same guarded txn is sent again, and a late copy of
 * the first attempt can no longer apply after it.
 */
class GuardedWriter {
  private sequence = 0;

  constructor(
    private readonly kv: () => Client<typeof KV>,
    private readonly model: Model,
    private readonly random: () => number,
    private readonly recover: () => Promise<void>,
  ) {}

  async write(): Promise<void> {
    const pick = () => keys[Math.floor(this.random() * keys.length)] as string;
    const roll = this.random();
    let ops: ModelOp[];
    if (roll < 0.55) ops = [{ put: [pick(), `v${Math.floor(this.random() * 1e6)}`] }];
    else if (roll < 0.7) ops = [{ del: [pick(), undefined] }];
    else if (roll < 0.78) {
      const [a, b] = [pick(), pick()].sort();
      ops = [{ del: [a!, b!] }];
    } else {
      // Puts and single-key deletes on distinct keys: one revision, several events.
      const chosen = [...new Set([pick(), pick(), pick(), pick()])];
      ops = chosen.map((key, i): ModelOp => (i % 3 === 2 ? { del: [key, undefined] } : { put: [key, `t${Math.floor(this.random() * 1e6)}`] }));
    }
    const previous = String(this.sequence);
    const mine = String(++this.sequence);
    ops.push({ put: [sequenceKey, mine] });
    const success = ops.map((op) =>
      "put" in op
        ? { request: { case: "requestPut" as const, value: { key: bytes(op.put[0]), value: bytes(op.put[1]) } } }
        : { request: { case: "requestDeleteRange" as const, value: { key: bytes(op.del[0]), rangeEnd: op.del[1] === undefined ? new Uint8Array(0) : bytes(op.del[1]) } } },
    );
    const compare = previous === "0"
      ? [{ key: bytes(sequenceKey), result: 0, target: 1, targetUnion: { case: "createRevision" as const, value: 0n } }]
      : [{ key: bytes(sequenceKey), result: 0, target: 3, targetUnion: { case: "value" as const, value: bytes(previous) } }];
    for (let attempt = 0; ; attempt++) {
      if (attempt > 20) throw new Error(`write ${mine}: no outcome after ${attempt} attempts`);
      try {
        const response = await this.kv().txn({ compare: compare as never, success: success as never }, { timeoutMs: 3000 });
        if (response.succeeded) return this.applied(ops, Number(response.header!.revision));
      } catch {
        // Unknown outcome: find out below.
      }
      await this.recover();
      const current = await this.kv().range({ key: bytes(sequenceKey) }, { timeoutMs: 3000 }).catch(() => undefined);
      if (current === undefined) continue;
      const kv = current.kvs[0];
      if (kv !== undefined && new TextDecoder().decode(kv.value) === mine) return this.applied(ops, Number(kv.modRevision));
    }
  }

  private applied(ops: ModelOp[], revision: number): void {
    const expected = this.model.apply(ops);
    if (expected !== revision) throw new Error(`write ${this.sequence} applied at ${revision}, the model says ${expected}`);
  }
}

/** Runs the checker, turning its assertion into a violation line. */
function collect<T>(violations: string[], check: () => T): T | undefined {
  try {
    return check();
  } catch (error) {
    violations.push(String(error instanceof Error ? error.message : error).replace(/\s+/g, " ").slice(0, 400));
    return undefined;
  }
}

export async function runClusterWatch(cluster: TestCluster, seed: number, faults: readonly [WatchFault, WatchFault, WatchFault]): Promise<ClusterWatchResult> {
  const random = seeded(seed);
  const notes: string[] = [];
  /** The member the others agree leads (asking every member that is up, until one is elected). */
  const leaderOf = async (): Promise<ClusterMember> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const statuses = await Promise.all(
        cluster.members.map((member) =>
          member.server === undefined ? undefined : clientsOf(member).maintenance.status({}, { timeoutMs: 1_000 }).catch(() => undefined),
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
  const writer = new GuardedWriter(() => clientsOf(writerMember).kv, model, random, async () => await waitForLeader());
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
    if (error === undefined) throw new Error("the stream to a killed member ended without an error");
    deadStreams.push(old.stream);
    old.member = member;
    old.stream = new WatchStream(clientsOf(member).watch);
    for (const watcher of old.watchers) {
      const resumeAt = lastRevision(watcher) + 1;
      if (resumeAt <= model.compactRevision) throw new Error("compacted past a watcher's resume point");
      const checked = await openWatcher(old.stream, { ...watcher.spec, startRevision: resumeAt }, 30_000);
      watcher.sessions.push({ stream: old.stream, watchId: checked.watchId, createdRevision: checked.createdRevision, start: resumeAt });
    }
  };
  /** SIGKILL, reconnect half the member's streams elsewhere at once, restart it, reconnect the rest to it. */
  const killAndRestart = async (victim: ClusterMember) => {
    await victim.server!.kill();
    victim.server = undefined;
    const streams = memberStreams.filter((s) => s.member === victim);
    const elsewhere = cluster.members.find((m) => m !== victim && m !== writerMember) ?? writerMember;
    await waitForLeader();
    for (const [index, stream] of streams.entries()) if (index % 2 === 0) await reconnect(stream, elsewhere);
    // Writes go on while the member is down and while it restarts.
    let restarted = false;
    const restarting = cluster.start(victim).finally(() => (restarted = true));
    for (let i = 0; i < 10 || !restarted; i++) await writer.write();
    await restarting;
    await waitForLeader();
    for (const [index, stream] of streams.entries()) if (index % 2 === 1) await reconnect(stream, victim);
  };
  const compactBehindEveryone = async () => {
    const watchers = memberStreams.flatMap((s) => s.watchers);
    const target = Math.min(model.revision - 20, ...watchers.map((w) => lastRevision(w)));
    if (target <= model.compactRevision) return;
    // Compacting twice at one revision is refused, so a retry after an unknown outcome may fail: then it is done.
    for (let attempt = 0; ; attempt++) {
      try {
        await kv.compact({ revision: BigInt(target) }, { timeoutMs: 3000 });
        break;
      } catch (error) {
        if (String(error).includes("required revision has been compacted")) break;
        if (attempt > 10) throw error;
        await waitForLeader();
      }
    }
    model.compactRevision = target;
  };
  /** The leader, unless it is the writer's member or was hit already: then a member that was not hit, if any. */
  const hit = new Set<ClusterMember>();
  const victimOf = async (): Promise<ClusterMember> => {
    const current = await leaderOf();
    const fresh = others.filter((m) => !hit.has(m));
    const victim =
      current !== writerMember && !hit.has(current) ? current
      : fresh.length > 0 ? fresh[Math.floor(random() * fresh.length)]!
      : current !== writerMember ? current
      : others[Math.floor(random() * others.length)]!;
    hit.add(victim);
    return victim;
  };

  let ongoing: { heal: () => void; at: number } | undefined;
  const startFault = async (fault: WatchFault, write: number) => {
    const victim = await victimOf();
    notes.push(`${fault} ${victim.name}`);
    if (fault === "kill") {
      await killAndRestart(victim);
    } else if (fault === "pause") {
      victim.server!.process.kill("SIGSTOP");
      ongoing = { heal: () => victim.server?.process.kill("SIGCONT"), at: write + 30 };
    } else {
      const links = cluster.links;
      if (links === undefined) throw new Error("an isolate fault needs a cluster with peer proxies");
      links.isolate(victim.name);
      ongoing = { heal: () => links.heal(), at: write + 30 };
    }
  };

  const violations: string[] = [];
  let progressNotifications = 0;
  let checkMs = 0;
  let all: LogicalWatcher[] = [];
  try {
    await writeHistory(kv, model, 110);
    await addWatchers([-100, -37, 0, 13, 100]);
    const faultAt = [30, 70, 100];
    for (let i = 0; i < 160; i++) {
      await writer.write();
      if (i % 30 === 0) for (const s of memberStreams) s.stream.requestProgress();
      if (i === 15) await compactBehindEveryone();
      // Between faults: a paused member could not create watchers.
      if (i === 62) await addWatchers([-30, 0, 60]);
      if (i === 90) await compactBehindEveryone();
      if (ongoing !== undefined && i >= ongoing.at) {
        ongoing.heal();
        ongoing = undefined;
      }
      const index = faultAt.indexOf(i);
      if (index >= 0) {
        if (ongoing !== undefined) {
          ongoing.heal();
          ongoing = undefined;
        }
        await startFault(faults[index]!, i);
      }
    }
    if (ongoing !== undefined) {
      ongoing.heal();
      ongoing = undefined;
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
    all = memberStreams.flatMap((s) => s.watchers);
    const checkStarted = performance.now();
    for (const [index, watcher] of all.entries()) {
      const label = `seed ${seed} watcher ${index} ${JSON.stringify(watcher.spec)} sessions ${watcher.sessions.map((s) => s.start).join(",")}`;
      const result = collect(violations, () => checkWatcher(model, asChecked(watcher), through, label));
      if (result?.canceledAt !== undefined) violations.push(`${label}: canceled by compaction at ${result.canceledAt}, which stayed behind it`);
    }
    // Bookmarkable, per stream (the dead ones up to their end, too).
    for (const [index, stream] of [...memberStreams.map((s) => s.stream), ...deadStreams].entries()) {
      const sessions = all.flatMap((w) => w.sessions.filter((s) => s.stream === stream).map((s) => ({ w, s })));
      const checked = sessions.map(({ w, s }): CheckedWatcher => ({
        spec: { ...w.spec, startRevision: s.start },
        watchId: s.watchId,
        createdRevision: s.createdRevision,
        streamResponses: stream.responses,
      }));
      progressNotifications += collect(violations, () => checkProgress(model, checked, stream.responses, `seed ${seed} stream ${index}`)) ?? 0;
    }
    checkMs = performance.now() - checkStarted;
  } finally {
    ongoing?.heal();
    await Promise.all([...memberStreams.map((s) => s.stream.close()), ...deadStreams.map((s) => s.close())]);
  }
  const events = [...memberStreams.map((s) => s.stream), ...deadStreams].reduce(
    (sum, stream) => sum + stream.responses.reduce((count, response) => count + response.events.length, 0),
    0,
  );
  return {
    watchers: all.length,
    reconnected: all.filter((w) => w.sessions.length > 1).length,
    progressNotifications,
    writes: model.revision - 1,
    events,
    violations,
    checkMs,
    notes,
  };
}
