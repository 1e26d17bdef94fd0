// Crash-and-recover rounds on a real single-node edgetcd process: start it
// with EDGETCD_CRASH_POINT=<point>:<n> (and any more environment, e.g. a
// mutant), drive concurrent writers (puts over a few keys per writer, so
// compaction has old revisions to remove, plus a compaction now and then)
// until the process kills itself at the point, restart it unattended, and
// check: every acknowledged write is present (the key holds that write or a
// later attempted one of the same writer), no revision went back, and a final
// write succeeds. Shared by crash-points-*.test.ts, the L2 scenario and the
// mutant runner. Steps chain on one data directory so each costs one process
// start (starts dominate on a loaded 2-core machine).
import type { ChildProcess } from "node:child_process";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Connection } from "./history.ts";
import { startEdgetcd, tempDir, freePort, type RunningServer } from "../support/processes.ts";
import type { RuntimeName } from "../support/runtime.ts";
import { join } from "node:path";
import type { CrashPointName } from "../../src/storage/crash-points.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Flags that make every point reachable within a second or two of writes. */
export const crashRunFlags = ["--snapshot-count", "40", "--experimental-compaction-batch-limit", "4", "--backend-batch-interval", "50ms"];

export interface CrashStep {
  /** undefined: no crash point, a plain SIGKILL after `killAfterMs`. */
  point: CrashPointName | undefined;
  /** Which hit of the point crashes. */
  hit: number;
  /** More environment for this step's process only (e.g. EDGETCD_MUTANT). */
  env?: Record<string, string>;
}

export interface CrashChainOptions {
  runtime?: RuntimeName;
  /** Environment for every process (e.g. EDGETCD_TEST_DISK). */
  envAlways?: Record<string, string>;
  writers?: number;
  /** Give up waiting for a crash point after this long; the step then kills the process itself. */
  crashWaitMs?: number;
  /** SIGKILL after this long in steps without a crash point. */
  killAfterMs?: number;
}

export interface CrashStepResult {
  label: string;
  crashed: "point" | "killed" | "exited";
  /** Acknowledged by this step's process. */
  acknowledged: number;
  output: string;
}

export interface CrashCheck {
  /** Acknowledged writes missing (or replaced by something not written after them) after a restart. */
  lost: string[];
  /** A restarted node's revision was below one already acknowledged. */
  wentBack: string | undefined;
  restartError: string | undefined;
}

interface Written {
  sequence: number;
  revision: number;
}

/**
 * A chain of crashes on one data directory: each step starts the node (which
 * recovers what the previous step left), checks every write acknowledged so
 * far, writes until the step's crash point kills it; `finish` restarts it
 * with no crash point, checks again and makes a final write.
 */
export class CrashChain {
  readonly steps: CrashStepResult[] = [];
  readonly check: CrashCheck = { lost: [], wentBack: undefined, restartError: undefined };
  private readonly acknowledged = new Map<string, Written>();
  private readonly attempted = new Map<string, number>();
  private highestRevision = 0;
  private sequence = 0;

  private constructor(
    private readonly options: CrashChainOptions,
    private readonly dataDir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
  ) {}

  static async create(options: CrashChainOptions = {}): Promise<CrashChain> {
    return new CrashChain(options, join(tempDir("edgetcd-crash"), "data"), await freePort(), await freePort());
  }

  get ok(): boolean {
    return this.check.lost.length === 0 && this.check.wentBack === undefined && this.check.restartError === undefined;
  }

  /** Set by start when the process died at its crash point while recovering, before it was ready. */
  private crashedInRecovery: string | undefined;

  private async start(env: Record<string, string>, label: string): Promise<RunningServer | undefined> {
    this.crashedInRecovery = undefined;
    try {
      const server = await startEdgetcd({
        dataDir: this.dataDir,
        clientPort: this.clientPort,
        peerPort: this.peerPort,
        runtime: this.options.runtime,
        env: { ...this.options.envAlways, ...env },
        extraArgs: crashRunFlags,
        readyTimeoutMs: 60_000,
      });
      await this.verify(connect(server.endpoint), label);
      return server;
    } catch (error) {
      const text = String(error);
      // A crash point may fire while the node recovers (finishing an interrupted compaction): that is a crash too.
      if (env.EDGETCD_CRASH_POINT !== undefined && /crash point \S+ hit/.test(text)) this.crashedInRecovery = text;
      else this.check.restartError ??= `${label}: ${text.slice(0, 2000)}`;
      return undefined;
    }
  }

