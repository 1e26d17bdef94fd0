// The scorecard scenarios of test:long (see ../shared/reliability.md): L1,
// L2, J1, J2 and D1 here, W1 in watch-scenario.ts, D2-D5 in
// disk-scenarios.ts. Each run starts a fresh
// cluster, drives recorded client traffic while one or more faults happen,
// heals, checks, and returns counts; nothing here asserts, so the long runner
// can tabulate and the short tier can assert on the counts.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { Prng } from "../../runtime/sim/prng.ts";
import { checkOperationsVerbose, describeReport, type Operation } from "./porcupine.ts";
import {
  etcdModelAppliedLast, prepareEtcdHistory, registerModel,
  type EtcdRequest, type EtcdResponse, type KeyValue, type RegisterInput, type RegisterOutput,
} from "./models.ts";
import { connect, definiteError, HistoryRecorder, neverSent, RecordingEtcdClient, type Connection } from "./history.ts";
import { Traffic } from "./traffic.ts";
import { chosenFaults, clusterFaults, electionMs, killAllFault, killFault, maintenance, sleep, withCluster, type Fault, type FaultCluster } from "./faults.ts";
import { crashPointFaults } from "./crash-faults.ts";
import { describeIndependent, etcdctlRead, independentCheck } from "./independent.ts";
import { watchScenario } from "./watch-scenario.ts";
import { diskScenarios } from "./disk-scenarios.ts";
import type { RuntimeName } from "../support/runtime.ts";

export interface RunOptions {
  kind: "edgetcd" | "etcd";
  runtime?: RuntimeName;
  /** Scales durations and budgets: 1 for the long runs, smaller for the CI tier. */
  scale: number;
  /** Stop traffic after this many recorded operations (keeps checking tractable). */
  operationsMax: number;
  checkTimeoutMs: number;
  /** Draw only faults with these names (e.g. member-replace, isolate-leader); all by default. */
  faults?: readonly string[];
  /** Never draw faults with these names. */
  skipFaults?: readonly string[];
  log: (line: string) => void;
}

export interface RunResult {
  /** "setup": the cluster never started (an environment problem, not a verdict on the product). */
  verdict: "valid" | "illegal" | "undecided" | "failed" | "setup";
  /** Acknowledged writes missing at the end. */
  lost: number;
  /** undefined for scenarios without watchers. */
  watchViolations: number | undefined;
  checkMs: number;
  operations: number;
  /** What went wrong or what was drawn (fault names), for the log. */
  notes: string[];
}

export interface Scenario {
  id: string;
  title: string;
  run(seed: number, options: RunOptions): Promise<RunResult>;
}

/** Writes a history that failed its check where it can be inspected again. */
function saveHistory(name: string, seed: number, operations: readonly unknown[]): string {
  const path = join(tmpdir(), `edgetcd-${name}-seed-${seed}-${Date.now()}.json`);
  writeFileSync(path, JSON.stringify(operations, (_, value) => (value === Infinity ? "Infinity" : value)));
  return path;
}

// ---------------------------------------------------------------------------
// Etcd-model traffic (L1, L2).

interface TrafficRun {
  stop(): Promise<void>;
}

