// Real processes for compatibility and fault tests: edgetcd (under the runtime
// being tested) and the real etcd 3.4, each on free loopback ports.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { testOnlyVariables } from "../../runtime/node/host.ts";
import { runtimeName, type RuntimeName } from "./runtime.ts";
import { join } from "node:path";
import { after, before } from "node:test";

export const repoRoot = new URL("../..", import.meta.url).pathname;

/** Ports handed out by this process, so two calls never return the same one. */
const portsHandedOut = new Set<number>();

/**
 * The ports this file may hand out, "low-high" in EDGETCD_TEST_PORTS: test/run.ts
 * gives files that run at the same time disjoint ranges below the kernel's
 * ephemeral ports, so one never takes a port another was just given. Without
 * it, any port the kernel calls free.
 */
const portRange = /^(\d+)-(\d+)$/.exec(process.env.EDGETCD_TEST_PORTS ?? "");
const [portLow, portHigh] = portRange === null ? [0, 0] : [Number(portRange[1]), Number(portRange[2])];
/** Where this file's walk through its range goes on (it starts anywhere in it). */
let nextInRange = portLow + Math.floor(Math.random() * (portHigh - portLow + 1));

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 100_000; tries++) {
    let port: number | undefined;
    if (portRange === null) port = await listenAndClose(0);
    else {
      port = await listenAndClose(nextInRange).catch(() => undefined);
      nextInRange = nextInRange >= portHigh ? portLow : nextInRange + 1;
    }
    if (port !== undefined && !portsHandedOut.has(port)) {
      portsHandedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${process.env.EDGETCD_TEST_PORTS}`);
}

/** Listens on the port (0: one the kernel picks) of 127.0.0.1, closes, and gives the port. */
async function listenAndClose(port: number): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(bound));
    });
  });
}

const madeDirs: string[] = [];

/**
 * A new folder under the temporary dir, removed when this process exits (a
 * benchmark or a test file run by hand; test/run.ts also gives each file a
 * TMPDIR of its own and removes it, which covers a file it had to kill).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  if (madeDirs.length === 0) {
    process.once("exit", () => {
      for (const made of madeDirs) rmSync(made, { recursive: true, force: true });
    });
  }
  madeDirs.push(dir);
  return dir;
}

export interface RunningServer {
  kind: "edgetcd" | "etcd";
  endpoint: string;
  clientPort: number;
  dataDir: string;
  process: ChildProcess;
  output: () => string;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, and wait for the exit. */
  stop(): Promise<void>;
}

export interface StartOptions {
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  extraArgs?: string[];
  /** "node", "bun" or "deno" for edgetcd; defaults to the runtime running the tests. */
  runtime?: RuntimeName;
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /** A command the server runs under, e.g. ["unshare", "--pid", "--fork", "--mount-proc"] (its own PID namespace). */
  prefix?: string[];
}

/**
 * EDGETCD_TEST_SERVER_RUNTIME: servers on another runtime than the test's own
 * clients (tells a server's fault from a client library's on that runtime);
 * several, comma-separated: a cluster's members take them in turn (a mixed
 * cluster), a lone server the first.
 */
export function serverRuntimes(): RuntimeName[] {
  const list = process.env.EDGETCD_TEST_SERVER_RUNTIME;
  return list === undefined || list === "" ? [] : (list.split(",") as RuntimeName[]);
}

export async function startEdgetcd(options: StartOptions = {}): Promise<RunningServer> {
  const runtime = options.runtime ?? serverRuntimes()[0] ?? runtimeName;
  return await startProcess("edgetcd", join(repoRoot, "bin/edgetcd"), options, { EDGETCD_RUNTIME: runtime, ...testRootFor(options.env) });
}

/**
 * A server asked for a fault, a mutant or a crash point (here or in the
 * runner's environment, as the mutation probes set it) runs the test root
 * (runtime/test/); the production root refuses those variables.
 */
export function testRootFor(env: Record<string, string> | undefined): { EDGETCD_ROOT?: string } {
  const merged: Record<string, string | undefined> = { ...process.env, ...env };
  return testOnlyVariables.some((name) => merged[name] !== undefined && merged[name] !== "") ? { EDGETCD_ROOT: "test" } : {};
}

export async function startEtcd(options: StartOptions = {}): Promise<RunningServer> {
  return await startProcess("etcd", "/usr/bin/etcd", options, {});
}

async function startProcess(
  kind: "edgetcd" | "etcd",
  command: string,
  options: StartOptions,
  env: Record<string, string>,
): Promise<RunningServer> {
  const dataDir = options.dataDir ?? join(tempDir(kind), "data");
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    "--name", "default",
    "--data-dir", dataDir,
    "--listen-client-urls", clientUrl,
    "--advertise-client-urls", clientUrl,
    "--listen-peer-urls", peerUrl,
    "--initial-advertise-peer-urls", peerUrl,
    "--initial-cluster", `default=${peerUrl}`,
    ...(options.extraArgs ?? []),
  ];
  const [program, ...programArgs] = [...(options.prefix ?? []), command, ...args] as [string, ...string[]];
  const child = spawn(program, programArgs, {
    cwd: repoRoot,
    env: { ...process.env, ...env, ...(options.env ?? {}) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running: a stray child keeps the test process (and its ports) alive.
      child.kill("SIGKILL");
      reject(new Error(`${kind} not ready in time; output:\n${output.slice(-4000)}`));
    }, options.readyTimeoutMs ?? 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready to serve client requests")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} exited with ${code} before ready; output:\n${output.slice(-4000)}`));
    });
  });
  await ready;
  const signal = async (name: NodeJS.Signals) => {
    // process.kill, not child.kill: Deno's child.kill reports a child that
    // handled the signal and exited 0 as ended by the signal.
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, name);
    await exited;
  };
  return {
    kind,
    endpoint: `127.0.0.1:${clientPort}`,
    clientPort,
    dataDir,
    process: child,
    output: () => output,
    kill: () => signal("SIGKILL"),
    stop: () => signal("SIGTERM"),
  };
}

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the real etcdctl (API v3) against one endpoint. */
export function etcdctl(endpoint: string, args: string[], input?: string): CommandResult {
  const result = spawnSync("etcdctl", [`--endpoints=${endpoint}`, "--dial-timeout=5s", "--command-timeout=10s", ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
    input,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

/** Async variant, for tests that must keep the event loop running meanwhile. */
export function etcdctlAsync(endpoint: string, args: string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn("etcdctl", [`--endpoints=${endpoint}`, "--dial-timeout=5s", "--command-timeout=10s", ...args], {
      env: { ...process.env, ETCDCTL_API: "3" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    // "close", not "exit": the process can exit before its last output has been read.
    child.on("close", (code) => resolve({ status: code ?? -1, stdout, stderr }));
    // etcdctl may exit before reading its input: that EPIPE is not a failure.
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
  });
}

/** A long-running etcdctl whose output the test reads as it comes. */
export function etcdctlProcess(endpoint: string, args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number> } {
  const child = spawn("etcdctl", [`--endpoints=${endpoint}`, ...args], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? -1)));
  return { child, output: () => output, exited };
}

/**
 * The processes of a process group still alive (zombies, whose parent has not
 * reaped them yet, do not count), read from /proc: a test of signal delivery
 * must find no server left behind, orphaned or not.
 */
export function livingProcessesInGroup(processGroupId: number): Array<{ pid: number; command: string }> {
  const living: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) !== processGroupId || fields[0] === "Z") continue;
    let command = "";
    try {
      command = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {
      // gone meanwhile
    }
    living.push({ pid: Number(entry), command });
  }
  return living;
}

