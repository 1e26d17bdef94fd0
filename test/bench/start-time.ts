// Start-to-ready and --version times, edgetcd (built JavaScript on Node and
// Bun, TypeScript through tsx) beside etcd 3.4, each the median of N runs on a
// fresh data dir. Ready is the "ready to serve client requests" line.
// Usage: node --import tsx test/bench/start-time.ts [--runs 5] [--only name,…]
// (npm run build first for the built rows).
import { spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { freePort, repoRoot, tempDir } from "../support/processes.ts";

interface Variant {
  name: string;
  command: string[];
  env?: Record<string, string>;
}

const bun = join(repoRoot, "node_modules/.bin/bun");
const deno = join(repoRoot, "node_modules/.bin/deno");
const variants: Variant[] = [
  { name: "etcd 3.4", command: ["/usr/bin/etcd"] },
  { name: "node dist/node/main.js", command: [process.execPath, join(repoRoot, "dist/node/main.js")] },
  { name: "bun dist/bun/main.js", command: [bun, join(repoRoot, "dist/bun/main.js")] },
  { name: "deno run -A dist/deno/main.js", command: [deno, "run", "-A", "--no-prompt", join(repoRoot, "dist/deno/main.js")] },
  { name: "node --import tsx (sources)", command: [process.execPath, "--import", "tsx", join(repoRoot, "runtime/node/main.ts")] },
  { name: "bun (sources)", command: [bun, join(repoRoot, "runtime/bun/main.ts")] },
  { name: "deno (sources)", command: [deno, "run", "-A", "--no-prompt", join(repoRoot, "runtime/deno/main.ts")] },
];

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1] ?? 5) || 5;
const only = args.includes("--only") ? (args[args.indexOf("--only") + 1] ?? "").split(",") : undefined;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function readyMs(variant: Variant): Promise<number> {
  const dataDir = join(tempDir("start-time"), "data");
  const clientUrl = `http://127.0.0.1:${await freePort()}`;
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const flags = ["--name", "default", "--data-dir", dataDir, "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
    "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl, "--initial-cluster", `default=${peerUrl}`];
  const startedMs = performance.now();
  const child = spawn(variant.command[0] as string, [...variant.command.slice(1), ...flags], {
    cwd: repoRoot,
    env: { ...process.env, ...variant.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const elapsedMs = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready to serve client requests")) resolve(performance.now() - startedMs);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`${variant.name} exited ${code} before ready:\n${output.slice(-2000)}`)));
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
  rmSync(dataDir, { recursive: true, force: true });
  return elapsedMs;
}

function versionMs(variant: Variant): number {
  const startedMs = performance.now();
  const result = spawnSync(variant.command[0] as string, [...variant.command.slice(1), "--version"], { cwd: repoRoot, env: { ...process.env, ...variant.env } });
  if (result.status !== 0) throw new Error(`${variant.name} --version exited ${result.status}`);
  return performance.now() - startedMs;
}

console.log(`| command | start to ready, median of ${runs} (ms) | --version, median of ${runs} (ms) |`);
console.log("| --- | --- | --- |");
for (const variant of variants) {
  if (only !== undefined && !only.some((name) => variant.name.includes(name))) continue;
  const ready: number[] = [];
  const version: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    ready.push(await readyMs(variant));
    version.push(versionMs(variant));
  }
  console.log(`| ${variant.name} | ${median(ready).toFixed(0)} (${ready.map((ms) => ms.toFixed(0)).join(", ")}) | ${median(version).toFixed(0)} |`);
}