/** Clients pinned round-robin to members; a client moves to the next member after a failure. */
function startEtcdTraffic(
  cluster: FaultCluster,
  history: HistoryRecorder<EtcdRequest, EtcdResponse>,
  traffic: Traffic,
  clientCount: number,
  operationsMax: number,
): TrafficRun {
  let stopping = false;
  const connections = cluster.members.map((member) => connect(cluster.endpoint(member)));
  const loops = Array.from({ length: clientCount }, async (_, index) => {
    let memberIndex = index % connections.length;
    const client = new RecordingEtcdClient(history, connections[memberIndex] as Connection, { timeoutMs: 2000 });
    while (!stopping && history.operations.length < operationsMax) {
      const { request, nonUnique } = traffic.next(client.clientId);
      if (nonUnique) traffic.nonUniqueInFlight++;
      const response = await client.do(request);
      if (nonUnique) traffic.nonUniqueInFlight--;
      traffic.observe(request, response);
      if (response.type === "unknown") {
        memberIndex = (memberIndex + 1) % connections.length;
        client.reconnect(connections[memberIndex] as Connection);
        await sleep(50);
      }
    }
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

/** Notes which members caught up by a snapshot from the leader (so a run shows the snapshot path ran). */
function noteSnapshotInstalls(cluster: FaultCluster, notes: string[]): void {
  const installed = cluster.members.filter((member) => member.server?.output().includes("applied snapshot from the leader"));
  if (installed.length > 0) notes.push(`snapshot installed on ${installed.map((member) => member.name).join(",")}`);
}

/** A final write must succeed (retried on every member for a while); it is part of the history. */
async function finalWrite(cluster: FaultCluster, history: HistoryRecorder<EtcdRequest, EtcdResponse>, deadlineMs: number): Promise<number | undefined> {
  const deadline = Date.now() + deadlineMs;
  const client = new RecordingEtcdClient(history, connect(cluster.endpoint(cluster.members[0]!)), { timeoutMs: 3000 });
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const member = cluster.members[attempt % cluster.members.length]!;
    client.reconnect(connect(cluster.endpoint(member)));
    const response = await client.do({ type: "put", key: "final", value: `final-${attempt}` });
    if (response.type === "put") return response.revision;
    await sleep(200);
  }
  return undefined;
}

/** Every member reaches `revision` and reports the same HashKV at it (members are asked in parallel, so one stuck member does not use up the others' time). */
async function hashesEqual(cluster: FaultCluster, revision: number, deadlineMs: number): Promise<{ equal: boolean; hashes: string[] }> {
  const deadline = Date.now() + deadlineMs;
  const answers = await Promise.all(
    cluster.members.map(async (member) => {
      const { kv } = connect(cluster.endpoint(member));
      let reached = "no answer";
      while (Date.now() < deadline) {
        try {
          const range = await kv.range({ key: new TextEncoder().encode("final"), serializable: true }, { timeoutMs: 1000 });
          reached = `at ${range.header?.revision}`;
          if (Number(range.header?.revision) >= revision) {
            const { hash } = await maintenance(cluster.endpoint(member)).hashKV({ revision: BigInt(revision) }, { timeoutMs: 3000 });
            return { name: member.name, hash: String(hash), reached };
          }
        } catch {
          // not caught up or not answering yet
        }
        await sleep(100);
      }
      return { name: member.name, hash: undefined, reached };
    }),
  );
  return {
    equal: answers.every((answer) => answer.hash !== undefined) && new Set(answers.map((answer) => answer.hash)).size === 1,
    hashes: answers.map((answer) => `${answer.name}:${answer.hash ?? `unavailable (${answer.reached})`}`),
  };
}

/** Reads every key once, linearizably, from any member that answers. */
async function finalKeys(cluster: FaultCluster, deadlineMs: number): Promise<Map<string, KeyValue> | undefined> {
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const member = cluster.members[attempt % cluster.members.length]!;
    try {
      const response = await connect(cluster.endpoint(member)).kv.range(
        { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) },
        { timeoutMs: 2000 },
      );
      const decoder = new TextDecoder();
      return new Map(response.kvs.map((kv) => [decoder.decode(kv.key), { key: decoder.decode(kv.key), value: decoder.decode(kv.value), createRevision: Number(kv.createRevision), modRevision: Number(kv.modRevision), version: Number(kv.version), lease: Number(kv.lease) }]));
    } catch {
      await sleep(200);
    }
  }
  return undefined;
}

/**
 * Acknowledged writes missing at the end: a key whose final mod revision is
 * below its last acknowledged write, or that is gone while nothing that could
 * delete it (a delete of it, any lease revoke) was issued after that write.
 */