/** Waits until no process of the group is alive; returns those still alive at the deadline. */
export async function waitForGroupGone(processGroupId: number, timeoutMs: number): Promise<Array<{ pid: number; command: string }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const living = livingProcessesInGroup(processGroupId);
    if (living.length === 0 || Date.now() > deadline) return living;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Kills what is left of a group (a failed test must not leave servers behind). */
export function killGroup(processGroupId: number): void {
  try {
    process.kill(-processGroupId, "SIGKILL");
  } catch {
    // already gone
  }
}

/** True when nothing accepts connections on the loopback port. */
export function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

/**
 * etcd 3.4 and edgetcd for the tests of one describe block that compare them:
 * started together before its tests (each with its own options), stopped
 * after. Read `.etcd` and `.edgetcd` inside the tests.
 */
export function etcdBesideEdgetcd(
  options: { etcd?: () => Promise<RunningServer>; edgetcd?: () => Promise<RunningServer>; extraArgs?: string[] } = {},
): { readonly etcd: RunningServer; readonly edgetcd: RunningServer } {
  let servers: [RunningServer, RunningServer] | undefined;
  const common = options.extraArgs === undefined ? {} : { extraArgs: options.extraArgs };
  before(async () => {
    servers = await Promise.all([options.etcd?.() ?? startEtcd(common), options.edgetcd?.() ?? startEdgetcd(common)]);
  }, { timeout: 120_000 });
  after(async () => {
    await Promise.all((servers ?? []).map((server) => server.stop()));
  });
  const started = (): [RunningServer, RunningServer] => {
    if (servers === undefined) throw new Error("etcd and edgetcd have not started");
    return servers;
  };
  return {
    get etcd() {
      return started()[0];
    },
    get edgetcd() {
      return started()[1];
    },
  };
}
