// The long tier of the reliability scorecard against real processes:
//   npm run test:long -- --runs N --seed S [--only L1,J2,...] [--kind edgetcd|etcd] [--runtime node|bun]
//   [--minutes M]: start no new run after M minutes.
//   [--faults a,b]: L1, L2 and J1 draw only these faults (names as printed in a run's notes).
//   [--fuzz-iterations N]: also F1, the seeded fuzzers (Raft messages, peer codecs, client-port
//   decoders) with N seeds each (20,000 takes minutes); `--only F1` runs only them.
// EDGETCD_RELIABILITY_DEBUG=1 runs edgetcd members with --log-level debug (each
// linearizable-read round is logged); an illegal L1/L2 run saves the members' logs.
// Runs each chosen scenario N times (seeds S, S+1, ...), prints one line per
// run and a table per scenario at the end. Exits 1 if any run was illegal,
// lost an acknowledged write, or failed its end checks.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { scenarios, type RunResult } from "./scenarios.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "1" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
    only: { type: "string" },
    kind: { type: "string", default: "edgetcd" },
    runtime: { type: "string" },
    scale: { type: "string", default: "1" },
    "operations-max": { type: "string", default: "2500" },
    "check-timeout-ms": { type: "string", default: "60000" },
    /** Start no new run after this many minutes; the table covers the runs done. */
    minutes: { type: "string" },
    faults: { type: "string" },
    "fuzz-iterations": { type: "string" },
  },
});

const runs = Number(values.runs);
const seed = Number(values.seed);
const kind = values.kind === "etcd" ? "etcd" : "edgetcd";
const runtime = values.runtime === "bun" ? "bun" : values.runtime === "node" ? "node" : undefined;
const only = values.only?.split(",").map((id) => id.trim().toUpperCase());
const chosen = scenarios.filter((scenario) => only === undefined || only.includes(scenario.id));
const fuzzIterations = values["fuzz-iterations"] === undefined ? (only?.includes("F1") ? 20_000 : undefined) : Number(values["fuzz-iterations"]);
if (chosen.length === 0 && fuzzIterations === undefined) throw new Error(`no scenario matches --only ${values.only}; known: ${scenarios.map((s) => s.id).join(", ")}`);

const options = {
  kind,
  runtime,
  scale: Number(values.scale),
  operationsMax: Number(values["operations-max"]),
  checkTimeoutMs: Number(values["check-timeout-ms"]),
  faults: values.faults?.split(",").map((name) => name.trim()),
  log: (line: string) => console.log(line),
} as const;

console.log(`test:long: ${runs} run(s) of ${chosen.map((s) => s.id).join(", ")} against ${kind}${runtime ? ` on ${runtime}` : ""}, seeds ${seed}..${seed + runs - 1}`);
const results = new Map<string, RunResult[]>();
const started = Date.now();
const stopAt = values.minutes === undefined ? Infinity : started + Number(values.minutes) * 60_000;
for (let run = 0; run < runs && Date.now() < stopAt; run++) {
  for (const scenario of chosen) {
    if (Date.now() >= stopAt) break;
    const runSeed = seed + run;
    let result: RunResult;
    try {
      result = await scenario.run(runSeed, { ...options, log: options.log });
    } catch (error) {
      const setup = String(error).includes("not ready in time") || String(error).includes("before ready");
      result = { verdict: setup ? "setup" : "failed", lost: 0, watchViolations: undefined, checkMs: 0, operations: 0, notes: [String(error).slice(0, 300)] };
    }
    results.set(scenario.id, [...(results.get(scenario.id) ?? []), result]);
    console.log(
      `${scenario.id} seed ${runSeed}: ${result.verdict}, ${result.operations} ops, lost ${result.lost}, check ${result.checkMs.toFixed(0)} ms` +
        (result.notes.length > 0 ? ` [${result.notes.join("; ")}]` : ""),
    );
  }
}

const header = ["scenario", "runs", "valid runs", "illegal", "undecided", "failed end checks", "not started", "acknowledged writes lost", "watch violations", "time to check (mean / max ms)"];
const rows = chosen.map((scenario) => {
  const list = results.get(scenario.id) ?? [];
  const count = (verdict: RunResult["verdict"]) => list.filter((result) => result.verdict === verdict).length;
  const watched = list.filter((result) => result.watchViolations !== undefined);
  const checks = list.map((result) => result.checkMs);
  const mean = checks.length === 0 ? 0 : checks.reduce((a, b) => a + b, 0) / checks.length;
  return [
    scenario.id,
    String(list.length),
    String(count("valid")),
    String(count("illegal")),
    String(count("undecided")),
    String(count("failed")),
    String(count("setup")),
    String(list.reduce((sum, result) => sum + result.lost, 0)),
    watched.length === 0 ? "-" : String(watched.reduce((sum, result) => sum + (result.watchViolations ?? 0), 0)),
    `${mean.toFixed(0)} / ${Math.max(0, ...checks).toFixed(0)}`,
  ];
});
console.log(`\n| ${header.join(" | ")} |\n| ${header.map(() => "---").join(" | ")} |`);
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
console.log(`\n${kind}, seeds ${seed}..${seed + runs - 1}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
const bad = [...results.values()].flat().some((result) => result.verdict === "illegal" || result.verdict === "failed" || result.lost > 0);
const fuzzFailed = fuzzIterations === undefined ? false : runFuzzers(fuzzIterations);
process.exit(bad || fuzzFailed ? 1 : 0);

/** F1: each seeded fuzzer as its own test process, with `iterations` seeds; true if any failed. */
function runFuzzers(iterations: number): boolean {
  const files = ["test/raft/hostile-messages.test.ts", "test/peer/codec-fuzz.test.ts", "test/abuse/decoder-fuzz.test.ts"];
  let failed = false;
  for (const file of files) {
    const fuzzStarted = Date.now();
    const result = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-force-exit", file], {
      env: { ...process.env, EDGETCD_FUZZ_ITERATIONS: String(iterations) },
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    const ok = result.status === 0;
    failed ||= !ok;
    console.log(`F1 ${file}: ${iterations} seeds, ${ok ? "passed" : "FAILED"} in ${((Date.now() - fuzzStarted) / 1000).toFixed(0)} s`);
    if (!ok) console.log(`${result.stdout}${result.stderr}`.slice(-4000));
  }
  return failed;
}