export function lostEtcdWrites(history: readonly Operation<EtcdRequest, EtcdResponse>[], final: ReadonlyMap<string, Pick<KeyValue, "modRevision">>): number {
  const lastAcknowledged = new Map<string, { revision: number; call: number }>();
  const acknowledge = (key: string, revision: number, call: number) => {
    const seen = lastAcknowledged.get(key);
    if (seen === undefined || seen.revision < revision) lastAcknowledged.set(key, { revision, call });
  };
  for (const { input, output, call } of history) {
    if (input.type === "put" && output.type === "put") acknowledge(input.key, output.revision, call);
    if (input.type === "txn" && output.type === "txn") {
      for (const op of output.succeeded ? input.success : input.failure) if (op.type === "put") acknowledge(op.key, output.revision, call);
    }
  }
  let lost = 0;
  for (const [key, { revision, call }] of lastAcknowledged) {
    const kv = final.get(key);
    if (kv !== undefined) {
      if (kv.modRevision < revision) lost++;
      continue;
    }
    const couldDelete = history.some(
      (op) => op.return > call && ((op.input.type === "delete" && op.input.key === key) || op.input.type === "leaseRevoke"),
    );
    if (!couldDelete) lost++;
  }
  return lost;
}

function linearizabilityScenario(id: string, title: string, size: number): Scenario {
  return {
    id,
    title,
    async run(seed, options) {
      const random = new Prng(seed);
      const phase = phaseLogger(id, seed, options);
      return await withCluster(size, options, async (cluster) => {
        phase("cluster up");
        const notes: string[] = [];
        const history = new HistoryRecorder<EtcdRequest, EtcdResponse>();
        const traffic = new Traffic(random.fork());
        const run = startEtcdTraffic(cluster, history, traffic, size === 1 ? 4 : 6, options.operationsMax);
        await sleep(1000 * options.scale);
        const faults: Fault[] = size === 1 ? chosenFaults([killFault("random", electionMs), ...crashPointFaults()], options) : clusterFaults(size, options);
        const fault = random.pick(faults);
        notes.push(fault.name);
        const before = history.operations.length;
        phase(`inject ${fault.name}`);
        await fault.inject(cluster, random);
        phase("heal");
        await fault.heal(cluster);
        await sleep(1500 * options.scale);
        phase("stopping traffic");
        await run.stop();
        phase(`traffic stopped, ${history.operations.length} operations`);
        if (history.operations.length - before < 10) notes.push(`only ${history.operations.length - before} operations after the fault`);

        const finalRevision = await finalWrite(cluster, history, 20_000);
        phase(`final write at ${finalRevision}`);
        if (finalRevision === undefined) return failed(notes, "the final write did not succeed", history.operations.length);
        const hashes = await hashesEqual(cluster, finalRevision, 20_000);
        if (!hashes.equal) notes.push(`HashKV differs at ${finalRevision}: ${hashes.hashes.join(" ")}`);
        phase(`hashes ${hashes.hashes.join(" ")}`);
        const final = await finalKeys(cluster, 10_000);
        if (final === undefined) notes.push("the final read did not succeed");
        noteSnapshotInstalls(cluster, notes);
        // The same end checks through etcdctl: equal HashKV, and the acknowledged writes it sees.
        const independent = await independentCheck(cluster);
        const independentProblem = describeIndependent(independent);
        if (independentProblem !== undefined) notes.push(independentProblem);
        const lostSeenByUs = final === undefined ? 0 : lostEtcdWrites(history.operations, final);
        const lostSeenByEtcdctl = independent.keys === undefined ? 0 : lostEtcdWrites(history.operations, independent.keys);
        if (lostSeenByEtcdctl !== lostSeenByUs) notes.push(`lost writes: ${lostSeenByUs} seen by our client, ${lostSeenByEtcdctl} by etcdctl`);
        const lost = Math.max(lostSeenByUs, lostSeenByEtcdctl);

        const prepared = prepareEtcdHistory(history.operations);
        const report = checkOperationsVerbose(etcdModelAppliedLast, prepared, { timeoutMs: options.checkTimeoutMs });
        if (report.result === "illegal") options.log(describeReport(etcdModelAppliedLast, report, 12));
        const verdict =
          report.result === "illegal" ? "illegal"
          : lost > 0 ? "illegal"
          : !hashes.equal || final === undefined || independentProblem !== undefined ? "failed"
          : report.result === "unknown" ? "undecided"
          : "valid";
        if (verdict === "illegal" || verdict === "failed") {
          notes.push(`saved ${saveHistory(id, seed, history.operations)}`);
          notes.push(...saveMemberLogs(cluster, id, seed));
        }
        return { verdict, lost, watchViolations: undefined, checkMs: report.elapsedMs, operations: prepared.length, notes };
      });
    },
  };
}

