// Runs every test file under Node's test runner and Bun's, then a tier of them
// under Deno's (every file with --runtime deno; see denoPlan), and ends with
// one plain summary line. Usage: test/run.ts [--runtime node|bun|deno] [filter...]
// First it checks what the tests need beside node_modules (installing it from
// Debian's packages when it can, see test/prerequisites.ts) and builds dist/,
// which bin/edgetcd runs, so the tests start servers as an installed package
// does. EDGETCD_TEST_PREREQS_DRY_RUN=1 prints the prerequisites plan and stops;
// EDGETCD_TEST_PREREQS_ROOT=<dir> looks for them under another root (to test
// that logic).
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ensurePrerequisites } from "./prerequisites.ts";

function findTests(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith(".test.ts")) found.push(path);
  }
  return found;
}

const args = process.argv.slice(2);
const runtimeFlag = args.indexOf("--runtime");
const runtimes = runtimeFlag >= 0 ? [args[runtimeFlag + 1]] : ["node", "bun", "deno"];
const filters = args.filter((_, i) => runtimeFlag < 0 || (i !== runtimeFlag && i !== runtimeFlag + 1));
const root = new URL("..", import.meta.url).pathname;
const files = findTests(join(root, "test"))
  .map((file) => relative(root, file))
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)));

const prerequisitesDryRun = process.env.EDGETCD_TEST_PREREQS_DRY_RUN === "1";
const prerequisitesReady = ensurePrerequisites({
  root: process.env.EDGETCD_TEST_PREREQS_ROOT ?? "/",
  dryRun: prerequisitesDryRun,
  log: (line) => console.log(line),
});
if (prerequisitesDryRun || !prerequisitesReady) process.exit(prerequisitesReady ? 0 : 1);

const built = spawnSync(process.execPath, ["--import", "tsx", join(root, "runtime/build.ts")], { cwd: root, stdio: "inherit" });
if (built.status !== 0) {
  console.log("npm run build failed: the tests run the built dist/");
  process.exit(1);
}

/** A test file that runs longer than this is killed and counted as failed. */
const fileTimeoutMs = Number(process.env.EDGETCD_TEST_FILE_TIMEOUT_MS ?? 300_000);

/**
 * Files that do not pass on Deno yet, each with what fails (issue 16). They
 * run on Node and Bun; under `--runtime deno` they are listed, not run, and
 * EDGETCD_TEST_DENO_ALL=1 runs them too. Each fails with the servers on Deno
 * under Node's clients as well (EDGETCD_TEST_SERVER_RUNTIME=deno): the fault
 * is the server's.
 */
const notYetOnDeno: Record<string, string> = {
  "test/cluster/graceful-stop.test.ts": "after the leader's handover a follower's client port refuses connections though its process lives (2 runs in 3; cause not found yet)",
  "test/tls/client-tls.test.ts": "--cipher-suites: a TLS 1.2 client offering only other suites is not refused (Deno's TLS)",
  "test/tls/peer-refusal.test.ts": "--peer-cert-allowed-cn: the refused member does not log etcd's 'remote error: tls: bad certificate'",
};

/**
 * Files whose failures on Deno are in the clients the tests drive, not in
 * edgetcd: connect-node and grpc-js over Deno's node:http2 client hang across
 * a member's kill (watch streams) or cannot dial TLS by IP, etcdctl spawned
 * by Deno's child_process misses its stdin's end, and Deno itself crashes in
 * a test process. Under `--runtime deno` they run under Node's test runner
 * with every server on Deno (EDGETCD_TEST_SERVER_RUNTIME=deno), where they
 * pass: the product on Deno is the server. EDGETCD_TEST_DENO_ALL=1 runs them
 * under Deno's runner instead.
 */
const denoServersOnly: Record<string, string> = {
  "test/compat/etcd3-client-auth.test.ts": "the etcd3 package's grpc-js cannot dial TLS by IP under Deno ('servername must not be an IP address')",
  "test/lease/lease-service.test.ts": "its Deno test process segfaults after its tests pass (dmesg: a tokio worker, in libc, at 0x100fffffff7; 13 runs in 26; 2 in 4 before the HTTP/1.1 fix)",
  "test/reliability/short.test.ts": "W1's watchers hang across its faults in Deno's HTTP/2 client",
  "test/watch/cluster-watch.test.ts": "watchers across kill -9 and SIGSTOP hang in Deno's HTTP/2 client",
  "test/watch/etcdctl-watch.test.ts": "etcdctl's interactive watch, spawned by Deno's child_process, sometimes never reads its stdin's end",
};
/**
 * What `npm test` (no --runtime) runs on Deno: the runtime's ports, storage,
 * the installed package, a mixed Node/Bun/Deno cluster, and what was made to
 * work on Deno since (HTTP/1.1 handed over to node:http, unix sockets; not
 * api/protocols, whose Deno test process segfaulted after its tests in 1 run
 * of 15). The whole Deno pass (`npm run test:deno`) is not in `npm
 * test` yet: beside the files listed above, five files' Deno test processes
 * ended mid-test without a word in CI (stream-flood, ports-first,
 * lock-election, data-dir-ownership, watch/wire; each passes alone), likely
 * the segfault of Deno's test process seen after lease-service's tests.
 */
