// The abuse tier's table for an issue note: every client-port attack against
// etcd 3.4, edgetcd on Node and edgetcd on Bun, one fresh member each, side by
// side in one run. Usage: node --import tsx test/abuse/table.ts [--scale S] [--only etcd,node,bun]
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";
import { clientAttacks } from "./client-attacks.ts";
import { measureAttack, type AttackRow } from "./measure.ts";

const args = process.argv.slice(2);
const option = (name: string) => {
  const at = args.indexOf(`--${name}`);
  return at < 0 ? undefined : args[at + 1];
};
const scale = Number(option("scale") ?? 1);
const targets = (option("only") ?? "etcd,node,bun").split(",");

const starters: Record<string, () => Promise<RunningServer>> = {
  etcd: () => startEtcd(),
  node: () => startEdgetcd({ runtime: "node" }),
  bun: () => startEdgetcd({ runtime: "bun" }),
};

const rows = new Map<string, Map<string, AttackRow>>();
for (const target of targets) {
  const starter = starters[target];
  if (starter === undefined) throw new Error(`unknown target ${target}`);
  const server = await starter();
  for (const attack of clientAttacks) {
    const row = await measureAttack(server, attack, scale);
    if (!rows.has(attack.name)) rows.set(attack.name, new Map());
    rows.get(attack.name)?.set(target, row);
    console.error(`${target}: ${attack.name}: ${row.alive ? "alive" : "DIED"}, peak ${row.rssPeakMb.toFixed(0)} MB, p99 ${row.client.latencyMsP99.toFixed(0)} ms, ${row.result.seen}`);
    if (!row.alive) break;
  }
  await server.kill();
}

const cell = (row: AttackRow | undefined) =>
  row === undefined
    ? "—"
    : `${row.alive ? "" : "**died** "}RSS ${row.rssBeforeMb.toFixed(0)}→${row.rssPeakMb.toFixed(0)}→${row.rssAfterMb.toFixed(0)} MB; client ${row.client.failures} failed, p99 ${row.client.latencyMsP99.toFixed(0)} ms; ${row.result.seen}`;
console.log(`| attack (scale ${scale}) | ${targets.join(" | ")} |`);
console.log(`|---|${targets.map(() => "---").join("|")}|`);
for (const [attack, byTarget] of rows) console.log(`| ${attack} | ${targets.map((target) => cell(byTarget.get(target))).join(" | ")} |`);
process.exit(0);