/** Each member's log (of its current process) in tmpdir, to find what served an offending answer or stalled; returns notes naming the files. */
function saveMemberLogs(cluster: FaultCluster, id: string, seed: number): string[] {
  return cluster.members.map((member) => {
    const path = join(tmpdir(), `edgetcd-${id}-seed-${seed}-${member.name}-${Date.now()}.log`);
    writeFileSync(path, member.server?.output() ?? "(not running)");
    return `log ${path}`;
  });
}

/** Timestamped progress lines, shown when EDGETCD_RELIABILITY_VERBOSE is set. */
function phaseLogger(id: string, seed: number, options: RunOptions): (what: string) => void {
  const started = performance.now();
  const verbose = process.env.EDGETCD_RELIABILITY_VERBOSE !== undefined;
  return (what) => {
    if (verbose) options.log(`  ${id} seed ${seed} +${((performance.now() - started) / 1000).toFixed(1)} s: ${what}`);
  };
}

function failed(notes: string[], why: string, operations: number): RunResult {
  return { verdict: "failed", lost: 0, watchViolations: undefined, checkMs: 0, operations, notes: [...notes, why] };
}

// ---------------------------------------------------------------------------
// J1: per-key versioned registers under faults every few seconds.

/** J1's registers; etcdctl reads them all as the range [r0, r5). */
const registerKeys = ["r0", "r1", "r2", "r3", "r4"];

/**
 * etcdctl (another client: Go clientv3) reads every register on `endpoint`;
 * its answers join the history the checker judges, one read per key over the
 * call's interval. False when etcdctl failed (nothing is recorded).
 */
async function recordEtcdctlReads(history: HistoryRecorder<RegisterInput, RegisterOutput>, endpoint: string): Promise<boolean> {
  const read = await etcdctlRead(endpoint, "r0", "r5", () => history.now());
  if (read === undefined) return false;
  for (const key of registerKeys) {
    const kv = read.keys.get(key);
    history.record({
      clientId: history.newClientId(),
      input: { type: "read", key },
      output: kv === undefined ? { type: "read", value: null, version: 0, modRevision: 0 } : { type: "read", ...kv },
      call: read.call,
      return: read.return,
    });
  }
  return true;
}

class RegisterClient {
  clientId: number;
  constructor(readonly history: HistoryRecorder<RegisterInput, RegisterOutput>, public connection: Connection) {
    this.clientId = history.newClientId();
  }

  async do(input: RegisterInput): Promise<RegisterOutput> {
    const encoder = new TextEncoder();
    const call = this.history.now();
    const key = encoder.encode(input.key);
    try {
      let output: RegisterOutput;
      if (input.type === "read") {
        const response = await this.connection.kv.range({ key }, { timeoutMs: 2000 });
        const kv = response.kvs[0];
        output = kv === undefined
          ? { type: "read", value: null, version: 0, modRevision: 0 }
          : { type: "read", value: new TextDecoder().decode(kv.value), version: Number(kv.version), modRevision: Number(kv.modRevision) };
      } else if (input.type === "write") {
        const response = await this.connection.kv.put({ key, value: encoder.encode(input.value) }, { timeoutMs: 2000 });
        output = { type: "write", revision: Number(response.header?.revision) };
      } else {
        const response = await this.connection.kv.txn(
          {
            compare: [{ key, result: 0, target: 3, targetUnion: { case: "value", value: encoder.encode(input.expected) } }],
            success: [{ request: { case: "requestPut", value: { key, value: encoder.encode(input.value) } } }],
          },
          { timeoutMs: 2000 },
        );
        output = { type: "cas", succeeded: response.succeeded, revision: Number(response.header?.revision) };
      }
      this.history.record({ clientId: this.clientId, input, call, output, return: this.history.now() });
      return output;
    } catch (error) {
      if (input.type !== "read" && !neverSent(error) && definiteError(error) === undefined) {
        this.history.record({ clientId: this.clientId, input, call, output: { type: "unknown" }, return: Infinity });
        this.clientId = this.history.newClientId();
      }
      return { type: "unknown" };
    }
  }
}

