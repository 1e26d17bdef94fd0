// npm run bench -- --fill [--puts N] [--targets etcd,edgetcd-node,...]
// A member filled with N puts of 256 B on N random keys (etcd's Go client,
// 100 clients on 10 connections), one target after another: how long the
// fill takes, the RSS before and after, the data dir's size, how long a
// restart takes until the member answers a linearizable read, and the RSS
// after the restart. Each figure beside etcd's, as a ratio.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { etcdctl, freePort, startEdgetcd, startEtcd, tempDir, type RunningServer, type StartOptions } from "../support/processes.ts";
import { argument, defaultTargets, runLoadgen, runtimeOfTarget, secureLoadgen } from "./loadgen.ts";

interface FillResult {
  fillSeconds: number;
  fillQps: number;
  idleRssMb: number;
  filledRssMb: number;
  dataDirMb: number;
  restartSeconds: number;
  restartedRssMb: number;
}

function rssMegabytes(pid: number): number {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0) / 1024;
}

function dirMegabytes(dir: string): number {
  return Number(execFileSync("du", ["-sk", dir], { encoding: "utf8" }).split("\t")[0]) / 1024;
}

async function start(name: string, options: StartOptions): Promise<RunningServer> {
  return name === "etcd" ? await startEtcd(options) : await startEdgetcd({ ...options, runtime: runtimeOfTarget(name) });
}

async function fill(loadgen: string, name: string, puts: number): Promise<FillResult> {
  const dataDir = `${tempDir(`fill-${name}`)}/data`;
  const ports = { clientPort: await freePort(), peerPort: await freePort() };
  let server = await start(name, { dataDir, ...ports, readyTimeoutMs: 120_000 });
  try {
    const idleRssMb = rssMegabytes(server.process.pid as number);
    const result = await runLoadgen(loadgen, ["-endpoints", server.endpoint, "-op", "put", "-clients", "100", "-conns", "10", "-total", String(puts), "-keys", String(puts), "-val", "256", "-timeout", "3600s"]);
    if (result.errors > 0) throw new Error(`${name}: ${result.errors} failed puts`);
    const filledRssMb = rssMegabytes(server.process.pid as number);
    await server.stop();
    const dataDirMb = dirMegabytes(dataDir);
    const restartedAtMs = performance.now();
    server = await start(name, { dataDir, ...ports, readyTimeoutMs: 600_000 });
    // Restarted: it answers a linearizable read.
    for (;;) {
      const read = etcdctl(server.endpoint, ["get", "--consistency=l", "restart-probe"]);
      if (read.status === 0) break;
      if (performance.now() - restartedAtMs > 600_000) throw new Error(`${name}: no linearizable read within 10 min of the restart: ${read.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const restartSeconds = (performance.now() - restartedAtMs) / 1000;
    return { fillSeconds: result.seconds, fillQps: result.qps, idleRssMb, filledRssMb, dataDirMb, restartSeconds, restartedRssMb: rssMegabytes(server.process.pid as number) };
  } finally {
    await server.stop();
  }
}

export async function runFillBench(): Promise<void> {
  const puts = Number(argument("puts", "1000000"));
  const targets = argument("targets", defaultTargets).split(",");
  const loadgen = await secureLoadgen();
  const results = new Map<string, FillResult>();
  for (const name of targets) {
    const result = await fill(loadgen, name, puts);
    results.set(name, result);
    console.error(`${name}: ${JSON.stringify(result)}`);
  }
  const baseline = results.get("etcd");
  const ratio = (value: number, of: (result: FillResult) => number) => (baseline === undefined ? "-" : (value / of(baseline)).toFixed(2));
  console.log(`\n${puts} puts of 256 B on ${puts} random keys, one target after another; ratio = target / etcd\n`);
  console.log(["target", "fill s", "ops/s", "RSS idle MB", "RSS filled MB", "data dir MB", "restart s", "RSS restarted MB", "fill time ratio", "RSS filled ratio", "restart ratio"].join("\t"));
  for (const [name, r] of results) {
    console.log(
      [
        name,
        r.fillSeconds.toFixed(1),
        r.fillQps.toFixed(0),
        r.idleRssMb.toFixed(0),
        r.filledRssMb.toFixed(0),
        r.dataDirMb.toFixed(0),
        r.restartSeconds.toFixed(1),
        r.restartedRssMb.toFixed(0),
        ratio(r.fillSeconds, (b) => b.fillSeconds),
        ratio(r.filledRssMb, (b) => b.filledRssMb),
        ratio(r.restartSeconds, (b) => b.restartSeconds),
      ].join("\t"),
    );
  }
}
