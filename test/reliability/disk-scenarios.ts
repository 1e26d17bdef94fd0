// D2–D5 of the scorecard, as seeded scenarios for test:long (each seed draws
// other damage: offsets, records, pages, counts, kill times):
// - D2 lost unsynced writes: a real single node on a disk that loses what was
//   not fdatasynced (EDGETCD_TEST_DISK=lose-unsynced) killed -9 again and
//   again; and a 3-member cluster where one member has such a disk and is
//   killed with none, one or both of the others (whose disks keep their
//   data, as kill -9 does). Nothing acknowledged may be lost.
// - D3 torn WAL tail: a WAL of random records cut inside its last records,
//   zeroed from a point on, or followed by garbage or zeros; it must open to
//   exactly its whole records, keep the damaged copy, and take appends. Then
//   once per run on a real node: its WAL damaged past what its backend had
//   applied (cut, a zeroed sector, garbage or zeros appended); it must start
//   with exactly the keys of the whole records and keep the damaged copy.
// - D4 damage that is not a torn tail: a byte flipped in a WAL record that has
//   records after it, a damaged b-tree page of the SQLite backend, a damaged
//   received snapshot; each must be refused, never silently truncated.
// - D5 fdatasync fails: the server stops before acknowledging anything that
//   was not synced, and after a restart on a good disk has every acknowledged
//   write and keeps going.
// D4 and D5 run in this process on real files (the WAL, backend and server
// code of edgetcd itself); D2 and part of D3 run real processes. All are
// edgetcd-only.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Prng } from "../../runtime/sim/prng.ts";
import { withFileDatasync } from "../../runtime/faults/wrap-file-system.ts";
import { PutRequestSchema, RangeRequestSchema } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import type { FileSystem, Logger, Runtime } from "../../src/ports.ts";
import { parseFlags } from "../../src/cli/flags.ts";
import { EntryType, type Entry } from "../../src/raft/types.ts";
import { serverConfigFromFlags } from "../../src/cli/server-config.ts";
import { startServer } from "../../src/server/bootstrap.ts";
import { SnapshotFiles } from "../../src/server/snapshot-files.ts";
import { Backend, BackendCorruptError } from "../../src/storage/backend.ts";
import { decodeRecord, RecordType } from "../../src/storage/wal/record.ts";
import { Wal, WalCorruptError } from "../../src/storage/wal/wal.ts";
import { testRuntime } from "../support/runtime.ts";
import { startEdgetcd, tempDir, type RunningServer } from "../support/processes.ts";
import { CrashChain } from "./crash-run.ts";
import { electionMs, sleep, withCluster } from "./faults.ts";
import { connect, type Connection } from "./history.ts";
import { independentCheck, describeIndependent } from "./independent.ts";
import type { RunOptions, RunResult, Scenario } from "./scenarios.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Damage helpers, shared with disk-faults.test.ts and wal.test.ts.

/** Overwrites `length` bytes at `offset` with their complement. */
export function flipBytes(path: string, offset: number, length: number): void {
  const bytes = readFileSync(path);
  for (let i = offset; i < Math.min(offset + length, bytes.length); i++) bytes[i] = (bytes[i] as number) ^ 0xff;
  writeFileSync(path, bytes);
}

/** A backend file with `count` committed keys, closed (SQLite's log checkpointed into the file). */
export function backendWithKeys(runtime: Runtime, path: string, count: number): void {
  const backend = Backend.open(runtime.sqlite, path);
  for (let i = 0; i < count; i++) backend.putKv(i + 2, 0, encoder.encode(`key-${i}`), new Uint8Array(300).fill(i % 251), i + 2, 1, 0n, false);
  backend.setConsistentIndex(count, 1);
  backend.close();
  // Everything into the main file and SQLite's log emptied (bun:sqlite does not checkpoint on close).
  const db = runtime.sqlite.open(path);
  db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get();
  db.close();
}

export const pageBytes = 4096;

/** Damages the b-tree page header of each page in `pages` (structure SQLite's quick_check reads). */
export function damagePages(path: string, pages: readonly number[]): void {
  for (const page of pages) flipBytes(path, page * pageBytes, 8);
}