const registerScenario: Scenario = {
  id: "J1",
  title: "per-key registers, 3 nodes, a fault every ~5 s, then heal and final reads",
  async run(seed, options) {
    const random = new Prng(seed);
    return await withCluster(3, options, async (cluster) => {
      const notes: string[] = [];
      const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
      const connections = cluster.members.map((member) => connect(cluster.endpoint(member)));
      let stopping = false;
      let sequence = 0;
      const loops = Array.from({ length: 6 }, async (_, index) => {
        let memberIndex = index % connections.length;
        const client = new RegisterClient(history, connections[memberIndex] as Connection);
        const lastRead = new Map<string, string>();
        const draw = random.fork();
        while (!stopping && history.operations.length < options.operationsMax) {
          const key = draw.pick(registerKeys);
          const roll = draw.int(10);
          const value = `w${client.clientId}-${++sequence}`;
          const expected = lastRead.get(key);
          const input: RegisterInput =
            roll < 5 ? { type: "read", key }
            : roll < 8 || expected === undefined ? { type: "write", key, value }
            : { type: "cas", key, expected, value };
          const output = await client.do(input);
          if (output.type === "read" && output.value !== null) lastRead.set(key, output.value);
          if (output.type === "unknown") {
            memberIndex = (memberIndex + 1) % connections.length;
            client.connection = connections[memberIndex] as Connection;
            await sleep(50);
          }
        }
      });
      const faults = clusterFaults(3, options);
      const rounds = Math.max(1, Math.round(2 * options.scale));
      let etcdctlReads = 0;
      for (let round = 0; round < rounds; round++) {
        await sleep(random.between(1500, 3500) * options.scale);
        const fault = random.pick(faults);
        notes.push(fault.name);
        await fault.inject(cluster, random);
        await fault.heal(cluster);
        if (await recordEtcdctlReads(history, cluster.endpoint(cluster.members[round % cluster.members.length]!))) etcdctlReads++;
      }
      notes.push(`etcdctl read the registers after ${etcdctlReads} of ${rounds} faults`);
      await sleep(1500 * options.scale);
      stopping = true;
      await Promise.all(loops);
      // Final reads: every key, from a fresh client, retried until answered.
      const reader = new RegisterClient(history, connections[0] as Connection);
      const readDeadline = Date.now() + 30_000;
      let unread = 0;
      for (const key of registerKeys) {
        let read = false;
        for (let attempt = 0; !read && Date.now() < readDeadline; attempt++) {
          reader.connection = connections[attempt % connections.length] as Connection;
          read = (await reader.do({ type: "read", key })).type === "read";
          if (!read) await sleep(200);
        }
        if (!read) unread++;
      }
      if (unread > 0) notes.push(`${unread} final reads did not succeed within 30 s`);
      noteSnapshotInstalls(cluster, notes);
      // etcdctl sees, on every member, equal hashes and the registers' final values.
      const finalValues = new Map<string, string | null>();
      for (const op of history.operations) {
        if (op.clientId === reader.clientId && op.output.type === "read") finalValues.set(op.input.key, op.output.value);
      }
      const independent = await independentCheck(cluster);
      let independentProblem = describeIndependent(independent);
      for (const [key, value] of finalValues) {
        const seen = independent.keys?.get(key)?.value ?? null;
        if (independent.keys !== undefined && seen !== value) independentProblem ??= `etcdctl reads ${key}=${seen}, the final read ${value}`;
      }
      if (independentProblem !== undefined) notes.push(independentProblem);
      const report = checkOperationsVerbose(registerModel, history.operations, { timeoutMs: options.checkTimeoutMs });
      if (report.result === "illegal") options.log(describeReport(registerModel, report, 12));
      const verdict =
        report.result === "illegal" ? "illegal"
        : unread > 0 || independentProblem !== undefined ? "failed"
        : report.result === "unknown" ? "undecided"
        : "valid";
      if (verdict === "illegal" || verdict === "failed") {
        notes.push(`saved ${saveHistory("J1", seed, history.operations)}`);
        notes.push(...saveMemberLogs(cluster, "J1", seed));
      }
      return { verdict, lost: 0, watchViolations: undefined, checkMs: report.elapsedMs, operations: history.operations.length, notes };
    });
  },
};

// ---------------------------------------------------------------------------
// J2: set: every acknowledged add is present, after killing every node.

