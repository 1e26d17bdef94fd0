// npm run cluster [-- --size 3 --base-port 2379 --runtime node --data-root .]:
// an edgetcd cluster on loopback for development, like etcd's goreman
// Procfile. See `usage` below for the port layout and the commands it reads
// on stdin. Every port is checked before any member starts; SIGTERM or
// SIGINT stops every member gracefully (a leader hands over first) and exits.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

/** Odd sizes up to this are what one machine usefully runs; etcd recommends at most 7. */
const membersMax = 9;
/** How long a member may take to be ready before the launcher gives up on the whole cluster. */
const readyTimeoutMs = 60_000;
/** How long a graceful stop may take (a leader's handover is bounded by its request timeout, 7 s by default) before SIGKILL. */
const stopTimeoutMs = 15_000;
/** A signal this soon after the first is the same one delivered twice (Ctrl-C reaches the group and npm forwards it). */
const repeatedSignalWindowMs = 500;

const usage = `Usage: npm run cluster -- [options]

Starts an edgetcd cluster on 127.0.0.1. Member i (infra1, infra2, ...) uses
client port <base-port> + 2(i-1) and peer port <base-port> + 2(i-1) + 1, and
keeps its data in <data-root>/infra<i>.edgetcd (kept between runs).

Options:
  --size <n>          members, 1 to ${membersMax} (default 3)
  --base-port <port>  first client port (default 2379: infra1 2379/2380, infra2 2381/2382, ...)
  --runtime <name>    node, bun or deno (default node)
  --data-root <dir>   where the data directories go (default: the directory npm was run from)
  --help              this text

Commands, one per line on stdin:
  restart <member>    stop the member gracefully and start it again (member: infra2 or 2)
  stop <member>       stop the member gracefully
  start <member>      start a stopped member
  list                members, ports and state

SIGTERM or SIGINT (Ctrl-C) stops every member gracefully and exits; a second
signal kills them at once.
`;

interface Options {
  size: number;
  basePort: number;
  runtime: "node" | "bun" | "deno";
  dataRoot: string;
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  child: ChildProcess | undefined;
  exited: Promise<void>;
}

function fail(message: string): never {
  process.stderr.write(`edgetcd cluster: ${message}\n`);
  process.exit(1);
}

function parseOptions(argv: readonly string[]): Options {
  // npm runs scripts in the package folder; INIT_CWD is where `npm run cluster` was typed.
  const options: Options = { size: 3, basePort: 2379, runtime: "node", dataRoot: process.env["INIT_CWD"] ?? "." };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(usage);
      process.exit(0);
    }
    const [name, inline] = flag.startsWith("--") && flag.includes("=") ? flag.split("=", 2) : [flag, undefined];
    const value = inline ?? argv[++i];
    if (value === undefined) fail(`${name} needs a value\n${usage}`);
    if (name === "--size") options.size = Number(value);
    else if (name === "--base-port") options.basePort = Number(value);
    else if (name === "--runtime" && (value === "node" || value === "bun" || value === "deno")) options.runtime = value;
    else if (name === "--data-root") options.dataRoot = value;
    else fail(`unknown option ${flag}\n${usage}`);
  }
  if (!Number.isInteger(options.size) || options.size < 1 || options.size > membersMax) fail(`--size must be 1 to ${membersMax}`);
  const lastPort = options.basePort + 2 * options.size - 1;
  if (!Number.isInteger(options.basePort) || options.basePort < 1 || lastPort > 65535) fail(`--base-port must leave room for ${2 * options.size} ports up to 65535`);
  return options;
}