const denoTier = [
  "test/runtime/ports.test.ts",
  "test/mvcc/backend.test.ts",
  "test/cli/package.test.ts",
  "test/cluster/mixed-runtimes.test.ts",
  "test/tidy.test.ts",
  "test/runtime/http1-handover.test.ts",
  "test/cluster/unix-sockets.test.ts",
];

/** How a file runs in the Deno pass: under Deno's runner, under Node's with the servers on Deno, or not. */
function denoPlan(file: string): "deno" | "servers" | "skip" {
  if (runtimeFlag < 0 && !denoTier.includes(file)) return "skip";
  if (process.env.EDGETCD_TEST_DENO_ALL === "1") return "deno";
  if (notYetOnDeno[file] !== undefined) return "skip";
  return denoServersOnly[file] === undefined ? "deno" : "servers";
}

/**
 * Files that run alone: they measure memory and latency under floods
 * (test/abuse) or time faults against election timeouts (test/reliability,
 * the network partitions of test/cluster/partition.test.ts, whose ReadIndex
 * resend once met a leader change when another file loaded the machine), and
 * another file's load beside them would change what they measure.
 */
const runsAlone = (file: string) => file.startsWith("test/abuse/") || file.startsWith("test/reliability/") || file === "test/cluster/partition.test.ts";

/**
 * How many other files run at once (EDGETCD_TEST_JOBS, default 2 on a machine
 * with 2 cores or more): most files spend their time waiting on servers,
 * timers and etcdctl, so two at a time keep both cores busy.
 */
const jobs = Math.max(1, Number(process.env.EDGETCD_TEST_JOBS ?? Math.min(2, availableParallelism())));

/** Ports below the kernel's ephemeral range, one disjoint range per job slot (test/support/processes.ts freePort). */
const portsOfSlot = (slot: number) => {
  const width = Math.floor(22_000 / jobs);
  return `${10_000 + slot * width}-${10_000 + (slot + 1) * width - 1}`;
};

function commandFor(runtime: string, file: string): [string, string[]] {
  if (runtime === "bun") return [join(root, "node_modules/.bin/bun"), ["test", "--timeout", "300000", `./${file}`]];
  // --no-check: the type check is tsc's job (npm run typecheck), not each file's.
  if (runtime === "deno") return [join(root, "node_modules/.bin/deno"), ["test", "-A", "--no-prompt", "--no-check", file]];
  // --test-force-exit: once every test and hook of the file has finished, the
  // process exits, as `bun test` does, instead of waiting on a leftover
  // handle (follower-reads.test.ts was once seen using a core for minutes
  // after both its tests had passed; which handle is not known yet).
  return [process.execPath, ["--import", "tsx", "--test", "--test-force-exit", "--test-reporter=spec", file]];
}

let passed = 0;
let failed = 0;
const durations: { name: string; seconds: number }[] = [];

async function runOne(runtime: string, file: string, slot: number): Promise<void> {
  const serversOnly = runtime === "deno" && denoPlan(file) === "servers";
  const testRuntime = serversOnly ? "node" : runtime;
  const [program, programArgs] = commandFor(testRuntime, file);
  const startedAt = Date.now();
  const result = await runFile(program, programArgs, testRuntime, {
    EDGETCD_TEST_PORTS: portsOfSlot(slot),
    ...(serversOnly ? { EDGETCD_TEST_SERVER_RUNTIME: "deno" } : {}),
  });
  const seconds = (Date.now() - startedAt) / 1000;
  durations.push({ name: `${runtime}: ${file}`, seconds });
  // Each file's output in one piece, when it ends.
  console.log(`\n=== ${runtime}: ${file} (${seconds.toFixed(1)} s)${serversOnly ? ` servers on Deno, clients on Node: ${denoServersOnly[file]}` : ""}`);
  if (result.error !== undefined) console.log(`!!! ${runtime}: ${file}: ${result.error}`);
  const output = `${result.stdout}${result.stderr}`;
  process.stdout.write(output);
  const counts = testRuntime === "bun" ? countBun(output) : testRuntime === "deno" ? countDeno(output) : countNode(output);
  passed += counts.passed;
  failed += counts.failed;
  if (result.status !== 0 && counts.failed === 0) {
    // A crash with no test counted: said, or it hides in the total (Deno test processes have ended so, silently).
    console.log(`!!! ${runtime}: ${file}: exited with status ${result.status} and no failed test counted`);
    failed += 1;
  }
}

