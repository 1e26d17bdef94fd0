// A simulated disk holding one append-only log of records (a WAL). Writes land
// in the "page cache" at once and become durable only when `sync()` runs
// (fdatasync). A crash keeps what was synced and, at most, some prefix of the
// unsynced writes in order (a real file loses a suffix, never a middle); with
// `loseAllUnsynced` every unsynced write is lost.

import type { Prng } from "./prng.ts";

export class SimDisk<R> {
  private records: R[];
  private syncedCount: number;
  syncCount = 0;

  constructor(durable: readonly R[] = []) {
    this.records = [...durable];
    this.syncedCount = this.records.length;
  }

  write(record: R): void {
    this.records.push(record);
  }

  /** Makes every write so far durable. */
  sync(): void {
    this.syncedCount = this.records.length;
    this.syncCount++;
  }

  get unsyncedCount(): number {
    return this.records.length - this.syncedCount;
  }

  /** Everything written, durable or not: what the running process reads back. */
  allRecords(): readonly R[] {
    return this.records;
  }

  durableRecords(): readonly R[] {
    return this.records.slice(0, this.syncedCount);
  }

  /**
   * Power loss: the unsynced tail is lost, except a random prefix of it when
   * `loseAllUnsynced` is false. Returns the records that survived, which are
   * now all durable.
   */
  crash(random: Prng, loseAllUnsynced: boolean): readonly R[] {
    const kept = loseAllUnsynced ? 0 : random.int(this.unsyncedCount + 1);
    this.records = this.records.slice(0, this.syncedCount + kept);
    this.syncedCount = this.records.length;
    return this.records;
  }

  /**
   * Replaces the durable log by an equivalent shorter one (what a WAL purge
   * after a snapshot does). Only allowed when nothing is unsynced.
   */
  rewrite(records: readonly R[]): void {
    if (this.unsyncedCount !== 0) throw new Error("rewrite with unsynced writes");
    this.records = [...records];
    this.syncedCount = this.records.length;
  }
}