/** How many pages a database file has. */
export function pageCount(path: string): number {
  return Math.floor(statSync(path).size / pageBytes);
}

/** End offsets of the records in a WAL segment, and whether each holds an entry. */
export function recordEnds(bytes: Uint8Array): Array<[number, boolean]> {
  const ends: Array<[number, boolean]> = [];
  let offset = 0;
  let crc = 0;
  for (;;) {
    const result = decodeRecord(bytes, offset, crc);
    if (result.kind !== "record") return ends;
    ends.push([result.record.end, result.record.type === RecordType.Entry]);
    ({ crc, end: offset } = result.record);
  }
}

/** A FileSystem whose files' datasync rejects (EIO) while `failing()` says so. */
export function failingSyncFs(inner: FileSystem, failing: () => boolean): FileSystem {
  const files = withFileDatasync(inner, (_path, file) => (failing() ? Promise.reject(new Error("EIO: fdatasync failed (injected)")) : file.datasync()));
  return {
    ...files,
    syncDir: (path) => (failing() ? Promise.reject(new Error("EIO: fsync of a directory failed (injected)")) : inner.syncDir(path)),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

// ---------------------------------------------------------------------------
// Scenario plumbing.

function edgetcdOnly(id: string, options: RunOptions): RunResult | undefined {
  if (options.kind === "edgetcd") return undefined;
  return { verdict: "setup", lost: 0, watchViolations: undefined, checkMs: 0, operations: 0, notes: [`${id} damages edgetcd's own files: edgetcd only`] };
}

/** A verdict from a list of broken guarantees (illegal) and of checks that could not be made (failed). */
function result(broken: string[], unfinished: string[], fields: { lost?: number; checkMs: number; operations: number; notes: string[] }): RunResult {
  return {
    verdict: broken.length > 0 ? "illegal" : unfinished.length > 0 ? "failed" : fields.operations === 0 ? "undecided" : "valid",
    lost: fields.lost ?? 0,
    watchViolations: undefined,
    checkMs: fields.checkMs,
    operations: fields.operations,
    notes: [...fields.notes, ...broken, ...unfinished],
  };
}

function scratchDir(name: string): string {
  const dir = join(tempDir(`edgetcd-${name}`), "d");
  mkdirSync(dir, { recursive: true });
  return dir;
}

// ---------------------------------------------------------------------------
// D2: lost unsynced writes.

async function d2Single(random: Prng, options: RunOptions, notes: string[]): Promise<{ broken: string[]; unfinished: string[]; lost: number; acknowledged: number }> {
  const killAfterMs = random.between(300, 2000);
  const chain = await CrashChain.create({ runtime: options.runtime, envAlways: { EDGETCD_TEST_DISK: "lose-unsynced" }, killAfterMs });
  const kills = Math.max(1, Math.round(3 * options.scale));
  let started = true;
  for (let i = 0; i < kills && started; i++) started = await chain.step({ point: undefined, hit: 0 });
  const finalWrite = started && (await chain.finish());
  const acknowledged = chain.steps.reduce((sum, step) => sum + step.acknowledged, 0);
  notes.push(`1 node: ${kills} kills ${killAfterMs} ms into the writes, ${acknowledged} acknowledged`);
  const broken = [
    ...chain.check.lost.slice(0, 3).map((line) => `1 node lost: ${line}`),
    ...(chain.check.wentBack === undefined ? [] : [`1 node: ${chain.check.wentBack}`]),
  ];
  const unfinished = [
    ...(chain.check.restartError === undefined ? [] : [`1 node: restart failed: ${chain.check.restartError.split("\n")[0]}`]),
    ...(finalWrite || chain.check.restartError !== undefined ? [] : ["1 node: the final write failed"]),
  ];
  return { broken, unfinished, lost: chain.check.lost.length, acknowledged };
}

async function d2Cluster(random: Prng, options: RunOptions, notes: string[]): Promise<{ broken: string[]; unfinished: string[]; lost: number; acknowledged: number; checkMs: number }> {
  return await withCluster(3, options, async (cluster) => {
    let checkMs = 0;
    const lossy = random.pick(cluster.members);
    const healthy = cluster.members.filter((member) => member !== lossy);
    // From its next start on, the member's disk drops what was not synced when it is killed.
    lossy.env = { ...lossy.env, EDGETCD_TEST_DISK: "lose-unsynced" };
    await cluster.kill(lossy);
    await cluster.restart(lossy);
    const acknowledged = new Map<string, number>();
    const connections = cluster.members.map((member) => connect(cluster.endpoint(member)));
    const rounds = Math.max(1, Math.round(3 * options.scale));
    for (let round = 0; round < rounds; round++) {
      let stopping = false;
      const writers = Array.from({ length: 6 }, async (_, writer) => {
        let index = writer % connections.length;
        for (let sequence = 0; !stopping; sequence++) {
          const key = `d2/${round}/${writer}/${sequence}`;
          try {
            const response = await (connections[index] as Connection).kv.put({ key: encoder.encode(key), value: encoder.encode(key) }, { timeoutMs: 2000 });
            acknowledged.set(key, Number(response.header?.revision));
          } catch {
            index = (index + 1) % connections.length;
            await sleep(20);
          }
        }
      });
      await sleep(random.between(300, 1500));
      // The lossy member, with none, one or both of the others: a quorum of disks always keeps its data.
      const others = random.int(3);
      const victims = [lossy, ...healthy.slice(0, others)];
      notes.push(`kill ${victims.map((member) => member.name).join("+")}`);
      await Promise.all(victims.map((member) => cluster.kill(member)));
      await sleep(random.between(0, electionMs));
      await Promise.all(victims.map((member) => cluster.restart(member)));
      stopping = true;
      await Promise.all(writers);
    }
    notes.push(`3 nodes: lossy disk on ${lossy.name}, ${acknowledged.size} acknowledged`);
    const checkStarted = performance.now();
    const check = await independentCheck(cluster);
    checkMs += performance.now() - checkStarted;
    const problem = describeIndependent(check);
    const missing = check.keys === undefined ? [] : [...acknowledged].filter(([key, revision]) => check.keys?.get(key)?.modRevision !== revision);
    return {
      broken: missing.length > 0 ? [`3 nodes lost ${missing.length} acknowledged writes, e.g. ${missing[0]?.[0]}`] : [],
      unfinished: problem === undefined ? [] : [`3 nodes: ${problem}`],
      lost: missing.length,
      acknowledged: acknowledged.size,
      checkMs,
    };
  });
}

const lostUnsyncedScenario: Scenario = {
  id: "D2",
  title: "lost unsynced writes (a disk that drops what was not fdatasynced), 1 node and 3 nodes",
  async run(seed, options) {
    const skip = edgetcdOnly("D2", options);
    if (skip !== undefined) return skip;
    const random = new Prng(seed);
    const notes: string[] = [];
    const single = await d2Single(random, options, notes);
    const three = await d2Cluster(random, options, notes);
    return result([...single.broken, ...three.broken], [...single.unfinished, ...three.unfinished], {
      lost: single.lost + three.lost,
      checkMs: three.checkMs,
      operations: single.acknowledged + three.acknowledged,
      notes,
    });
  },
};

// ---------------------------------------------------------------------------
// D3: torn WAL tails.

const walMetadata = encoder.encode("d3-member");

/** A WAL of `count` entries of random sizes, saved in random batches; returns the entries' texts. */
async function writeRandomWal(fs: FileSystem, dir: string, random: Prng, count: number): Promise<string[]> {
  const wal = await Wal.create(fs, dir, walMetadata);
  const texts: string[] = [];
  let index = 0;
  while (index < count) {
    const batch: Entry[] = [];
    for (let size = 1 + random.int(4); size > 0 && index < count; size--) {
      index++;
      const text = `e${index}-${"x".repeat(random.int(random.chance(0.2) ? 3000 : 200))}`;
      texts.push(text);
      batch.push({ index, term: 1, type: EntryType.Normal, data: encoder.encode(text) });
    }
    await wal.save({ term: 1, vote: 1, commit: index }, batch, { sync: true });
  }
  await wal.close();
  return texts;
}

/**
 * One torn tail on a real node: the WAL a real edgetcd process wrote, damaged
 * only past the point its backend had applied (as after a crash mid-write,
 * the backend is restored to a copy taken at that point), then a real start.
 * It must start, hold exactly the keys of the whole records, keep the damaged
 * copy, and keep a write made after the repair across one more restart.
 */
async function tornTailOfARealNode(random: Prng, options: RunOptions): Promise<{ broken: string[]; unfinished: string[]; note: string; writes: number }> {
  const root = tempDir("edgetcd-d3-node");
  const dataDir = join(root, "data");
  const walDir = join(dataDir, "member/wal");
  const snapDir = join(dataDir, "member/snap");
  const written = new Map<string, string>();
  const broken: string[] = [];
  const unfinished: string[] = [];
  let note = "real node: not started";
  let server: RunningServer | undefined;
  const start = async () => (server = await startEdgetcd({ dataDir, runtime: options.runtime, readyTimeoutMs: 60_000 }));
  const stop = async () => {
    await server?.stop();
    server = undefined;
  };
  const put = async (key: string, value: string) => {
    await connect((server as RunningServer).endpoint).kv.put({ key: encoder.encode(key), value: encoder.encode(value) }, { timeoutMs: 5000 });
    written.set(key, value);
  };
  const keysHeld = async () => {
    const range = await connect((server as RunningServer).endpoint).kv.range({ key: encoder.encode("d3/"), rangeEnd: encoder.encode("d30") }, { timeoutMs: 5000 });
    return new Map(range.kvs.map((kv) => [decoder.decode(kv.key), decoder.decode(kv.value)]));
  };
  const compare = (label: string, held: Map<string, string>, expected: Map<string, string>) => {
    const missing = [...expected.keys()].filter((key) => held.get(key) !== expected.get(key));
    const extra = [...held.keys()].filter((key) => !expected.has(key));
    if (missing.length > 0) broken.push(`${label}: ${missing.length} keys of whole records missing or changed, e.g. ${missing[0]}`);
    if (extra.length > 0) broken.push(`${label}: ${extra.length} keys of damaged records present, e.g. ${extra[0]}`);
  };
  const segmentPath = () => join(walDir, readdirSync(walDir).filter((name) => name.endsWith(".wal")).sort().at(-1) as string);
  try {
    // Applied and settled: these records stay intact, and the backend copy holds them.
    await start();
    for (let i = 0, count = 10 + random.int(30); i < count; i++) await put(`d3/a/${String(i).padStart(4, "0")}`, `a${i}-${"s".repeat(random.int(300))}`);
    await stop();
    const settledPath = segmentPath();
    const settled = statSync(settledPath).size;
    const backendCopy = join(root, "snap-copy");
    cpSync(snapDir, backendCopy, { recursive: true });
    // The last records: a restart and a few more writes, then the backend goes back to the copy (it had not applied them).
    await start();
    const tailKeys: string[] = [];
    for (let i = 0, count = 3 + random.int(8); i < count; i++) {
      const key = `d3/b/${String(i).padStart(4, "0")}`;
      await put(key, `b${i}-${"t".repeat(random.int(600))}`);
      tailKeys.push(key);
    }
    await stop();
    if (segmentPath() !== settledPath) {
      unfinished.push("real node: the WAL moved to a new segment");
      return { broken, unfinished, note, writes: written.size };
    }
    rmSync(snapDir, { recursive: true, force: true });
    cpSync(backendCopy, snapDir, { recursive: true });

    const full = readFileSync(settledPath);
    const ends = recordEnds(full);
    if (ends.at(-1)?.[0] !== full.length) unfinished.push(`real node: the WAL's records end at ${ends.at(-1)?.[0]}, the file at ${full.length}`);
    const kind = random.pick(["truncate", "zero-sector", "append-garbage", "append-zeros"] as const);
    let damaged: Buffer;
    let drawn: string = kind;
    const firstSector = Math.ceil(settled / 512) * 512;
    if (kind === "zero-sector" && firstSector + 512 <= full.length) {
      const sector = firstSector + 512 * random.int(Math.floor((full.length - firstSector) / 512));
      damaged = Buffer.from(full);
      damaged.fill(0, sector, sector + 512);
    } else if (kind === "append-garbage" || kind === "append-zeros") {
      const length = 1 + random.int(3000);
      damaged = Buffer.concat([full, kind === "append-zeros" ? Buffer.alloc(length) : Buffer.from(random.bytes(length))]);
    } else {
      drawn = "truncate";
      damaged = full.subarray(0, settled + random.int(full.length - settled + 1));
    }
    writeFileSync(settledPath, damaged);
    // The damage starts at the first byte that differs; the records ending before it are whole.
    let intactUpTo = 0;
    while (intactUpTo < Math.min(full.length, damaged.length) && full[intactUpTo] === damaged[intactUpTo]) intactUpTo++;
    const good = Math.max(0, ...ends.map(([end]) => end).filter((end) => end <= intactUpTo));
    const mustKeepCopy = damaged.subarray(good).some((byte) => byte !== 0);
    note = `real node: ${drawn} at ${intactUpTo} of ${full.length} (settled ${settled}, ${tailKeys.length} writes after)`;
    const expected = new Map([...written].filter(([key]) => !key.startsWith("d3/b/")));
    for (const key of tailKeys) {
      const at = full.indexOf(Buffer.from(key));
      const end = ends.find(([recordEnd]) => recordEnd > at)?.[0];
      if (at < settled || end === undefined) {
        unfinished.push(`real node: the record of ${key} not found past the settled part`);
        return { broken, unfinished, note, writes: written.size };
      }
      if (end <= intactUpTo) expected.set(key, written.get(key) as string);
    }

    try {
      await start();
    } catch (error) {
      const lines = String(error).split("\n");
      broken.push(`${note}: refused to start: ${(lines.find((line) => line.includes('"level":"error"')) ?? lines[0] ?? "").slice(0, 400)}`);
      return { broken, unfinished, note, writes: written.size };
    }
    compare(note, await keysHeld(), expected);
    const brokenCopy = `${settledPath}.broken`;
    if (mustKeepCopy && !(existsSync(brokenCopy) && readFileSync(brokenCopy).equals(damaged))) broken.push(`${note}: the damaged copy was not kept`);
    // The repair holds: a write after it survives a restart, next to exactly the same keys.
    await put("d3/c/after", "after");
    expected.set("d3/c/after", "after");
    await stop();
    await start();
    compare(`${note}, after one more restart`, await keysHeld(), expected);
    await stop();
  } catch (error) {
    unfinished.push(`real node: ${String(error).split("\n")[0]?.slice(0, 300)}`);
  } finally {
    await server?.kill();
    rmSync(root, { recursive: true, force: true });
  }
  return { broken, unfinished, note, writes: written.size };
}

const tornTailScenario: Scenario = {
  id: "D3",
  title: "torn WAL tail: cut inside the last records, zeroed from a point on, garbage or zeros appended",
  async run(seed, options) {
    const skip = edgetcdOnly("D3", options);
    if (skip !== undefined) return skip;
    const { fs } = await testRuntime();
    const random = new Prng(seed);
    const notes: string[] = [];
    const broken: string[] = [];
    const started = performance.now();
    const cases = Math.max(3, Math.round(20 * options.scale));
    for (let i = 0; i < cases; i++) {
      const dir = scratchDir("d3");
      const texts = await writeRandomWal(fs, dir, random, 3 + random.int(30));
      const segment = (await fs.list(dir)).filter((name) => name.endsWith(".wal")).sort().at(-1) as string;
      const path = join(dir, segment);
      const full = readFileSync(path);
      const ends = recordEnds(full);
      // Damage starts inside the last three records (or right at the end, for appended bytes).
      const from = ends.at(-4)?.[0] ?? 0;
      const kind = random.pick(["truncate", "zero-tail", "append-garbage", "append-zeros"] as const);
      let intactUpTo: number;
      if (kind === "truncate" || kind === "zero-tail") {
        const at = from + random.int(full.length - from);
        const bytes = kind === "truncate" ? full.subarray(0, at) : Buffer.concat([full.subarray(0, at), Buffer.alloc(full.length - at)]);
        writeFileSync(path, bytes);
        // Zeroing bytes that were zero (padding, reserved header bytes) changes nothing: the damage starts at the first that was not.
        let changedFrom = at;
        if (kind === "zero-tail") while (changedFrom < full.length && full[changedFrom] === 0) changedFrom++;
        intactUpTo = changedFrom;
      } else {
        const length = 1 + random.int(5000);
        const tail = kind === "append-zeros" ? Buffer.alloc(length) : Buffer.from(random.bytes(length));
        writeFileSync(path, Buffer.concat([full, tail]));
        intactUpTo = full.length;
      }
      const label = `${kind} at ${intactUpTo} of ${full.length}`;
      const whole = ends.filter(([end, isEntry]) => isEntry && end <= intactUpTo).length;
      // A record cut or zeroed part-way, or garbage after the last one, is damage; zeros after it may be read as the end.
      const damaged = kind === "append-garbage" || (kind !== "append-zeros" && !ends.some(([end]) => end === intactUpTo));
      try {
        const opened = await Wal.open(fs, dir);
        const got = opened.entries.map((entry) => decoder.decode(entry.data));
        if (got.length !== whole || got.some((text, k) => text !== texts[k])) broken.push(`${label}: opened with ${got.length} entries, ${whole} whole records`);
        if (damaged && (opened.repairedFrom === undefined || !(await fs.exists(opened.repairedFrom)))) broken.push(`${label}: no damaged copy kept`);
        // It takes appends after the repair, and they are read back.
        await opened.wal.save({ term: 1, vote: 1, commit: whole + 1 }, [{ index: whole + 1, term: 1, type: EntryType.Normal, data: encoder.encode("after") }], { sync: true });
        await opened.wal.close();
        const again = await Wal.open(fs, dir);
        await again.wal.close();
        if (again.entries.length !== whole + 1 || decoder.decode(again.entries.at(-1)?.data) !== "after") broken.push(`${label}: the append after the repair was not read back`);
      } catch (error) {
        broken.push(`${label}: refused to open: ${String(error).slice(0, 200)}`);
      }
      if (i < 3) notes.push(label);
      await fs.removeAll(dir);
    }
    const node = await tornTailOfARealNode(random, options);
    notes.push(node.note);
    broken.push(...node.broken);
    return result(broken, node.unfinished, { checkMs: performance.now() - started, operations: cases + node.writes, notes });
  },
};

// ---------------------------------------------------------------------------
// D4: damage that is not a torn tail.

const corruptionScenario: Scenario = {
  id: "D4",
  title: "damage mid-WAL, in a backend page, in a received snapshot: always refused",
  async run(seed, options) {
    const skip = edgetcdOnly("D4", options);
    if (skip !== undefined) return skip;
    const runtime = await testRuntime();
    const { fs } = runtime;
    const random = new Prng(seed);
    const notes: string[] = [];
    const broken: string[] = [];
    const started = performance.now();
    const cases = Math.max(2, Math.round(8 * options.scale));
    for (let i = 0; i < cases; i++) {
      const dir = scratchDir("d4");
      // A byte flipped in a record that has whole records after it. Header bytes
      // no check covers (reserved, padding) carry nothing: opening with every
      // entry intact is right then; opening with fewer is silent truncation.
      const texts = await writeRandomWal(fs, dir, random, 4 + random.int(30));
      const segment = (await fs.list(dir)).filter((name) => name.endsWith(".wal")).sort().at(-1) as string;
      const walPath = join(dir, segment);
      const ends = recordEnds(readFileSync(walPath));
      const record = random.int(ends.length - 1);
      const start = record === 0 ? 0 : (ends[record - 1]?.[0] as number);
      const at = start + random.int((ends[record]?.[0] as number) - start);
      flipBytes(walPath, at, 1);
      const walLabel = `WAL byte ${at} (record ${record + 1} of ${ends.length})`;
      await Wal.open(fs, dir).then(
        async (opened) => {
          await opened.wal.close();
          const intact = opened.entries.length === texts.length && opened.entries.every((entry, k) => decoder.decode(entry.data) === texts[k]);
          if (!intact) broken.push(`${walLabel}: opened with ${opened.entries.length} of ${texts.length} entries instead of refusing`);
        },
        (error: unknown) => {
          if (!(error instanceof WalCorruptError)) broken.push(`${walLabel}: refused, but not as corruption: ${String(error).slice(0, 200)}`);
        },
      );

      // A damaged b-tree page of the backend.
      const dbPath = join(dir, "db");
      backendWithKeys(runtime, dbPath, 50 + random.int(400));
      const pages = pageCount(dbPath);
      const page = 1 + random.int(pages - 1);
      damagePages(dbPath, [page]);
      const pageLabel = `backend page ${page} of ${pages}`;
      try {
        Backend.open(runtime.sqlite, dbPath, { verify: true }).close();
        broken.push(`${pageLabel}: opened instead of refusing`);
      } catch (error) {
        if (!(error instanceof BackendCorruptError)) broken.push(`${pageLabel}: refused, but not as corruption: ${String(error).slice(0, 200)}`);
      }

      // A damaged snapshot received from the leader: refused before the swap, the backend keeps its data.
      const memberDb = Backend.open(runtime.sqlite, join(dir, "member.db"));
      memberDb.putKv(2, 0, encoder.encode("mine"), encoder.encode("v"), 2, 1, 0n, false);
      memberDb.setConsistentIndex(7, 1);
      memberDb.commit();
      const leaderPath = join(dir, "leader.db");
      backendWithKeys(runtime, leaderPath, 50 + random.int(400));
      const files = new SnapshotFiles(fs, dir);
      await files.persistIncoming(readFileSync(leaderPath));
      const snapshotPage = 1 + random.int(pageCount(files.incoming) - 1);
      damagePages(files.incoming, [snapshotPage]);
      const snapshotLabel = `received snapshot page ${snapshotPage}`;
      await files.swapIn(memberDb).then(
        () => broken.push(`${snapshotLabel}: swapped in instead of refusing`),
        (error: unknown) => {
          if (!(error instanceof BackendCorruptError)) broken.push(`${snapshotLabel}: refused, but not as corruption: ${String(error).slice(0, 200)}`);
        },
      );
      if (memberDb.consistentIndex() !== 7 || decoder.decode(memberDb.getKv(2, 0)?.value) !== "v") broken.push(`${snapshotLabel}: the member's backend changed`);
      memberDb.close();
      if (i < 2) notes.push(`${walLabel}; ${pageLabel}; ${snapshotLabel}`);
      await fs.removeAll(dir);
    }
    return result(broken, [], { checkMs: performance.now() - started, operations: cases, notes });
  },
};

// ---------------------------------------------------------------------------
// D5: fdatasync fails.

/** One D5 round; returns the guarantees broken (empty when all hold). Shared with disk-faults.test.ts. */
export async function failingSyncRound(runtime: Runtime, dataDir: string, before: number, during: number): Promise<{ broken: string[]; acknowledged: number }> {
  const broken: string[] = [];
  let failSync = false;
  const failing = failingSyncFs(runtime.fs, () => failSync);
  const config = serverConfigFromFlags(parseFlags([`--data-dir=${dataDir}`, "--name=d5"], {}));
  const halts: Array<{ reason: string; exitCode: number }> = [];
  const server = await startServer({ ...runtime, fs: failing }, config, silentLogger);
  server.onHalt = (reason, exitCode) => halts.push({ reason, exitCode });
  const acknowledged = new Map<string, number>();
  try {
    for (let i = 0; i < before; i++) {
      const response = await server.put(create(PutRequestSchema, { key: encoder.encode(`a${i}`), value: encoder.encode(`v${i}`) }));
      acknowledged.set(`a${i}`, Number(response.header?.revision));
    }
    failSync = true;
    const outcomes = await Promise.allSettled(
      Array.from({ length: during }, async (_, i) => await server.put(create(PutRequestSchema, { key: encoder.encode(`b${i}`), value: encoder.encode("x") }))),
    );
    const answered = outcomes.filter((outcome) => outcome.status === "fulfilled").length;
    if (answered > 0) broken.push(`${answered} of ${during} writes acknowledged while fdatasync failed`);
    if (halts.length !== 1 || halts[0]?.exitCode !== 1 || !/storage failure: .*fdatasync failed/.test(halts[0]?.reason ?? "")) {
      broken.push(`the server did not halt once with exit code 1 and the storage failure: ${JSON.stringify(halts)}`);
    }
    if (!server.failed) broken.push("the server does not report itself failed");
    // put throws at once on a stopped server: inside an async function, that is a rejection.
    const after = await (async () => await server.put(create(PutRequestSchema, { key: encoder.encode("c"), value: encoder.encode("x") })))().then(
      () => "acknowledged",
      (error: unknown) => String(error),
    );
    if (!/server stopped/.test(after)) broken.push(`a write after the failure: ${after.slice(0, 200)}`);
  } finally {
    await server.stop();
  }

  // Restart on a healthy disk: every acknowledged write, none of the failed ones twice, writes go on.
  const restarted = await startServer(runtime, config, silentLogger);
  try {
    const range = await restarted.range(create(RangeRequestSchema, { key: encoder.encode("a"), rangeEnd: encoder.encode("c") }));
    const found = new Map(range.kvs.map((kv) => [decoder.decode(kv.key), Number(kv.modRevision)]));
    for (const [key, revision] of acknowledged) if (found.get(key) !== revision) broken.push(`lost ${key}@${revision} (found ${found.get(key)})`);
    // The failed puts' records may have reached the disk before the sync failed: then they appear, once each.
    const unknown = [...found.keys()].filter((key) => key.startsWith("b")).length;
    if (unknown > during) broken.push(`${unknown} failed writes present, more than the ${during} made`);
    const revision = Number(range.header?.revision);
    if (revision < Math.max(0, ...acknowledged.values())) broken.push(`revision ${revision} went back`);
    const next = await restarted.put(create(PutRequestSchema, { key: encoder.encode("after"), value: encoder.encode("x") }));
    if (Number(next.header?.revision) !== revision + 1) broken.push(`the next write got revision ${next.header?.revision}, expected ${revision + 1}`);
  } finally {
    await restarted.stop();
  }
  return { broken, acknowledged: acknowledged.size };
}

const failingSyncScenario: Scenario = {
  id: "D5",
  title: "fdatasync fails: stop before acknowledging, consistent after restart",
  async run(seed, options) {
    const skip = edgetcdOnly("D5", options);
    if (skip !== undefined) return skip;
    const runtime = await testRuntime();
    const random = new Prng(seed);
    const started = performance.now();
    const broken: string[] = [];
    const notes: string[] = [];
    let acknowledged = 0;
    const rounds = Math.max(1, Math.round(3 * options.scale));
    for (let round = 0; round < rounds; round++) {
      const before = random.int(60);
      const during = 1 + random.int(10);
      const dir = scratchDir("d5");
      const outcome = await failingSyncRound(runtime, dir, before, during);
      broken.push(...outcome.broken.map((line) => `${before} before, ${during} during: ${line}`));
      acknowledged += outcome.acknowledged;
      notes.push(`${before} writes, then ${during} while fdatasync fails`);
      await runtime.fs.removeAll(dir);
    }
    return result(broken, [], { checkMs: performance.now() - started, operations: Math.max(1, acknowledged), notes });
  },
};

export const diskScenarios: Scenario[] = [lostUnsyncedScenario, tornTailScenario, corruptionScenario, failingSyncScenario];