  /** One step: start (and check), write until the crash, wait for the exit. Returns false if the node did not start. */
  async step(step: CrashStep): Promise<boolean> {
    const label = step.point === undefined ? "kill -9" : `${step.point}:${step.hit}`;
    const env: Record<string, string> = { ...step.env };
    if (step.point !== undefined) env.EDGETCD_CRASH_POINT = `${step.point}:${step.hit}`;
    const server = await this.start(env, `start before ${label}`);
    if (server === undefined) {
      if (this.crashedInRecovery === undefined) return false;
      this.steps.push({ label: `${label} (while recovering)`, crashed: "point", acknowledged: 0, output: this.crashedInRecovery.slice(-4000) });
      return true;
    }
    const exited = exitOf(server.process);
    const connection = connect(server.endpoint);
    const encoder = new TextEncoder();
    let acknowledged = 0;
    let stopping = false;
    const writers = Array.from({ length: this.options.writers ?? 4 }, async (_, writer) => {
      for (let round = 0; !stopping; round++) {
        const key = `c/${writer}/${round % 5}`;
        const sequence = ++this.sequence;
        this.attempted.set(key, sequence);
        try {
          if (writer === 0 && round % 15 === 14 && this.highestRevision > 12) {
            await connection.kv.compact({ revision: BigInt(this.highestRevision - 8) }, { timeoutMs: 5000 });
          }
          const response = await connection.kv.put({ key: encoder.encode(key), value: encoder.encode(String(sequence)) }, { timeoutMs: 5000 });
          const revision = Number(response.header?.revision);
          this.acknowledged.set(key, { sequence, revision });
          acknowledged++;
          this.highestRevision = Math.max(this.highestRevision, revision);
        } catch {
          if (server.process.exitCode !== null || server.process.signalCode !== null) return;
          await sleep(20);
        }
      }
    });
    const waitMs = step.point === undefined ? (this.options.killAfterMs ?? 1500) : (this.options.crashWaitMs ?? 30_000);
    const outcome = await Promise.race([exited.then(() => "exited" as const), sleep(waitMs).then(() => "timeout" as const)]);
    let crashed: CrashStepResult["crashed"];
    if (outcome === "timeout") {
      await server.kill();
      crashed = "killed";
    } else {
      crashed = server.process.signalCode === "SIGKILL" && server.output().includes("crash point") ? "point" : "exited";
    }
    stopping = true;
    await Promise.all(writers);
    this.steps.push({ label, crashed, acknowledged, output: server.output() });
    return true;
  }

  /** Restarts with no crash point, checks, and makes a final write. Returns whether the final write succeeded. */
  async finish(): Promise<boolean> {
    const server = await this.start({}, "final restart");
    if (server === undefined) return false;
    try {
      const response = await connect(server.endpoint).kv.put(
        { key: new TextEncoder().encode("c/final"), value: new TextEncoder().encode("final") },
        { timeoutMs: 10_000 },
      );
      return Number(response.header?.revision) > this.highestRevision;
    } catch {
      return false;
    } finally {
      await server.stop();
    }
  }

  private async verify(connection: Connection, label: string): Promise<void> {
    const { kvs, revision } = await readAll(connection);
    const decoder = new TextDecoder();
    const found = new Map(kvs.map((kv) => [decoder.decode(kv.key), { sequence: Number(decoder.decode(kv.value)), revision: Number(kv.modRevision) }]));
    for (const [key, written] of this.acknowledged) {
      const now = found.get(key);
      const highest = this.attempted.get(key) ?? written.sequence;
      // The acknowledged write itself, or a later write of the same writer whose answer was lost in the crash.
      const intact =
        now !== undefined &&
        (now.sequence === written.sequence ? now.revision === written.revision : now.sequence > written.sequence && now.sequence <= highest);
      if (!intact) {
        this.check.lost.push(`${label}: ${key} acknowledged ${written.sequence}@${written.revision}, found ${now === undefined ? "nothing" : `${now.sequence}@${now.revision}`}`);
        // Count each loss once: from here on the key is what the node holds.
        if (now === undefined) this.acknowledged.delete(key);
        else this.acknowledged.set(key, now);
      }
    }
    if (revision < this.highestRevision) {
      this.check.wentBack ??= `${label}: revision ${revision} < acknowledged ${this.highestRevision}`;
      this.highestRevision = revision;
    }
  }

  describe(): string {
    return JSON.stringify({
      check: this.check,
      steps: this.steps.map((step) => ({ ...step, output: step.output.slice(-800) })),
    });
  }
}

async function readAll(connection: Connection) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const response = await connection.kv.range({ key: new TextEncoder().encode("c/"), rangeEnd: new TextEncoder().encode("c0") }, { timeoutMs: 3000 });
      return { kvs: response.kvs, revision: Number(response.header?.revision) };
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** The hit that crashes each single-node point about a second into the writes. */
export const singleNodeCrashPoints: ReadonlyArray<{ point: CrashPointName; hit: number }> = [
  { point: "wal-before-save", hit: 60 },
  { point: "wal-after-write-before-sync", hit: 60 },
  { point: "wal-after-sync", hit: 60 },
  { point: "backend-before-commit", hit: 6 },
  { point: "backend-after-commit", hit: 6 },
  { point: "snapshot-before-save", hit: 2 },
  { point: "snapshot-after-save", hit: 2 },
  { point: "snapshot-after-release", hit: 2 },
  { point: "compaction-after-schedule", hit: 2 },
  { point: "compaction-before-batch-commit", hit: 3 },
];

/**
 * One chain of single-node crash points as a test suite: after every restart
 * every acknowledged write is present and the revision has not gone back, and
 * after the last one a new write succeeds.
 */
export function crashPointChainSuite(name: string, points: ReadonlyArray<{ point: CrashPointName; hit: number }>): void {
  describe(name, () => {
    test(points.map(({ point, hit }) => `${point}:${hit}`).join(", "), { timeout: 240_000 }, async () => {
      const chain = await CrashChain.create();
      for (const point of points) assert.ok(await chain.step(point), chain.describe());
      const finalWrite = await chain.finish();
      const summary = chain.describe();
      for (const step of chain.steps) assert.equal(step.crashed, "point", `${step.label} did not crash at its point: ${summary}`);
      assert.ok(chain.steps.some((step) => step.acknowledged > 0), summary);
      assert.equal(chain.check.restartError, undefined, summary);
      assert.deepEqual(chain.check.lost, [], summary);
      assert.equal(chain.check.wentBack, undefined, summary);
      assert.ok(finalWrite, `the final write failed: ${summary}`);
    });
  });
}
