// The PasswordHasher port on Node and Bun: a small pool of worker_threads running
// bcryptjs's synchronous hash and compare. One bcrypt at etcd's default cost
// (10) is tens of milliseconds of CPU; on the event loop a burst of
// Authenticate calls would stall every watch and heartbeat of the member (etcd
// hashes on the calling goroutine, which Go's scheduler runs beside the others).
//
// The worker is eval'd source, not a file: one string works when run from
// source through tsx, from the esbuild bundle in dist/ (which has no second
// file) and under Bun. It loads bcryptjs by the path resolved here; bcryptjs is
// a runtime dependency, installed beside dist/.
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { assert, etcdError } from "../../src/errors.ts";
import type { PasswordHasher } from "../../src/ports.ts";

/** Workers at most: two hashes at once, one core left for the event loop on a small machine. */
export const passwordWorkersMax = 2;
/** Jobs waiting for a worker at most; past it a job is refused at once rather than waited on for seconds. */
export const passwordJobsQueuedMax = 1024;
/** bcrypt's cost bounds (golang.org/x/crypto/bcrypt's MinCost and MaxCost; etcd checks --bcrypt-cost against them). */
export const bcryptCostMin = 4;
export const bcryptCostMax = 31;

type JobMessage = { id: number; kind: "hash"; password: string; cost: number } | { id: number; kind: "verify"; password: string; hash: string };
type Reply = { id: number; value: string | boolean } | { id: number; error: string };

interface Job {
  message: JobMessage;
  resolve(value: string | boolean): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  /** The job the worker is running; the worker is ref'd exactly while there is one. */
  job: Job | undefined;
}

function workerSource(bcryptjsPath: string): string {
  // Go's bcrypt (etcd's stored hashes) writes "$2a$", bcryptjs "$2b$": the same
  // algorithm for any password under 255 bytes, so hashes read like etcd's.
  // A malformed hash makes compareSync throw (bad salt); that is a mismatch.
  return `
const { parentPort } = require("node:worker_threads");
const bcrypt = require(${JSON.stringify(bcryptjsPath)});
function run(job) {
  if (job.kind === "hash") return bcrypt.hashSync(job.password, "$2a$" + bcrypt.genSaltSync(job.cost).slice(4));
  try {
    return bcrypt.compareSync(job.password, job.hash);
  } catch {
    return false;
  }
}
parentPort.on("message", (job) => {
  try {
    parentPort.postMessage({ id: job.id, value: run(job) });
  } catch (error) {
    parentPort.postMessage({ id: job.id, error: String(error && error.message ? error.message : error) });
  }
});
`;
}

export class WorkerPasswordHasher implements PasswordHasher {
  private readonly slots = new Set<Slot>();
  private readonly queued: Job[] = [];
  private nextJobId = 1;
  private source: string | undefined;
  /** Counters for tests and metrics. */
  readonly stats = { workersStarted: 0, workerDeaths: 0, jobsDone: 0 };

  constructor(
    private readonly workersMax = Math.max(1, Math.min(passwordWorkersMax, availableParallelism())),
    private readonly jobsQueuedMax = passwordJobsQueuedMax,
  ) {}

  hash(password: string, cost: number): Promise<string> {
    if (!Number.isInteger(cost) || cost < bcryptCostMin || cost > bcryptCostMax) {
      return Promise.reject(new Error(`bcrypt cost must be an integer in [${bcryptCostMin}, ${bcryptCostMax}], got ${cost}`));
    }
    return this.submit({ id: this.nextJobId++, kind: "hash", password, cost }) as Promise<string>;
  }

  verify(password: string, hash: string): Promise<boolean> {
    return this.submit({ id: this.nextJobId++, kind: "verify", password, hash }) as Promise<boolean>;
  }

  /**
   * Ends the workers, failing the jobs they run and the queued ones. A later
   * job starts new workers: Node's and Bun's Runtime is one object per
   * process, so a member stopping must not break the next one started in it.
   */
  async close(): Promise<void> {
    const closed = new Error("password hasher closed");
    for (const job of this.queued.splice(0)) job.reject(closed);
    const slots = [...this.slots];
    this.slots.clear();
    for (const slot of slots) slot.job?.reject(closed);
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  /** For tests: ends every worker that is running a job, as a crash would. */
  async crashBusyWorkersForTest(): Promise<void> {
    await Promise.all([...this.slots].filter((slot) => slot.job !== undefined).map((slot) => slot.worker.terminate()));
  }

  private submit(message: JobMessage): Promise<string | boolean> {
    if (this.queued.length >= this.jobsQueuedMax) return Promise.reject(etcdError("tooManyRequests"));
    return new Promise((resolve, reject) => {
      this.queued.push({ message, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (;;) {
      if (this.queued.length === 0) return;
      const slot = this.idleSlot();
      if (slot === undefined) return;
      const job = this.queued.shift() as Job;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(job.message);
    }
  }

  /** A worker with no job, started now if the pool has room: no threads until the first password. */
  private idleSlot(): Slot | undefined {
    for (const slot of this.slots) if (slot.job === undefined) return slot;
    return this.slots.size < this.workersMax ? this.startWorker() : undefined;
  }

  private startWorker(): Slot {
    this.source ??= workerSource(createRequire(import.meta.url).resolve("bcryptjs"));
    // Unref'd while idle: an idle pool never keeps the process alive.
    const slot: Slot = { worker: new Worker(this.source, { eval: true }), job: undefined };
    slot.worker.unref();
    slot.worker.on("message", (reply: Reply) => this.finish(slot, reply));
    slot.worker.on("error", (error: Error) => this.retire(slot, error));
    slot.worker.on("exit", (code: number) => this.retire(slot, new Error(`password worker exited with code ${code}`)));
    this.slots.add(slot);
    this.stats.workersStarted++;
    return slot;
  }

  private finish(slot: Slot, reply: Reply): void {
    const job = slot.job;
    assert(job !== undefined && job.message.id === reply.id, "a password worker answers the job it was given");
    slot.job = undefined;
    slot.worker.unref();
    this.stats.jobsDone++;
    if ("error" in reply) job.reject(new Error(reply.error));
    else job.resolve(reply.value);
    this.dispatch();
  }

  /** A worker died (or was closed): its job fails, and the queue goes on with a new worker. */
  private retire(slot: Slot, error: Error): void {
    if (!this.slots.delete(slot)) return; // closed, or 'exit' after 'error'
    this.stats.workerDeaths++;
    const job = slot.job;
    slot.job = undefined;
    job?.reject(error);
    this.dispatch();
  }
}
