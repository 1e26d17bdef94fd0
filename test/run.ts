// Runs every test file under Node's test runner and under Bun's, and ends with
// one plain summary line. Usage: test/run.ts [--runtime node|bun] [filter...]
// First it checks what the tests need beside node_modules (installing it from
// Debian's packages when it can, see test/prerequisites.ts) and builds dist/,
// which bin/edgetcd runs, so the tests start servers as an installed package
// does. EDGETCD_TEST_PREREQS_DRY_RUN=1 prints the prerequisites plan and stops;
// EDGETCD_TEST_PREREQS_ROOT=<dir> looks for them under another root (to test
// that logic).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
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
const runtimes = runtimeFlag >= 0 ? [args[runtimeFlag + 1]] : ["node", "bun"];
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

let passed = 0;
let failed = 0;
const durations: { name: string; seconds: number }[] = [];
for (const runtime of runtimes) {
  for (const file of files) {
    const command =
      runtime === "bun"
        ? [join(root, "node_modules/.bin/bun"), ["test", "--timeout", "300000", `./${file}`]]
        : // --test-force-exit: once every test and hook of the file has finished, the
          // process exits, as `bun test` does, instead of waiting on a leftover
          // handle (follower-reads.test.ts was once seen using a core for minutes
          // after both its tests had passed; which handle is not known yet).
          [process.execPath, ["--import", "tsx", "--test", "--test-force-exit", "--test-reporter=spec", file]];
    console.log(`\n=== ${runtime}: ${file}`);
    const startedAt = Date.now();
    const result = await runFile(command[0] as string, command[1] as string[], runtime as string);
    durations.push({ name: `${runtime}: ${file}`, seconds: (Date.now() - startedAt) / 1000 });
    if (result.error !== undefined) console.log(`!!! ${runtime}: ${file}: ${result.error}`);
    const output = `${result.stdout}${result.stderr}`;
    process.stdout.write(output);
    const counts = runtime === "bun" ? countBun(output) : countNode(output);
    passed += counts.passed;
    failed += counts.failed;
    if (result.status !== 0 && counts.failed === 0) failed += 1; // a crash with no test counted
  }
}
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
function runFile(program: string, programArgs: string[], runtime: string): Promise<{ status: number | null; stdout: string; stderr: string; error?: string }> {
  const scratch = mkdtempSync(join(tmpdir(), "edgetcd-test-"));
  return new Promise((resolve) => {
    const child = spawn(program, programArgs, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, EDGETCD_TEST_RUNTIME: runtime, TMPDIR: scratch, TMP: scratch, TEMP: scratch },
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

function countBun(output: string) {
  const pass = /^\s*(\d+) pass$/m.exec(output);
  const fail = /^\s*(\d+) fail$/m.exec(output);
  return { passed: Number(pass?.[1] ?? 0), failed: Number(fail?.[1] ?? 0) };
}
