// npm run bench [-- --rounds R --scale F --targets etcd,edgetcd-node,edgetcd-bun,edgetcd-deno --cluster]
// npm run bench -- --watch [...]: the watch fan-out benchmark (test/bench/watch.ts).
// npm run bench -- --security [...]: TLS and auth (test/bench/security.ts).
// npm run bench -- --transport [...]: a no-op service through each transport (test/bench/transport.ts).
//
// Every figure comes from etcd's own Go client (../shared/loadgen, built on
// first use), the same binary against the real etcd 3.4 and edgetcd on this
// machine, started side by side; rounds interleave targets and workloads so
// noise hits all alike. Prints, per workload and target, the medians of
// throughput, p50 and p99, each as a ratio to etcd's, and each server's RSS
// after the load. `--cluster` makes each target a 3-member cluster (the load
// goes to member 1, RSS is the three members' sum).
// EDGETCD_GRPC_FAST_PATH=0 in the environment runs edgetcd with gRPC through
// Connect instead of its fast path, for the transport's share.
import { readFileSync } from "node:fs";
import { startCluster } from "../support/cluster.ts";
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";
import { argument, defaultTargets, median, runLoadgen, runtimeOfTarget, secureLoadgen } from "./loadgen.ts";

interface Workload {
  name: string;
  op: "put" | "range" | "srange" | "txn";
  clients: number;
  conns: number;
  total: number;
}

const workloads: Workload[] = [
  { name: "put c=1", op: "put", clients: 1, conns: 1, total: 2000 },
  { name: "put c=100", op: "put", clients: 100, conns: 10, total: 20000 },
  { name: "range c=1", op: "range", clients: 1, conns: 1, total: 2000 },
  { name: "range c=100", op: "range", clients: 100, conns: 10, total: 20000 },
  { name: "srange c=100", op: "srange", clients: 100, conns: 10, total: 20000 },
  { name: "txn c=100", op: "txn", clients: 100, conns: 10, total: 20000 },
];

interface Measurement {
  qps: number;
  p50: number;
  p99: number;
  errors: number;
}

interface Target {
  name: string;
  endpoint: string;
  pids: number[];
  stop: () => Promise<void>;
}