const setScenario: Scenario = {
  id: "J2",
  title: "set: acknowledged ⇒ present after a kill of every node and restart",
  async run(seed, options) {
    const random = new Prng(seed);
    return await withCluster(3, options, async (cluster) => {
      const notes: string[] = [];
      const encoder = new TextEncoder();
      const decoder = new TextDecoder();
      const acknowledged = new Set<string>();
      const attempted = new Set<string>();
      const connections = cluster.members.map((member) => connect(cluster.endpoint(member)));
      let stopping = false;
      let adds = 0;
      const loops = Array.from({ length: 6 }, async (_, index) => {
        let memberIndex = index % connections.length;
        for (let sequence = 0; !stopping && adds < options.operationsMax; sequence++) {
          const element = `set/${index}-${sequence}`;
          attempted.add(element);
          adds++;
          try {
            await (connections[memberIndex] as Connection).kv.put({ key: encoder.encode(element), value: encoder.encode(element) }, { timeoutMs: 2000 });
            acknowledged.add(element);
          } catch (error) {
            // A refused connection (the member is down) sent nothing: it does not use up the budget.
            if (neverSent(error)) {
              adds--;
              attempted.delete(element);
            }
            memberIndex = (memberIndex + 1) % connections.length;
            await sleep(50);
          }
        }
      });
      await sleep(random.between(800, 2000) * options.scale);
      // The fault comes once adds are being acknowledged, or the run could not tell anything.
      const warmDeadline = Date.now() + 20_000;
      while (acknowledged.size < 10 && Date.now() < warmDeadline && adds < options.operationsMax) await sleep(50);
      const fault = killAllFault(electionMs);
      notes.push(fault.name);
      await fault.inject(cluster, random);
      await fault.heal(cluster);
      await sleep(1500 * options.scale);
      stopping = true;
      await Promise.all(loops);
      const started = performance.now();
      let present: Set<string> | undefined;
      const readDeadline = Date.now() + 30_000;
      for (let attempt = 0; present === undefined && Date.now() < readDeadline; attempt++) {
        try {
          const response = await (connections[attempt % connections.length] as Connection).kv.range(
            { key: encoder.encode("set/"), rangeEnd: encoder.encode("set0") },
            { timeoutMs: 3000 },
          );
          present = new Set(response.kvs.map((kv) => decoder.decode(kv.key)));
        } catch {
          await sleep(200);
        }
      }
      if (present === undefined) return failed(notes, "the final read did not succeed", attempted.size);
      // etcdctl, an independent client, must see every acknowledged element too, and equal hashes.
      const independent = await independentCheck(cluster);
      const independentProblem = describeIndependent(independent);
      if (independentProblem !== undefined) notes.push(independentProblem);
      const missingForEtcdctl = independent.keys === undefined ? 0 : [...acknowledged].filter((element) => !independent.keys?.has(element)).length;
      const lost = Math.max(missingForEtcdctl, [...acknowledged].filter((element) => !present.has(element)).length);
      const unexpected = [...present].filter((element) => !attempted.has(element)).length;
      if (unexpected > 0) notes.push(`${unexpected} elements present that nobody added`);
      notes.push(`${acknowledged.size} acknowledged of ${attempted.size}`);
      return {
        verdict: unexpected > 0 || lost > 0 ? "illegal" : independentProblem !== undefined ? "failed" : acknowledged.size === 0 ? "undecided" : "valid",
        lost,
        watchViolations: undefined,
        checkMs: performance.now() - started,
        operations: attempted.size,
        notes,
      };
    });
  },
};

// ---------------------------------------------------------------------------
// D1: kill -9 at random points during full-rate writes, 1 and 3 nodes.

