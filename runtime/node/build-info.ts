// edgetcd's version, the commit it was built from and the runtime running it:
// the one place --version and the start line learn them. Read once, at start,
// from files (no git process is spawned, so --version stays fast).
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BuildInfo } from "../../src/cli/usage.ts";

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  cached ??= { version: packageVersion(), gitCommit: gitCommit(), runtime: runtimeDescription() };
  return cached;
}

/** The folder holding edgetcd's package.json, found upward from this file (a build may move this file deeper). */
function packageRoot(): string | undefined {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(folder, "package.json");
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, "utf8")) as { name?: string }).name === "edgetcd") return folder;
    const parent = dirname(folder);
    if (parent === folder) return undefined;
    folder = parent;
  }
}

function packageVersion(): string {
  const root = packageRoot();
  if (root === undefined) return "unknown";
  return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
}

/**
 * The build (runtime/build.ts) stamps the commit as `gitCommit` in
 * dist/build-info.json, one folder above the bundle running this code
 * (dist/node/main.js); from the sources (runtime/node/) there is no such file
 * and a git checkout answers from .git, so a stale build never names the
 * commit of sources that run. Anything else is "unknown".
 */
function gitCommit(): string {
  const root = packageRoot();
  if (root === undefined) return "unknown";
  try {
    const stamped = join(dirname(fileURLToPath(import.meta.url)), "..", "build-info.json");
    if (existsSync(stamped)) return (JSON.parse(readFileSync(stamped, "utf8")) as { gitCommit?: string }).gitCommit ?? "unknown";
    return commitFromGitDir(join(root, ".git")) ?? "unknown";
  } catch {
    return "unknown";
  }
}

function commitFromGitDir(gitPath: string): string | undefined {
  if (!existsSync(gitPath)) return undefined;
  let gitDir = gitPath;
  // A worktree or submodule has a .git file pointing at the real directory.
  if (statSync(gitPath).isFile()) {
    const pointer = /^gitdir: (.+)$/m.exec(readFileSync(gitPath, "utf8"));
    if (pointer === null) return undefined;
    gitDir = join(dirname(gitPath), (pointer[1] as string).trim());
  }
  const head = readFileSync(join(gitDir, "HEAD"), "utf8").trim();
  const ref = /^ref: (.+)$/.exec(head)?.[1];
  if (ref === undefined) return /^[0-9a-f]{40}$/.test(head) ? head : undefined;
  // A linked worktree keeps its refs in the common directory.
  const commonDir = existsSync(join(gitDir, "commondir")) ? join(gitDir, readFileSync(join(gitDir, "commondir"), "utf8").trim()) : gitDir;
  for (const dir of [gitDir, commonDir]) {
    const loose = join(dir, ref);
    if (existsSync(loose)) return readFileSync(loose, "utf8").trim();
  }
  const packed = join(commonDir, "packed-refs");
  if (!existsSync(packed)) return undefined;
  const line = readFileSync(packed, "utf8").split("\n").find((entry) => entry.endsWith(` ${ref}`));
  return line?.split(" ")[0];
}

function runtimeDescription(): string {
  const bun = (globalThis as { Bun?: { version: string } }).Bun;
  if (bun !== undefined) return `bun ${bun.version}`;
  // Deno answers process.version with the Node version it is compatible with.
  const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  if (deno !== undefined) return `deno ${deno.version.deno}`;
  return `node ${process.version}`;
}
