// What every loadgen-driven bench shares: etcd's Go client (../shared/loadgen
// with loadgen-secure.patch, built once per machine), one run of it, and the
// command-line and statistics helpers.
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { promisify } from "node:util";
import type { RuntimeName } from "../support/runtime.ts";

export const run = promisify(execFile);

/** loadgen's one JSON line. */
export interface LoadgenResult {
  ok: number;
  seconds: number;
  qps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
}

/** ../shared/loadgen with the TLS and auth flags (-cacert, -cert, -key, -user), built on first use. */
export async function secureLoadgen(): Promise<string> {
  const dir = "/tmp/edgetcd-loadgen-secure";
  const binary = `${dir}/loadgen`;
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  copyFileSync(new URL("../../../shared/loadgen/main.go", import.meta.url).pathname, `${dir}/main.go`);
  await run("patch", [`${dir}/main.go`, new URL("./loadgen-secure.patch", import.meta.url).pathname]);
  await run("go", ["build", "-o", binary, "."], { cwd: dir, env: { ...process.env, GOPATH: "/usr/share/gocode", GO111MODULE: "off", GOCACHE: "/tmp/gocache" } });
  return binary;
}

/** One loadgen run with `args`; its result. */
export async function runLoadgen(loadgen: string, args: string[]): Promise<LoadgenResult> {
  const { stdout } = await run(loadgen, args, { timeout: 600_000 });
  return JSON.parse(stdout.trim().split("\n").pop() as string) as LoadgenResult;
}

/** `--name value` from the command line, or `fallback`. */
export function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

/** The middle value (the upper one of an even count); NaN for none. */
export function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
}

/** Every target a benchmark knows: etcd, then edgetcd on each runtime. */
export const defaultTargets = "etcd,edgetcd-node,edgetcd-bun,edgetcd-deno";

/** The runtime of a target named edgetcd-<runtime>. */
export function runtimeOfTarget(name: string): RuntimeName {
  const runtime = name.replace(/^edgetcd-/, "");
  if (runtime === "node" || runtime === "bun" || runtime === "deno") return runtime;
  throw new Error(`unknown target ${name}: etcd or edgetcd-node, edgetcd-bun, edgetcd-deno`);
}