function rssMegabytes(pids: number[]): number {
  let kilobytes = 0;
  for (const pid of pids) {
    try {
      const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      kilobytes += Number(match?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kilobytes / 1024;
}

async function load(loadgen: string, endpoint: string, workload: Workload, scale: number): Promise<Measurement> {
  const total = Math.max(100, Math.round(workload.total * scale));
  const args = ["-endpoints", endpoint, "-op", workload.op, "-clients", String(workload.clients), "-conns", String(workload.conns), "-total", String(total), "-keys", "1000"];
  const result = await runLoadgen(loadgen, args);
  return { qps: result.qps, p50: result.p50_ms, p99: result.p99_ms, errors: result.errors };
}

async function startTarget(name: string, clustered: boolean): Promise<Target> {
  const runtime = name === "etcd" ? "node" : runtimeOfTarget(name);
  if (clustered) {
    const cluster = await startCluster(3, { kind: name === "etcd" ? "etcd" : "edgetcd", runtime, heartbeatMs: 100, electionMs: 1000 });
    await new Promise((resolve) => setTimeout(resolve, 3000)); // an election
    const servers = cluster.members.map((member) => member.server as RunningServer);
    return { name, endpoint: (servers[0] as RunningServer).endpoint, pids: servers.map((server) => server.process.pid as number), stop: () => cluster.stopAll() };
  }
  const server = name === "etcd" ? await startEtcd() : await startEdgetcd({ runtime });
  return { name, endpoint: server.endpoint, pids: [server.process.pid as number], stop: () => server.stop() };
}

async function main(): Promise<void> {
  const rounds = Number(argument("rounds", "3"));
  const scale = Number(argument("scale", "1"));
  const targetNames = argument("targets", defaultTargets).split(",");
  const only = argument("workloads", "");
  const chosen = only === "" ? workloads : workloads.filter((workload) => only.split(",").includes(workload.name));
  const clustered = process.argv.includes("--cluster");
  const loadgen = await secureLoadgen();
  const targets: Target[] = [];
  try {
    for (const name of targetNames) targets.push(await startTarget(name, clustered));
    const idleRss = new Map(targets.map((target) => [target.name, rssMegabytes(target.pids)]));
    // Warm up: every key exists, JIT compiled.
    for (const target of targets) await load(loadgen, target.endpoint, { name: "warm", op: "put", clients: 10, conns: 2, total: 3000 }, 1);
    const results = new Map<string, Measurement[]>();
    for (let round = 1; round <= rounds; round++) {
      for (const workload of chosen) {
        for (const target of targets) {
          const measurement = await load(loadgen, target.endpoint, workload, scale);
          const key = `${workload.name}|${target.name}`;
          results.set(key, [...(results.get(key) ?? []), measurement]);
          console.error(`round ${round} ${workload.name} ${target.name}: ${measurement.qps.toFixed(0)} ops/s p50 ${measurement.p50.toFixed(2)} ms p99 ${measurement.p99.toFixed(2)} ms`);
        }
      }
    }
    console.log(`\n${clustered ? "3-member clusters" : "single members"}; etcd's Go client (loadgen), medians of ${rounds} rounds; ratio = target / etcd (ops: higher is better; latency: lower is better)\n`);
    console.log(["workload", "target", "ops/s", "p50 ms", "p99 ms", "errors", "ops ratio", "p50 ratio", "p99 ratio"].join("\t"));
    for (const workload of chosen) {
      const baseline = summary(results.get(`${workload.name}|etcd`));
      for (const target of targets) {
        const row = summary(results.get(`${workload.name}|${target.name}`));
        if (row === undefined) continue;
        const ratio = (a: number, b: number | undefined) => (b === undefined || Number.isNaN(b) ? "-" : (a / b).toFixed(2));
        console.log([workload.name, target.name, row.qps.toFixed(0), row.p50.toFixed(2), row.p99.toFixed(2), row.errors, ratio(row.qps, baseline?.qps), ratio(row.p50, baseline?.p50), ratio(row.p99, baseline?.p99)].join("\t"));
      }
    }
    console.log(`\nRSS (MB${clustered ? ", three members" : ""}): idle after start / after the load`);
    for (const target of targets) console.log(`${target.name}\t${(idleRss.get(target.name) ?? 0).toFixed(0)}\t${rssMegabytes(target.pids).toFixed(0)}`);
  } finally {
    await Promise.all(targets.map((target) => target.stop()));
  }
}

function summary(measurements: Measurement[] | undefined): Measurement | undefined {
  if (measurements === undefined) return undefined;
  return {
    qps: median(measurements.map((m) => m.qps)),
    p50: median(measurements.map((m) => m.p50)),
    p99: median(measurements.map((m) => m.p99)),
    errors: measurements.reduce((sum, m) => sum + m.errors, 0),
  };
}

if (process.argv.includes("--transport")) {
  const { runTransportBench } = await import("./transport.ts");
  await runTransportBench();
  process.exit(0);
}
if (process.argv.includes("--fill")) {
  const { runFillBench } = await import("./fill.ts");
  await runFillBench();
  process.exit(0);
}
if (process.argv.includes("--security")) {
  const { runSecurityBench } = await import("./security.ts");
  await runSecurityBench();
  process.exit(0);
}
if (process.argv.includes("--watch")) {
  const { runWatchBench } = await import("./watch.ts");
  await runWatchBench({
    rounds: Number(argument("rounds", "3")),
    seconds: Number(argument("seconds", "3")),
    puts: Number(argument("puts", "20")),
    targetNames: argument("targets", defaultTargets).split(","),
  });
} else {
  await main();
}
