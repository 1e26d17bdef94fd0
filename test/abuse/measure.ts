// Runs one client-port attack against a running member, with a well-behaved
// client on the same member, and measures what the abuse tier asserts: the
// member is alive, its memory peak and what it comes back to, the client's
// latencies and failures.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { repoRoot, type RunningServer } from "../support/processes.ts";
import { typeScriptCommand } from "../support/runtime.ts";
import type { AttackResult, ClientAttack } from "./client-attacks.ts";
import { type ClientReport, mebibyte, MemoryWatch, rssBytes, rssSettledUnder, WellBehavedClient } from "./observe.ts";

export interface AttackRow {
  attack: string;
  target: string;
  alive: boolean;
  rssBeforeMb: number;
  rssPeakMb: number;
  rssAfterMb: number;
  client: ClientReport;
  result: AttackResult;
}

/**
 * How far above its first reading a member's memory may stay once every attack
 * is over. Memory freed after an attack is reusable (a later attack does not
 * grow the member again) but not promptly given back to the OS: glibc's malloc
 * keeps freed 1 MiB buffers in its heap, and etcd's Go runtime keeps its heap
 * for minutes too (1262 MB after the reader that never reads, in the same
 * run). So "returned" is judged over the whole sequence, not per attack.
 */
export const rssRetainedBytesMax = 256 * mebibyte;

export async function measureAttack(server: RunningServer, attack: ClientAttack, scale: number): Promise<AttackRow> {
  const pid = server.process.pid as number;
  const rssBefore = rssBytes(pid) ?? 0;
  const memory = new MemoryWatch(pid);
  const client = new WellBehavedClient(server.clientPort, `abuse/${attack.name.replace(/\W+/g, "-")}`);
  const result = await runAttackProcess(attack, server.clientPort, scale);
  // The well-behaved client keeps going a moment after the attack ends: a
  // member that is still digesting the attack shows here.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const report = await client.stop();
  const peak = memory.stop();
  const after = (await rssSettledUnder(pid, rssBefore, 3000)) ?? 0;
  return {
    attack: attack.name,
    target: server.kind,
    alive: server.process.exitCode === null && server.process.signalCode === null,
    rssBeforeMb: rssBefore / mebibyte,
    rssPeakMb: peak / mebibyte,
    rssAfterMb: after / mebibyte,
    client: report,
    result,
  };
}

/** Runs the attack in a process of its own (attack-main.ts), under the runtime running the tests. */
async function runAttackProcess(attack: ClientAttack, clientPort: number, scale: number): Promise<AttackResult> {
  const [command, args] = typeScriptCommand(join(repoRoot, "test/abuse/attack-main.ts"), [attack.name, String(clientPort), String(scale)]);
  const child = spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // Every attack bounds its own time; this only stops one that hangs anyway.
  const killer = setTimeout(() => child.kill("SIGKILL"), 180_000);
  await new Promise<void>((resolve) => child.once("close", () => resolve()));
  clearTimeout(killer);
  const line = /^attack-result (.*)$/m.exec(output);
  if (line === null) return { seen: `attack process failed: ${output.slice(-500)}`, figures: {} };
  return JSON.parse(line[1] as string) as AttackResult;
}

export function formatRow(row: AttackRow): string {
  const mb = (value: number) => value.toFixed(0);
  return [
    row.attack,
    row.alive ? "alive" : "DIED",
    `RSS ${mb(row.rssBeforeMb)} → peak ${mb(row.rssPeakMb)} → ${mb(row.rssAfterMb)} MB`,
    `client ${row.client.operations - row.client.failures}/${row.client.operations} ok, p50 ${row.client.latencyMsP50.toFixed(0)} ms, p99 ${row.client.latencyMsP99.toFixed(0)} ms`,
    row.result.seen,
  ].join(" | ");
}