const running = new Map<number, Promise<void>>();
for (const runtime of runtimes) {
  for (const file of files) {
    if (runtime === "deno" && denoPlan(file) === "skip") {
      if (runtimeFlag >= 0 && notYetOnDeno[file] !== undefined) console.log(`\n=== deno: ${file}: not run, does not pass on Deno yet: ${notYetOnDeno[file]}`);
      continue;
    }
    const alone = runsAlone(file);
    // A file that runs alone waits for every other; any file waits for a free slot.
    while (running.size >= (alone ? 1 : jobs)) await Promise.race(running.values());
    let slot = 0;
    while (running.has(slot)) slot++;
    const job = runOne(runtime as string, file, slot).finally(() => running.delete(slot));
    running.set(slot, job);
    if (alone) await job;
  }
}
await Promise.all(running.values());

// Where the time went, to keep the whole run short (CI has 20 minutes for all of it).
const total = durations.reduce((sum, d) => sum + d.seconds, 0);
console.log(`\nslowest files (of ${total.toFixed(0)} s in all):`);
for (const d of [...durations].sort((a, b) => b.seconds - a.seconds).slice(0, 15)) console.log(`  ${d.seconds.toFixed(1).padStart(6)} s  ${d.name}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);

/**
 * Runs one test file in a process group of its own, and kills the whole group
 * when it ends: a file that runs past fileTimeoutMs is killed with every
 * server it started, and a server a finished file left behind does not live
 * on into the next one (each by its group id, never by name).
 *
 * Each file also gets a temporary folder of its own as TMPDIR, removed when
 * the group is gone (kept when the file failed): the data dirs its servers
 * made would otherwise stay behind, and a day of runs left 78 GB in /tmp and
 * filled the disk (CI's `npm ci` then failed with ENOSPC).
 */
function runFile(program: string, programArgs: string[], runtime: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string; error?: string }> {
  const scratch = mkdtempSync(join(tmpdir(), "edgetcd-test-"));
  // Open to all as /tmp is (sticky): some tests run a program as another user.
  chmodSync(scratch, 0o1777);
  // tsx keeps its compiled TypeScript in <TMPDIR>/tsx-<uid>: every file shares
  // the one in the real temporary dir, or each would compile the sources anew
  // (half a second of CPU per file).
  const uid = process.getuid?.();
  if (uid !== undefined) {
    const tsxCache = join(tmpdir(), `tsx-${uid}`);
    mkdirSync(tsxCache, { recursive: true, mode: 0o700 });
    symlinkSync(tsxCache, join(scratch, `tsx-${uid}`));
  }
  return new Promise((resolve) => {
    const child = spawn(program, programArgs, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env, EDGETCD_TEST_RUNTIME: runtime, TMPDIR: scratch, TMP: scratch, TEMP: scratch, NO_COLOR: "1" },
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let error: string | undefined;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // the group is gone already
      }
    };
    const timer = setTimeout(() => {
      error = `timed out after ${fileTimeoutMs} ms; killed with its process group`;
      killGroup();
    }, fileTimeoutMs);
    child.once("error", (spawnError) => (error = spawnError.message));
    // Leftovers of the group may hold the output pipes open: they go when the file's process does.
    child.once("exit", () => {
      clearTimeout(timer);
      killGroup();
    });
    child.once("close", (status) => {
      // A failed file's folder stays for a look (its histories and logs are named in the output).
      if (status === 0 && error === undefined) rmSync(scratch, { recursive: true, force: true });
      else stderr += `\n(its temporary folder is kept: ${scratch})\n`;
      resolve({ status, stdout, stderr, ...(error === undefined ? {} : { error }) });
    });
  });
}

function countNode(output: string) {
  const pass = /^ℹ pass (\d+)$/m.exec(output);
  const fail = /^ℹ fail (\d+)$/m.exec(output);
  return { passed: Number(pass?.[1] ?? 0), failed: Number(fail?.[1] ?? 0) };
}

/** Deno's last line: "ok | 2 passed (14 steps) | 0 failed"; a describe's tests are its steps. */
function countDeno(output: string) {
  const summary = /^(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/m.exec(output);
  if (summary === null) return { passed: 0, failed: 0 };
  const [, tests, passedSteps, failedTests, failedSteps] = summary;
  return { passed: Number(passedSteps ?? tests), failed: Math.max(Number(failedSteps ?? 0), Number(failedTests)) };
}

function countBun(output: string) {
  const pass = /^\s*(\d+) pass$/m.exec(output);
  const fail = /^\s*(\d+) fail$/m.exec(output);
  return { passed: Number(pass?.[1] ?? 0), failed: Number(fail?.[1] ?? 0) };
}
