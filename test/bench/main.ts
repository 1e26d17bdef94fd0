// npm run bench [-- --seconds S --rounds R --targets etcd,edgetcd-node,edgetcd-bun --cluster]
// npm run bench -- --watch [...]: the watch fan-out benchmark (test/bench/watch.ts).
// npm run bench -- --security --loadgen <binary> [...]: TLS and auth (test/bench/security.ts).
// One load, run against the real etcd 3.4 and edgetcd side by side on this
// machine, workloads interleaved round by round so noise hits both alike.
// Prints throughput and p50/p99 latency per target and their ratios to etcd.
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KV, PutRequestSchema, RangeRequestSchema } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { startCluster } from "../support/cluster.ts";
import { startEdgetcd, startEtcd, type RunningServer } from "../support/processes.ts";

interface Workload {
  name: string;
  concurrency: number;
  operation: (client: Client<typeof KV>, worker: number, sequence: number) => Promise<unknown>;
}

const value = new Uint8Array(256).fill(120);
const keyCount = 1000;
const keyOf = (n: number) => new TextEncoder().encode(`bench/key/${n % keyCount}`);

const workloads: Workload[] = [
  { name: "put c=1", concurrency: 1, operation: (c, w, s) => c.put({ key: keyOf(w * 7919 + s), value }) },
  { name: "put c=100", concurrency: 100, operation: (c, w, s) => c.put({ key: keyOf(w * 7919 + s), value }) },
  { name: "range c=1", concurrency: 1, operation: (c, w, s) => c.range({ key: keyOf(w * 7919 + s) }) },
  { name: "range c=100", concurrency: 100, operation: (c, w, s) => c.range({ key: keyOf(w * 7919 + s) }) },
  {
    name: "range serializable c=100",
    concurrency: 100,
    operation: (c, w, s) => c.range({ key: keyOf(w * 7919 + s), serializable: true }),
  },
];

interface Measurement {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

async function measure(client: Client<typeof KV>, workload: Workload, seconds: number): Promise<Measurement> {
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workload.concurrency }, async (_, worker) => {
      for (let sequence = 0; performance.now() < deadline; sequence++) {
        const begin = performance.now();
        try {
          await workload.operation(client, worker, sequence);
          latencies.push(performance.now() - begin);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { opsPerSecond: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), errors };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

async function main(): Promise<void> {
  const seconds = Number(argument("seconds", "3"));
  const rounds = Number(argument("rounds", "3"));
  const targetNames = argument("targets", "etcd,edgetcd-node,edgetcd-bun").split(",");
  // --cluster: each target is a 3-member cluster (etcd's default timing), the load goes to member 1.
  const clustered = process.argv.includes("--cluster");
  const servers = new Map<string, RunningServer>();
  const stops: Array<() => Promise<void>> = [];
  for (const name of targetNames) {
    const runtime = name === "edgetcd-bun" ? "bun" : "node";
    if (clustered) {
      const cluster = await startCluster(3, { kind: name === "etcd" ? "etcd" : "edgetcd", runtime, heartbeatMs: 100, electionMs: 1000 });
      stops.push(() => cluster.stopAll());
      servers.set(name, cluster.members[0]?.server as RunningServer);
      await new Promise((resolve) => setTimeout(resolve, 3000)); // an election
    } else {
      const server = name === "etcd" ? await startEtcd() : await startEdgetcd({ runtime });
      stops.push(() => server.stop());
      servers.set(name, server);
    }
  }
  const clients = new Map<string, Client<typeof KV>>();
  for (const [name, server] of servers) {
    const transport = createGrpcTransport({ baseUrl: `http://${server.endpoint}` });
    const client = createClient(KV, transport);
    for (let n = 0; n < keyCount; n++) await client.put(create(PutRequestSchema, { key: keyOf(n), value }));
    await client.range(create(RangeRequestSchema, { key: keyOf(0) }));
    clients.set(name, client);
  }
  const results = new Map<string, Measurement[]>();
  for (let round = 0; round < rounds; round++) {
    for (const workload of workloads) {
      for (const [name, client] of clients) {
        const measurement = await measure(client, workload, seconds);
        const key = `${workload.name}|${name}`;
        results.set(key, [...(results.get(key) ?? []), measurement]);
      }
    }
  }
  console.log(`\n${clustered ? "3-member clusters" : "single members"}; medians of ${rounds} rounds of ${seconds}s each; ratio = edgetcd / etcd (throughput: higher is better; latency: lower is better)\n`);
  console.log(["workload", "target", "ops/s", "p50 ms", "p99 ms", "errors", "ops ratio", "p50 ratio", "p99 ratio"].join("\t"));
  for (const workload of workloads) {
    const baseline = summary(results.get(`${workload.name}|etcd`));
    for (const name of clients.keys()) {
      const row = summary(results.get(`${workload.name}|${name}`));
      const ratio = (a: number, b: number | undefined) => (b === undefined ? "-" : (a / b).toFixed(2));
      console.log(
        [
          workload.name,
          name,
          row.opsPerSecond.toFixed(0),
          row.p50Ms.toFixed(2),
          row.p99Ms.toFixed(2),
          row.errors,
          ratio(row.opsPerSecond, baseline?.opsPerSecond),
          ratio(row.p50Ms, baseline?.p50Ms),
          ratio(row.p99Ms, baseline?.p99Ms),
        ].join("\t"),
      );
    }
  }
  await Promise.all(stops.map((stop) => stop()));
}

function summary(measurements: Measurement[] | undefined): Measurement {
  const list = measurements ?? [];
  return {
    opsPerSecond: median(list.map((m) => m.opsPerSecond)),
    p50Ms: median(list.map((m) => m.p50Ms)),
    p99Ms: median(list.map((m) => m.p99Ms)),
    errors: list.reduce((sum, m) => sum + m.errors, 0),
  };
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
    targetNames: argument("targets", "etcd,edgetcd-node,edgetcd-bun").split(","),
  });
} else {
  await main();
}