/** Resolves to true when the port can be bound on loopback now. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

const options = parseOptions(process.argv.slice(2));
const repoRoot = new URL("../..", import.meta.url).pathname;
const dataRoot = resolve(options.dataRoot);
const members: Member[] = Array.from({ length: options.size }, (_, i) => ({
  name: `infra${i + 1}`,
  clientPort: options.basePort + 2 * i,
  peerPort: options.basePort + 2 * i + 1,
  child: undefined,
  exited: Promise.resolve(),
}));
const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");

// Every port up front: a cluster that starts with one member missing still
// advertises it, and an operator would rather pick another base port now.
const taken: string[] = [];
for (const member of members) {
  if (!(await portIsFree(member.clientPort))) taken.push(`${member.clientPort} (${member.name} client)`);
  if (!(await portIsFree(member.peerPort))) taken.push(`${member.peerPort} (${member.name} peer)`);
}
if (taken.length > 0) fail(`port ${taken.join(", ")} in use; nothing started (choose another --base-port)`);

let stopping = false;

/** Starts a member; resolves once it says it is ready, rejects if it exits first. */
function startMember(member: Member): Promise<void> {
  const client = `http://127.0.0.1:${member.clientPort}`;
  const peer = `http://127.0.0.1:${member.peerPort}`;
  const child = spawn(
    join(repoRoot, "bin/edgetcd"),
    [
      "--name", member.name,
      "--data-dir", join(dataRoot, `${member.name}.edgetcd`),
      "--listen-client-urls", client,
      "--advertise-client-urls", client,
      "--listen-peer-urls", peer,
      "--initial-advertise-peer-urls", peer,
      "--initial-cluster-token", "edgetcd-cluster-1",
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
    ],
    { env: { ...process.env, EDGETCD_RUNTIME: options.runtime }, stdio: ["ignore", "pipe", "pipe"] },
  );
  member.child = child;
  member.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${member.name} not ready within ${readyTimeoutMs} ms`)), readyTimeoutMs);
    for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]] as const) {
      if (stream === null) continue;
      createInterface({ input: stream }).on("line", (line) => {
        out.write(`${member.name} | ${line}\n`);
        if (line.includes("ready to serve client requests")) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (member.child === child) member.child = undefined;
      console.log(`${member.name} | exited (${signal ?? code})`);
      reject(new Error(`${member.name} exited (${signal ?? code}) before it was ready`));
    });
  });
}

/** SIGTERM (the member stops gracefully), then SIGKILL if it takes longer than stopTimeoutMs. */
async function stopMember(member: Member): Promise<void> {
  const child = member.child;
  if (child === undefined) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
  await member.exited;
  clearTimeout(timer);
}

async function stopAll(exitCode: number): Promise<never> {
  stopping = true;
  await Promise.all(members.map(stopMember));
  process.exit(exitCode);
}

let firstSignalMs: number | undefined;
const onSignal = (signal: NodeJS.Signals) => {
  const nowMs = performance.now();
  if (firstSignalMs !== undefined && nowMs - firstSignalMs < repeatedSignalWindowMs) return;
  if (firstSignalMs !== undefined) {
    console.log(`cluster | ${signal} again: killing every member`);
    for (const member of members) member.child?.kill("SIGKILL");
    process.exit(1);
  }
  firstSignalMs = nowMs;
  console.log(`cluster | ${signal}: stopping every member`);
  void stopAll(0);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

try {
  await Promise.all(members.map(startMember));
} catch (error) {
  if (!stopping) {
    process.stderr.write(`edgetcd cluster: ${error instanceof Error ? error.message : String(error)}; stopping the others\n`);
    await stopAll(1);
  }
}
console.log(`cluster | ready; endpoints: ${members.map((m) => `127.0.0.1:${m.clientPort}`).join(",")}`);

function memberNamed(text: string | undefined): Member | undefined {
  return members.find((m) => m.name === text || m.name === `infra${text}`);
}

async function command(line: string): Promise<void> {
  const [verb, argument] = line.trim().split(/\s+/);
  if (verb === undefined || verb === "") return;
  if (verb === "list") {
    for (const m of members) console.log(`cluster | ${m.name} client ${m.clientPort} peer ${m.peerPort} ${m.child === undefined ? "stopped" : `running (pid ${m.child.pid})`}`);
    return;
  }
  const member = memberNamed(argument);
  if (member === undefined || !["restart", "stop", "start"].includes(verb)) {
    console.log(`cluster | unknown command: ${line.trim()} (restart|stop|start <member>, list)`);
    return;
  }
  if (verb !== "start") {
    console.log(`cluster | stopping ${member.name}`);
    await stopMember(member);
  }
  if (verb !== "stop" && !stopping) {
    if (member.child !== undefined) return void console.log(`cluster | ${member.name} is running`);
    console.log(`cluster | starting ${member.name}`);
    try {
      await startMember(member);
      console.log(`cluster | ${member.name} ready`);
    } catch (error) {
      console.log(`cluster | ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

// One command at a time, in order. Stdin closing (run in the background) stops nothing.
let commands = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  commands = commands.then(() => command(line));
});
