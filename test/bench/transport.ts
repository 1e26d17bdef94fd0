// npm run bench -- --transport [--rounds R --runtimes node,bun]
// The transport's share of a call: a KV service that does nothing, served by
// node:http2's stream API (the floor), by edgetcd's listener and gRPC fast
// path, and by Connect's Node adapter (test/bench/noop-server.ts), each
// driven by etcd's Go client (loadgen put, 100 clients on 10 connections and
// 1 client), beside a real etcd 3.4 doing full puts, in interleaved rounds.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { startEtcd } from "../support/processes.ts";
import { argument, median, runLoadgen, secureLoadgen } from "./loadgen.ts";
const root = new URL("../..", import.meta.url).pathname;

async function startNoop(mode: string, runtime: string): Promise<{ endpoint: string; child: ChildProcess }> {
  const command = runtime === "bun" ? `${root}node_modules/.bin/bun` : process.execPath;
  const args = runtime === "bun" ? [`${root}test/bench/noop-server.ts`, mode] : ["--import", "tsx", `${root}test/bench/noop-server.ts`, mode];
  const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const [chunk] = (await once(child.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
  return { endpoint: `127.0.0.1:${chunk.toString().trim()}`, child };
}

export async function runTransportBench(): Promise<void> {
  const rounds = Number(argument("rounds", "3"));
  const runtimes = argument("runtimes", "node,bun").split(",");
  const loadgen = await secureLoadgen();
  const etcd = await startEtcd();
  const targets: Array<{ name: string; endpoint: string; stop: () => void }> = [{ name: "etcd 3.4 (full put)", endpoint: etcd.endpoint, stop: () => {} }];
  for (const runtime of runtimes) {
    for (const mode of ["raw", "edgetcd", "connect"]) {
      const { endpoint, child } = await startNoop(mode, runtime);
      targets.push({ name: `${mode} no-op, ${runtime}`, endpoint, stop: () => child.kill() });
    }
  }
  const loads = [
    { name: "put c=100", args: ["-clients", "100", "-conns", "10", "-total", "20000"] },
    { name: "put c=1", args: ["-clients", "1", "-conns", "1", "-total", "3000"] },
  ];
  const results = new Map<string, Array<{ qps: number; p50: number }>>();
  try {
    for (const target of targets) await runLoadgen(loadgen, ["-endpoints", target.endpoint, "-op", "put", "-clients", "10", "-conns", "2", "-total", "3000", "-keys", "1000"]);
    for (let round = 1; round <= rounds; round++) {
      for (const load of loads) {
        for (const target of targets) {
          const result = await runLoadgen(loadgen, ["-endpoints", target.endpoint, "-op", "put", "-keys", "1000", ...load.args]);
          if (result.errors > 0) throw new Error(`${target.name}: ${result.errors} errors`);
          const key = `${load.name}|${target.name}`;
          results.set(key, [...(results.get(key) ?? []), { qps: result.qps, p50: result.p50_ms }]);
          console.error(`round ${round} ${load.name} ${target.name}: ${result.qps.toFixed(0)} ops/s p50 ${result.p50_ms.toFixed(3)} ms`);
        }
      }
    }
  } finally {
    for (const target of targets) target.stop();
    await etcd.stop();
  }
  console.log(`\nA no-op KV put through each transport, etcd's Go client (loadgen), medians of ${rounds} rounds; "vs raw" = the same runtime's node:http2 no-op / this one (1.0 = as lean as the floor)\n`);
  console.log(["load", "server", "ops/s", "p50 ms", "vs raw (ops)", "vs etcd (ops)"].join("\t"));
  for (const load of loads) {
    const etcdQps = median((results.get(`${load.name}|etcd 3.4 (full put)`) ?? []).map((r) => r.qps));
    for (const target of targets) {
      const rows = results.get(`${load.name}|${target.name}`) ?? [];
      const qps = median(rows.map((r) => r.qps));
      const runtime = target.name.split(", ")[1];
      const raw = runtime === undefined ? Number.NaN : median((results.get(`${load.name}|raw no-op, ${runtime}`) ?? []).map((r) => r.qps));
      console.log([load.name, target.name, qps.toFixed(0), median(rows.map((r) => r.p50)).toFixed(3), Number.isNaN(raw) ? "-" : (raw / qps).toFixed(2), (qps / etcdQps).toFixed(2)].join("\t"));
    }
  }
}