async function durabilityRound(
  size: number,
  random: Prng,
  options: RunOptions,
  notes: string[],
): Promise<{ lost: number; wentBack: boolean; acknowledged: number; checkMs: number; unanswered: number }> {
  return await withCluster(size, options, async (cluster) => {
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    const acknowledged = new Map<string, number>();
    let highestRevision = 0;
    let lost = 0;
    let wentBack = false;
    let checkMs = 0;
    let unanswered = 0;
    const connections = cluster.members.map((member) => connect(cluster.endpoint(member)));
    const kills = Math.max(1, Math.round(3 * options.scale));
    for (let kill = 0; kill < kills; kill++) {
      let stopping = false;
      const writers = Array.from({ length: 8 }, async (_, writer) => {
        let memberIndex = writer % connections.length;
        for (let sequence = 0; !stopping; sequence++) {
          const key = `d/${kill}/${writer}/${sequence}`;
          try {
            const response = await (connections[memberIndex] as Connection).kv.put({ key: encoder.encode(key), value: encoder.encode(key) }, { timeoutMs: 2000 });
            const revision = Number(response.header?.revision);
            acknowledged.set(key, revision);
            highestRevision = Math.max(highestRevision, revision);
          } catch {
            memberIndex = (memberIndex + 1) % connections.length;
            await sleep(20);
          }
        }
      });
      await sleep(random.between(300, 1500));
      const victims = size === 1 ? cluster.members : [random.pick(cluster.members)];
      await Promise.all(victims.map((member) => cluster.kill(member)));
      await sleep(size === 1 ? 0 : random.between(0, electionMs));
      stopping = size === 1; // on 3 nodes the writers keep going through the survivors
      await Promise.all(victims.map((member) => cluster.restart(member)));
      stopping = true;
      await Promise.all(writers);
      // Every acknowledged key is present on every member, and no revision went back.
      const checkStarted = performance.now();
      for (const [index, member] of cluster.members.entries()) {
        let found: Map<string, number> | undefined;
        let revision = 0;
        const deadline = Date.now() + 30_000;
        while (found === undefined && Date.now() < deadline) {
          try {
            const response = await (connections[index] as Connection).kv.range(
              { key: encoder.encode("d/"), rangeEnd: encoder.encode("d0") },
              { timeoutMs: 3000 },
            );
            found = new Map(response.kvs.map((kv) => [decoder.decode(kv.key), Number(kv.modRevision)]));
            revision = Number(response.header?.revision);
          } catch {
            await sleep(200);
          }
        }
        if (found === undefined) {
          unanswered++;
          notes.push(`${size} node(s): ${member.name} did not answer a linearizable range within 30 s after restart ${kill}`);
          continue;
        }
        const missing = [...acknowledged].filter(([key, modRevision]) => found.get(key) !== modRevision);
        lost = Math.max(lost, missing.length);
        if (missing.length > 0) notes.push(`${size} node(s): ${member.name} misses ${missing.length} acknowledged keys after restart ${kill}, e.g. ${missing[0]?.[0]}`);
        if (revision < highestRevision) {
          wentBack = true;
          notes.push(`${size} node(s): ${member.name} revision ${revision} < acknowledged ${highestRevision}`);
        }
      }
      checkMs += performance.now() - checkStarted;
    }
    return { lost, wentBack, acknowledged: acknowledged.size, checkMs, unanswered };
  });
}

const durabilityScenario: Scenario = {
  id: "D1",
  title: "kill -9 at random points during full-rate writes (1 and 3 nodes)",
  async run(seed, options) {
    const random = new Prng(seed);
    const notes: string[] = [];
    const single = await durabilityRound(1, random, options, notes);
    const three = await durabilityRound(3, random, options, notes);
    notes.push(`${single.acknowledged} + ${three.acknowledged} acknowledged`);
    const lost = single.lost + three.lost;
    const wentBack = single.wentBack || three.wentBack;
    return {
      verdict:
        lost > 0 || wentBack ? "illegal"
        : single.unanswered + three.unanswered > 0 ? "failed"
        : single.acknowledged === 0 || three.acknowledged === 0 ? "undecided"
        : "valid",
      lost,
      watchViolations: undefined,
      checkMs: single.checkMs + three.checkMs,
      operations: single.acknowledged + three.acknowledged,
      notes,
    };
  },
};

export const scenarios: Scenario[] = [
  linearizabilityScenario("L1", "linearizability, 3 nodes, robustness traffic, one process fault per run", 3),
  linearizabilityScenario("L2", "linearizability, 1 node, kill -9 and restart", 1),
  registerScenario,
  setScenario,
  watchScenario,
  durabilityScenario,
  ...diskScenarios,
];
